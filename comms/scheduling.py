"""Sends at a later time: scheduled deliveries, their release when due, and cancelling.

A message given a ``send_at`` still ahead is inserted ``scheduled`` with its time as
``next_attempt_at``; no task is published and no worker holds it. Beat's release tick
(``comms.scheduled_release``, every ``HERALD_SCHEDULE_TICK_SECONDS``) turns the due ones
``queued`` in one ``UPDATE`` on the partial index ``delivery_scheduled`` and kicks the
dispatcher, which drains them in batches like any backlog. No Celery ETA is used: a task held
past the broker's visibility timeout is delivered again, and a worker holding thousands of
them pays for each.

Cancelling is one conditional ``UPDATE`` (``scheduled`` or ``queued`` → ``cancelled``): a
worker's claim and the cancel cannot both win, so a cancelled delivery never reaches a
provider and one already claimed answers 409.
"""

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from common import logs
from common.errors import Conflict, NotFound
from comms.models import CANCELLABLE, Delivery, DeliveryEvent, Status
from comms.queueing import enqueue
from webhooks.services import webhooks_emit

# How far ahead a send may be scheduled.
HORIZON = timedelta(days=366)


def scheduled(send_at: datetime | None, *, now: datetime | None = None) -> bool:
    """Whether a message given ``send_at`` waits (a time still ahead) or goes now."""
    return send_at is not None and send_at > (now or timezone.now())


def send_at_read(value: Any, *, now: datetime | None = None) -> datetime | None:
    """An API's send time: ISO 8601 with an offset (``2027-04-17T19:00:00+02:00``, ``…Z``).
    A time in the past is now (None); more than a year ahead, without an offset or not a
    time at all is a ``ValueError`` saying which, for the family's 400."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("Must be a date and time as an ISO 8601 string with an offset, "
                         "e.g. 2027-04-17T19:00:00+02:00.")
    text = value.strip()
    try:
        when = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z"))
                                      else text)
    except ValueError:
        raise ValueError("Must be a date and time in ISO 8601, with an offset, e.g. "
                         "2027-04-17T19:00:00+02:00.") from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("Give the time's UTC offset (e.g. 2027-04-17T19:00:00+02:00 or "
                         "…Z): without it the time is ambiguous.")
    now = now or timezone.now()
    if when - now > HORIZON:
        raise ValueError("Must be at most a year ahead.")
    return when if when > now else None


def deliveries_release(*, now: datetime | None = None, limit: int = 50_000) -> int:
    """Turn the scheduled deliveries that are due ``queued`` (due now), earliest first, and
    kick the dispatcher once; returns how many. Reads only due rows (the partial index).

    One kick is enough: each full claim kicks the next batch before sending its own, so a
    released backlog keeps every worker process busy (``comms.dispatch``). If the kick cannot
    be published (the broker is down), the rows go back to ``scheduled``, due now, and the
    error is raised: the next tick releases them again, instead of their waiting ``queued``
    for the sweeper's grace period."""
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE comms_delivery SET status = %s, next_attempt_at = NULL, updated_at = %s"
            " WHERE id IN (SELECT id FROM comms_delivery WHERE status = %s"
            " AND next_attempt_at <= %s ORDER BY next_attempt_at LIMIT %s"
            " FOR UPDATE SKIP LOCKED) RETURNING id, account_id",
            [Status.QUEUED, now, Status.SCHEDULED, now, limit])
        rows = cursor.fetchall()
    released = [pk for pk, _ in rows]
    if released:
        try:
            enqueue(None)
        except Exception:
            _unrelease(released, now)
            raise
        logs.delivery_states(Status.QUEUED, rows, reason="due")
    return len(released)


def _unrelease(ids: list[Any], due: datetime) -> None:
    """Released rows whose kick was not published back to ``scheduled`` (those a worker has
    not claimed meanwhile), due at ``due``: the next tick releases them again."""
    Delivery.objects.filter(id__in=ids, status=Status.QUEUED, claimed_at__isnull=True).update(
        status=Status.SCHEDULED, next_attempt_at=due)


def delivery_cancel(rows: QuerySet[Delivery], delivery_id: Any) -> Delivery:
    """Cancel one delivery among ``rows`` (the caller's own: its account, mode and front
    end). Not among them: 404. Already claimed, sent or final: 409 saying what it is."""
    try:
        pk = uuid.UUID(str(delivery_id))
    except ValueError:
        raise NotFound("delivery") from None
    delivery = rows.filter(id=pk).first()
    if delivery is None:
        raise NotFound("delivery")
    cancelled = deliveries_cancel(rows.filter(id=delivery.id), reason="Cancelled by request.")
    if not cancelled:
        delivery.refresh_from_db(fields=["status"])
        raise Conflict(
            "not_cancellable",
            f"This delivery can no longer be cancelled: it is {delivery.status}"
            + (" (a worker is sending it now)." if delivery.status == Status.SENDING
               else "."))
    delivery.refresh_from_db()
    return delivery


def deliveries_cancel(rows: QuerySet[Delivery] | Iterable[Any], *, reason: str) -> list[Any]:
    """Cancel every delivery of ``rows`` still scheduled or queued (a queryset, or ids), with
    one ``comms.cancelled`` event each and their webhooks; returns the ids cancelled."""
    ids = (rows.values("id") if isinstance(rows, QuerySet) else list(rows))
    now = timezone.now()
    with transaction.atomic():
        # Waits for a row another transaction holds (an event's save refreshing the stored
        # context, the release tick, another cancel) and then reads it again: a row claimed
        # meanwhile (``sending``) is no longer cancellable, one still scheduled is cancelled.
        # Skipping held rows instead would leave them to be sent after a cancel that said
        # they were not cancellable, or said nothing. Locked in id order, as every caller
        # here locks, so two cancels cannot deadlock; the dispatcher's claim skips rows
        # this holds (SKIP LOCKED) and never waits on it.
        cancelled = list(
            Delivery.objects.filter(id__in=ids, status__in=CANCELLABLE).order_by("id")
            .select_for_update().values_list("id", "correlation_id", "account_id"))
        if not cancelled:
            return []
        Delivery.objects.filter(id__in=[pk for pk, _, _ in cancelled],
                                status__in=CANCELLABLE).update(
            status=Status.CANCELLED, next_attempt_at=None, failed_at=now,
            failure_type="cancelled", failure_reason=reason, updated_at=now)
        events = DeliveryEvent.objects.bulk_create([
            DeliveryEvent(delivery_id=pk, name="comms.cancelled", status=Status.CANCELLED,
                          correlation_id=correlation, occurred_at=now,
                          detail={"reason": reason})
            for pk, correlation, _ in cancelled])
        webhooks_emit(delivery_event_ids=[e.id for e in events])
    logs.delivery_states(Status.CANCELLED, [(pk, account) for pk, _, account in cancelled],
                         reason=reason)
    return [pk for pk, _, _ in cancelled]
