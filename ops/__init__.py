"""What operators read of a running Herald: ``/metrics`` (Prometheus)."""
