"""Slow clients against a running Herald web server, and a fast client's latency meanwhile.

    .venv/bin/python bench/slowloris.py http://127.0.0.1:8000 --key live_… [--slow 3]
        [--mode headers|body|both] [--seconds 20]

``headers``: each slow client sends a request line, then one header byte per second and never
ends its headers (slowloris). ``body``: each sends complete headers of a POST with a valid
key and ``Content-Length: 100000``, then one body byte per second. Meanwhile a fast client
GETs ``/v1/webhooks`` with the key every 0.2 s, each on a new connection; the report is its
latency (the worst is what a sync worker per slow client shows: the whole run).
"""

import argparse
import http.client
import json
import socket
import statistics
import threading
import time
from urllib.parse import urlsplit

PATH = "/v1/webhooks"


def slow_client(host: str, port: int, mode: str, key: str, stop: threading.Event,
                opened: list) -> None:
    """One slow client; reopens its connection when the server closes it (a timeout)."""
    while not stop.is_set():
        try:
            conn = socket.create_connection((host, port), timeout=5)
        except OSError:
            time.sleep(0.2)
            continue
        opened.append(1)
        try:
            if mode == "headers":
                conn.sendall(f"GET {PATH} HTTP/1.1\r\nHost: {host}\r\n".encode())
                drip = b"X-Slow: " + b"a" * 10_000
            else:
                conn.sendall((f"POST /v1/events HTTP/1.1\r\nHost: {host}\r\n"
                              f"Authorization: Bearer {key}\r\n"
                              "Content-Type: application/json\r\n"
                              "Content-Length: 100000\r\n\r\n{").encode())
                drip = b" " * 100_000
            for byte in drip:
                if stop.wait(1.0):
                    break
                conn.sendall(bytes([byte]))
        except OSError:
            pass  # closed by the server: open another
        finally:
            conn.close()


def fast_get(host: str, port: int, key: str, timeout: float = 60.0) -> tuple[float, int]:
    started = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", PATH, headers={"Authorization": f"Bearer {key}"})
        status = conn.getresponse().status
    except OSError:
        status = 0
    finally:
        conn.close()
    return time.monotonic() - started, status


def measure(url: str, key: str, *, slow: int = 3, mode: str = "both", seconds: float = 20.0,
            settle: float = 1.0, timeout: float = 60.0) -> dict:
    """Start ``slow`` slow clients per mode, then time a fast client for ``seconds`` (each of
    its requests given up after ``timeout``)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    stop, opened = threading.Event(), []
    modes = ["headers", "body"] if mode == "both" else [mode]
    threads = [threading.Thread(target=slow_client, args=(host, port, m, key, stop, opened),
                                daemon=True) for m in modes for _ in range(slow)]
    for thread in threads:
        thread.start()
    time.sleep(settle)  # the slow clients are connected and dribbling
    latencies, statuses = [], []
    until = time.monotonic() + seconds
    try:
        while time.monotonic() < until:
            took, status = fast_get(host, port, key, timeout)
            latencies.append(took)
            statuses.append(status)
            time.sleep(max(0.0, 0.2 - took))
    finally:
        stop.set()
    latencies.sort()
    return {"slow_clients": len(threads), "slow_connections_opened": len(opened),
            "fast_requests": len(latencies), "ok": statuses.count(200),
            "median_s": round(statistics.median(latencies), 3),
            "p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 3),
            "max_s": round(latencies[-1], 3),
            "over_1s": sum(1 for t in latencies if t > 1.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--key", required=True)
    parser.add_argument("--slow", type=int, default=3, help="slow clients per mode")
    parser.add_argument("--mode", choices=["headers", "body", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    print(json.dumps(measure(args.url, args.key, slow=args.slow, mode=args.mode,
                             seconds=args.seconds)))


if __name__ == "__main__":
    main()
