"""Provider events → the delivery lifecycle, in batches.

Every provider (SendGrid callbacks, SES via SNS, the sandbox) hands ``ProviderEvent``s to
``provider_events_apply``. Each event is recorded once (unique ``(delivery,
provider_event_id)``), and each delivery moves only forward (``comms.models.RANK``): a late
``delivered`` never overwrites ``opened``; a bounce after ``delivered`` still wins.
A batch costs a fixed handful of queries, not a few per event.
"""

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from common import logs, metrics
from comms.models import PERMANENT_FAILURES, RANK, Delivery, DeliveryEvent, Status, Suppression
from comms.providers import registry
from comms.providers.base import ProviderConfigurationError, ProviderEvent
from comms.services import suppressions_add
from comms.unsubscribe import Unsubscribe, resubscribes_record, unsubscribes_record
from templates.models import TRANSACTIONAL
from webhooks.services import webhooks_emit

log = logging.getLogger(__name__)

# Normalized event → (timeline name, the status it moves the delivery to, or None).
EVENT_EFFECT: dict[str, tuple[str, str | None]] = {
    "sent": ("comms.processed", None),  # the provider's own "accepted": we said comms.sent
    "delivered": ("comms.delivered", Status.DELIVERED),
    "deferred": ("comms.deferred", None),
    "opened": ("comms.opened", Status.OPENED),
    "clicked": ("comms.clicked", Status.CLICKED),
    "bounced": ("comms.bounced", Status.BOUNCED),
    "dropped": ("comms.dropped", Status.DROPPED),
    "spam_reported": ("comms.spam_reported", Status.SPAM_REPORTED),
    "unsubscribed": ("comms.unsubscribed", Status.UNSUBSCRIBED),
    "resubscribed": ("comms.resubscribed", None),
    "failed": ("comms.failed", Status.FAILED),
}
# A "blocked" bounce is the receiving server refusing this message for now (reputation,
# content), not the address: the delivery fails, but a resend is allowed and not suppressed.
SOFT_BOUNCE_TYPES = frozenset({"blocked"})


@dataclass(frozen=True)
class _Target:
    """What the event batch needs to know of one delivery (read once, in _resolve)."""

    account_id: uuid.UUID
    correlation_id: str | None
    recipient: str


@dataclass
class _Row:
    delivery_id: uuid.UUID
    target: _Target
    event: ProviderEvent
    name: str
    status: str | None
    index: int  # the event's position in the list given

    @property
    def key(self) -> tuple[uuid.UUID, str]:
        return (self.delivery_id, self.event.provider_event_id)


def provider_events_apply(events: Sequence[ProviderEvent]) -> int:
    """Apply a batch of normalized provider events; returns how many were new."""
    with transaction.atomic():
        return sum(provider_events_record(events))


def provider_events_record(events: Sequence[ProviderEvent]) -> list[bool]:
    """Apply ``events`` in the caller's transaction (atomic, no savepoint of its own); for
    each event, whether it was new (a repeated id is new at its first occurrence only)."""
    rows = _resolve(events)
    if not rows:
        return [False] * len(events)
    with transaction.atomic(savepoint=False):
        inserted = _insert_new(rows)
        new_rows = _first_new(rows, inserted)
        _advance(new_rows)
        _suppress(new_rows)
        _after_recorded([inserted[r.key] for r in new_rows])
    new = [False] * len(events)
    for row in new_rows:
        new[row.index] = True
    return new


def _first_new(rows: list[_Row], inserted: dict[tuple[uuid.UUID, str], int]) -> list[_Row]:
    """The rows whose event was inserted now, each (delivery, provider event id) once."""
    seen: set[tuple[uuid.UUID, str]] = set()
    new_rows = []
    for row in rows:
        if row.key in inserted and row.key not in seen:
            seen.add(row.key)
            new_rows.append(row)
    return new_rows


def _resolve(events: Sequence[ProviderEvent]) -> list[_Row]:
    """Find each event's delivery by our id, else by the provider's message id."""
    ids, message_ids = set(), set()
    event_ids = [_uuid(event.delivery_id) for event in events]
    for event, delivery_id in zip(events, event_ids, strict=True):
        if delivery_id:
            ids.add(delivery_id)
        elif event.provider_message_id:
            message_ids.add(event.provider_message_id)
    by_id, by_message, targets = {}, {}, {}
    for delivery_id, message_id, account_id, correlation_id, recipient in _targets(
            ids, message_ids):
        by_id[delivery_id] = delivery_id
        targets[delivery_id] = _Target(account_id, correlation_id, recipient)
        if message_id:
            by_message[message_id] = delivery_id
    rows = []
    for index, (event, event_delivery_id) in enumerate(zip(events, event_ids, strict=True)):
        delivery_id = by_id.get(event_delivery_id) or by_message.get(
            event.provider_message_id or "")
        if delivery_id is None:
            log.warning("%s event %s for unknown delivery (%s / %s): ignored", event.provider,
                        event.provider_event_id, event.delivery_id, event.provider_message_id)
            continue
        name, status = EVENT_EFFECT[event.event]
        if event.event == "bounced" and event.bounce_type in SOFT_BOUNCE_TYPES:
            status = Status.FAILED
        rows.append(_Row(delivery_id, targets[delivery_id], event, name, status, index))
    return rows


def _targets(ids: set[uuid.UUID], message_ids: set[str]) -> list[tuple[Any, ...]]:
    """(id, provider message id, account, correlation id, recipient) of the deliveries with
    one of ``ids`` or ``message_ids``: one JSON parameter each, not one
    placeholder per id (psycopg's client-side quoting of long lists costs more than the query)."""
    columns = ("id", "provider_message_id", "account_id", "correlation_id", "recipient")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(columns)} FROM {Delivery._meta.db_table}"
            " WHERE id = ANY(ARRAY(SELECT json_array_elements_text(%s::json))::uuid[])"
            " OR provider_message_id = ANY(ARRAY(SELECT json_array_elements_text(%s::json)))",
            [json.dumps([str(i) for i in ids]), json.dumps(list(message_ids))])
        return cursor.fetchall()


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _detail(event: ProviderEvent) -> dict[str, Any]:
    detail: dict[str, Any] = {"provider": event.provider}
    if event.provider_message_id:  # what the sweeper records if it reconciles the delivery
        detail["messageId"] = event.provider_message_id
    for key in ("reason", "bounce_type", "bounce_subtype", "recipient"):
        if getattr(event, key):
            detail[key] = getattr(event, key)
    detail["raw"] = event.raw
    return detail


def _insert_new(rows: list[_Row]) -> dict[tuple[uuid.UUID, str], int]:
    """Insert the events that are not recorded yet; map (delivery, provider event id) → pk."""
    inserted = delivery_events_insert([
        {"d": str(r.delivery_id), "n": r.name, "s": r.status or "",
         "c": r.target.correlation_id, "o": r.event.occurred_at.isoformat(),
         "p": r.event.provider_event_id, "x": _detail(r.event)}
        for r in rows])
    return {(delivery_id, provider_event_id): pk
            for pk, delivery_id, provider_event_id in inserted}


_INSERT_SQL = (
    "INSERT INTO {table} (delivery_id, name, status, correlation_id, occurred_at, created_at,"
    " provider_event_id, detail) SELECT d, n, s, c, o, now(), p, x FROM json_to_recordset(%s::json)"
    " AS t(d uuid, n text, s text, c text, o timestamptz, p text, x jsonb)"
    " ON CONFLICT (delivery_id, provider_event_id) DO NOTHING"
    " RETURNING id, delivery_id, provider_event_id"
)


def delivery_events_insert(records: list[dict[str, Any]]) -> list[tuple[int, uuid.UUID, Any]]:
    """PostgreSQL: ``DeliveryEvent`` rows in one INSERT, the records (``d`` delivery id, ``n``
    name, ``s`` status, ``c`` correlation id, ``o`` occurred at, ``p`` provider event id or
    None, ``x`` detail) as one JSON parameter — one placeholder per value, or psycopg's
    quoting of arrays, costs more to build than the INSERT to run. An event a provider sent
    before is skipped. Returns (id, delivery id, provider event id) of the rows inserted."""
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_SQL.format(table=DeliveryEvent._meta.db_table),
                       [json.dumps(records)])
        return cursor.fetchall()


@dataclass(frozen=True)
class _Change:
    status: str | None  # the highest-ranked status the batch brings, if any
    rank: int
    delivered_at: datetime | None
    failure: dict[str, Any]


def _changes(rows: list[_Row]) -> dict[uuid.UUID, _Change]:
    """Per delivery: the highest-ranked new status (ties: the earliest event) and the first
    delivery time."""
    best: dict[uuid.UUID, _Row] = {}
    delivered_at: dict[uuid.UUID, datetime] = {}
    for row in sorted(rows, key=lambda r: r.event.occurred_at):
        if row.status == Status.DELIVERED:
            delivered_at.setdefault(row.delivery_id, row.event.occurred_at)
        if row.status is not None and (
                row.delivery_id not in best
                or RANK[row.status] > RANK[best[row.delivery_id].status]):
            best[row.delivery_id] = row
    changes = {}
    for delivery_id in best.keys() | delivered_at.keys():
        row = best.get(delivery_id)
        failure = {}
        if row is not None and RANK[row.status] >= RANK[Status.FAILED]:
            failure = {
                "failure_type": row.status if row.status in PERMANENT_FAILURES else (
                    row.event.bounce_type or row.event.event),
                "failure_reason": row.event.reason, "failed_at": row.event.occurred_at,
                "bounce_type": row.event.bounce_type,
                "bounce_subtype": row.event.bounce_subtype,
            }
        changes[delivery_id] = _Change(row.status if row else None,
                                       RANK[row.status] if row else -1,
                                       delivered_at.get(delivery_id), failure)
    return changes


def _advance(rows: list[_Row]) -> None:
    """Move each delivery to the highest-ranked status its new events carry, if higher than
    its current one; record the first delivery time even when the status is already past it."""
    changes = _changes(rows)
    if not changes:
        return
    _advance_returning(changes)


def _advance_returning(changes: dict[uuid.UUID, _Change]) -> None:
    """One UPDATE joined on the batch's changes (one JSON parameter): the rank comparison
    happens in the database, so a concurrent batch can never move a delivery backwards. Rows
    are taken in id order (no deadlock between batches touching the same deliveries) and only
    rows that change are written."""
    records = json.dumps([
        {"id": str(delivery_id), "status": change.status or "", "rank": change.rank,
         "delivered_at": _iso(change.delivered_at), "failing": bool(change.failure),
         "ftype": change.failure.get("failure_type", ""),
         "freason": change.failure.get("failure_reason", ""),
         "failed_at": _iso(change.failure.get("failed_at")),
         "btype": change.failure.get("bounce_type", ""),
         "bsub": change.failure.get("bounce_subtype", "")}
        for delivery_id, change in sorted(changes.items())])
    with connection.cursor() as cursor:
        cursor.execute(_advance_sql(), [records])
        moved = cursor.fetchall()
    # Counted when the caller's transaction commits (a batch rolled back moved nothing).
    delivered = [row[:3] for row in moved if row[3]]
    failed = [row[:3] for row in moved if row[4]]
    if delivered or failed:
        transaction.on_commit(lambda: (metrics.deliveries_delivered(delivered),
                                       metrics.deliveries_failed(failed)), robust=True)
    _moves_logged([row[5:8] for row in moved if row[8]])


def _moves_logged(rows: list[tuple[Any, Any, str]]) -> None:
    """One line per delivery the batch moved (a row written only for its delivery time keeps
    its status and is not a move), once the batch commits."""
    if rows:
        transaction.on_commit(lambda: logs.delivery_rows(rows), robust=True)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _advance_sql() -> str:
    rank = "CASE d.status " + " ".join(
        f"WHEN '{status}' THEN {value}" for status, value in RANK.items()) + " END"
    advance = f"({rank}) < v.rank"

    def failing(column: str, value: str) -> str:
        return f" {column} = CASE WHEN {advance} AND v.failing THEN v.{value} ELSE d.{column} END"

    return (
        f"UPDATE {Delivery._meta.db_table} AS d SET"
        f" status = CASE WHEN {advance} THEN v.status ELSE d.status END,"
        # A row still being sent leaves ``sending`` marked with its claim, for the sweeper to
        # record its send if its worker never does (``comms.dispatch._reconcile``).
        f" next_attempt_at = CASE WHEN d.status = 'sending' AND {advance} THEN d.claimed_at"
        " ELSE d.next_attempt_at END,"
        " delivered_at = COALESCE(d.delivered_at, v.delivered_at),"
        + ",".join(failing(column, value) for column, value in (
            ("failure_type", "ftype"), ("failure_reason", "freason"), ("failed_at", "failed_at"),
            ("bounce_type", "btype"), ("bounce_subtype", "bsub")))
        + " FROM json_to_recordset(%s::json) AS v(id uuid, status text, rank integer,"
        " delivered_at timestamptz, failing boolean, ftype text, freason text,"
        " failed_at timestamptz, btype text, bsub text)"
        f" WHERE d.id = v.id AND ({advance}"
        " OR (d.delivered_at IS NULL AND v.delivered_at IS NOT NULL))"
        # For the metrics: the row's first delivery time set now (it is this batch's), and
        # a failure status taken now (the batch's status and failure time both its own; a
        # row already failed is written only for its delivery time and keeps its own).
        " RETURNING d.channel, d.provider, d.mode,"
        " v.delivered_at IS NOT NULL AND d.delivered_at = v.delivered_at,"
        " v.failing AND d.status = v.status AND d.failed_at IS NOT DISTINCT FROM v.failed_at,"
        # For the log (common.logs): the row and whether it now has the batch's status.
        " d.id, d.account_id, d.status, d.status = v.status"
    )


def _suppress(rows: list[_Row]) -> None:
    """Hard bounces, drops and spam reports suppress the address for every message; a
    provider's unsubscribe (and resubscribe) is the recipient's choice about a topic, as
    Herald's own one-click link's is (``_unsubscribes``)."""
    suppressions_add(items=[
        {"account_id": row.target.account_id, "reason": row.status,
         "address": row.event.recipient or row.target.recipient,
         "detail": row.event.reason, "delivery_id": row.delivery_id}
        for row in rows
        if row.status in PERMANENT_FAILURES and row.event.event != "unsubscribed"
    ])
    _unsubscribes([row for row in rows if row.event.event in ("unsubscribed", "resubscribed")])


def _unsubscribes(rows: list[_Row]) -> None:
    """Each unsubscribe suppresses the topic of the email it came from (its template's
    category), or every topic when the provider's list is global or the email had none (a
    ticket: transactional mail is never unsubscribed from, so the recipient meant the rest);
    a resubscribe lifts that again. Never a suppression of every message: tickets still go."""
    if not rows:
        return
    kinds = {delivery_id: (mode, category) for delivery_id, mode, category in
             Delivery.objects.filter(id__in={r.delivery_id for r in rows})
             .values_list("id", "mode", "template__category")}
    changes = [(row, kinds[row.delivery_id][0], _topic(row, kinds[row.delivery_id][1]))
               for row in rows if row.delivery_id in kinds]
    unsubscribes_record([
        Unsubscribe(row.target.account_id, mode, row.event.recipient or row.target.recipient,
                    topic, row.event.reason or f"Unsubscribed at {row.event.provider}",
                    row.delivery_id)
        for row, mode, topic in changes if row.event.event == "unsubscribed"])
    for row, mode, topic in changes:
        if row.event.event == "resubscribed":
            resubscribes_record(account_id=row.target.account_id, mode=mode,
                                address=row.event.recipient or row.target.recipient,
                                topics=[topic], reason=f"Resubscribed at {row.event.provider}")


def _topic(row: _Row, category: str | None) -> str:
    if not category or category == TRANSACTIONAL or _everything(row.event):
        return Suppression.ALL_TOPICS
    return category


def _everything(event: ProviderEvent) -> bool:
    """The provider's word on it (``CallbackView.unsubscribes_everything``): a provider
    without callbacks (the sandbox) unsubscribes from the email's topic."""
    try:
        callbacks = registry.provider(event.provider).callbacks
    except ProviderConfigurationError:
        return False
    return bool(callbacks) and registry.load(callbacks).unsubscribes_everything(event)


def _after_recorded(event_ids: list[int]) -> None:
    """What follows recorded lifecycle events: customer webhooks."""
    if event_ids:
        webhooks_emit(delivery_event_ids=event_ids)
