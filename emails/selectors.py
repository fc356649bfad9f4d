"""Reads of spec 003: the email history, newest first, paged by keyset."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery

from accounts.models import Account
from common.errors import NotFound
from comms.models import DeliveryEvent, Status
from domains.models import Brand
from emails.models import Email

# The spec's four states over the delivery statuses: every failure to reach the inbox is
# "bounced"; an unsubscribe after delivery is still "delivered". Beyond the spec, a message
# given a SendAt is "scheduled" until then, and "cancelled" if withdrawn before it was sent.
STATES: dict[str, tuple[str, ...]] = {
    "scheduled": (Status.SCHEDULED,),
    "cancelled": (Status.CANCELLED,),
    "sent": (Status.QUEUED, Status.SENDING, Status.SENT),
    "delivered": (Status.DELIVERED, Status.OPENED, Status.CLICKED, Status.UNSUBSCRIBED),
    "bounced": (Status.BOUNCED, Status.DROPPED, Status.FAILED, Status.SUPPRESSED),
    "complaint": (Status.SPAM_REPORTED,),
}
STATE_OF = {status: state for state, statuses in STATES.items() for status in statuses}


@dataclass(frozen=True)
class HistoryFilters:
    brand_id: uuid.UUID | None = None
    state: str | None = None
    after: int | None = None  # unix time: nothing updated after it
    email: str | None = None  # exact address; the other filters are then ignored


@dataclass(frozen=True)
class Position:
    """The last row of a page: the next page starts strictly after it."""

    created_at: datetime
    delivery_id: uuid.UUID


@dataclass(frozen=True)
class HistoryPage:
    emails: list[Email]
    next: Position | None


def brand_owned(*, account: Account, brand_id: uuid.UUID) -> Brand:
    brand = Brand.objects.filter(account=account, uuid=brand_id).first()
    if brand is None:
        raise NotFound("brand")
    return brand


def email_history(*, account: Account, mode: str, filters: HistoryFilters,
                  start: Position | None, limit: int) -> HistoryPage:
    """One page of the account's emails sent in this key mode, newest first, on the
    immutable key (created_at, id): emails that arrive while a client pages come before its
    cursor, so every email that existed when paging began is returned exactly once."""
    rows = _filtered(account, filters).filter(delivery__mode=mode)
    if start is not None:
        rows = rows.filter(Q(created_at__lt=start.created_at)
                           | Q(created_at=start.created_at, delivery_id__lt=start.delivery_id))
    last_event = DeliveryEvent.objects.filter(delivery_id=OuterRef("delivery_id")).order_by(
        "-occurred_at").values("occurred_at")[:1]
    page = list(
        rows.select_related("delivery", "brand")
        .defer("delivery__subject", "delivery__html_body", "delivery__text_body",
               "delivery__context")
        .annotate(last_event_at=Subquery(last_event))
        .order_by("-created_at", "-delivery_id")[:limit + 1]
    )
    more = len(page) > limit
    page = page[:limit]
    tail = Position(page[-1].created_at, page[-1].delivery_id) if more else None
    return HistoryPage(page, tail)


def email_one(*, account: Account, mode: str, message_id: uuid.UUID) -> Email:
    """One email of the account's in this key mode, as the history shows it; else 404."""
    last_event = DeliveryEvent.objects.filter(delivery_id=OuterRef("delivery_id")).order_by(
        "-occurred_at").values("occurred_at")[:1]
    email = (Email.objects.filter(account=account, delivery__mode=mode, delivery_id=message_id)
             .select_related("delivery", "brand")
             .annotate(last_event_at=Subquery(last_event)).first())
    if email is None:
        raise NotFound("message")
    return email


def _filtered(account: Account, filters: HistoryFilters) -> QuerySet[Email]:
    rows = Email.objects.filter(account=account)
    if filters.email is not None:
        return rows.filter(address=filters.email.strip().lower())
    if filters.brand_id is not None:
        rows = rows.filter(brand=brand_owned(account=account, brand_id=filters.brand_id))
    if filters.state is not None:
        rows = rows.filter(delivery__status__in=STATES[filters.state])
    if filters.after is not None:
        # LastUpdated (whole seconds) ≤ After: created and every event before After + 1 s.
        end = datetime.fromtimestamp(filters.after, UTC) + timedelta(seconds=1)
        later = DeliveryEvent.objects.filter(delivery_id=OuterRef("delivery_id"),
                                             occurred_at__gte=end)
        rows = rows.filter(created_at__lt=end).exclude(Exists(later))
    return rows
