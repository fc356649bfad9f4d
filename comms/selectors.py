"""Reads on deliveries and suppressions shared by the send paths."""

from collections.abc import Iterable
from typing import Any

from django.db.models import QuerySet

from comms.models import Suppression


def suppressions_active(*, account_ids: Iterable[Any], channel: str = "email",
                        addresses: Iterable[str] | None = None) -> QuerySet[Suppression]:
    """The suppressions in force (not lifted) of these accounts on a channel; ``addresses``
    (compared lower-cased, as stored) narrows them. The one definition every path uses:
    dispatch, bulk send, the admin's preview."""
    rows = Suppression.objects.filter(account_id__in=list(account_ids), channel=channel,
                                      removed_at__isnull=True)
    if addresses is not None:
        rows = rows.filter(address__in={a.strip().lower() for a in addresses})
    return rows
