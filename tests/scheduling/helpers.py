"""What the scheduling tests share: send times relative to now, a DELETE that runs on-commit
hooks like a real request, and the release tick as beat runs it."""

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from comms.scheduling import deliveries_release


def ahead(**delta: float) -> str:
    """An ISO 8601 time with an offset (+02:00), ``delta`` from now."""
    moment = timezone.now() + timedelta(**delta)
    return moment.astimezone(timezone.get_fixed_timezone(120)).isoformat()


def delete(api: Any, path: str):
    with api.capture(execute=True):
        return api.client.delete(path)


def release_at(moment: datetime, capture: Any) -> int:
    """Beat's release tick at ``moment`` (its kick runs the dispatcher in process)."""
    with capture(execute=True):
        return deliveries_release(now=moment)


def later(**delta: float) -> datetime:
    return timezone.now() + timedelta(**delta)
