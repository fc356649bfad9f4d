"""The range an event's start and end may take: one rule for the API and the admin's form.

Python's ``datetime`` ends at the years 1 and 9999, and the times computed from an event's
(a reminder up to a year either side of its start, check-in closing a day after its end, the
calendar invite's zone data a year around it) must stay inside them, or a guest's check-in or
a reminder turns into a 500. No real event starts before 2000 or more than ten years ahead,
so those are the bounds; the code that computes times also survives rows stored before this
rule (an overflow there means "no reminder", "never closes").
"""

from datetime import UTC, datetime, timedelta

from django.utils import timezone

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
AHEAD = timedelta(days=3653)  # ten years
RANGE_WORDS = "between 2000-01-01 and ten years from now"


def latest(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) + AHEAD


def event_time_problem(value: datetime | None, now: datetime | None = None) -> str | None:
    """Why ``value`` cannot be an event's start or end, or None when it can (or is absent)."""
    if value is None or EARLIEST <= value <= latest(now):
        return None
    return f"Must be {RANGE_WORDS}."
