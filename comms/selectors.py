"""Reads on deliveries and suppressions shared by the send paths."""

from collections.abc import Iterable
from typing import Any

from django.db.models import QuerySet

from comms.models import Suppression


def suppressions_active(*, account_ids: Iterable[Any], mode: str, channel: str = "email",
                        addresses: Iterable[str] | None = None) -> QuerySet[Suppression]:
    """The suppressions in force (not lifted) for sends of this key mode on a channel:
    a live send honours live suppressions only (a sandbox bounce never blocks it), a test
    send both (to rehearse what live would do). ``addresses`` (compared lower-cased, as
    stored) narrows them. The one definition every path uses: dispatch, bulk send, the
    admin's preview, the API's list."""
    rows = Suppression.objects.filter(account_id__in=list(account_ids), channel=channel,
                                      mode__in=suppression_modes(mode),
                                      removed_at__isnull=True)
    if addresses is not None:
        rows = rows.filter(address__in={a.strip().lower() for a in addresses})
    return rows


def suppression_modes(mode: str) -> tuple[str, ...]:
    """The suppressions' modes a send in ``mode`` honours."""
    return ("live",) if mode == "live" else ("live", "test")
