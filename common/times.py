"""Timestamps as the public APIs write them."""

from datetime import UTC, datetime


def iso(moment: datetime | None) -> str | None:
    """``2026-04-29T20:43:55Z`` (spec 000's format, whole seconds, UTC), or None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
