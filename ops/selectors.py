"""The work waiting, read once for every place that shows it: ``/metrics``' queue gauges and
the admin home's Health card (``config.admin_home``) ask ``queues_waiting`` the same question,
so they cannot disagree about how many items wait or since when.

One statement, each part on its table's index: a queued delivery is due at its next attempt,
or at its creation when it has none (``delivery_sweep``, ``delivery_queued``); a scheduled one
at its send time (``delivery_scheduled``); a webhook message at its next attempt
(``webhook_message_sweep``); a callback batch at its arrival (``callback_pending``).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from comms.models import CallbackBatch, Delivery
from webhooks.models import Message

# The queues, in the order they are shown. Callback batches belong to no account.
DELIVERIES, SCHEDULED, WEBHOOK_MESSAGES, CALLBACK_BATCHES = (
    "deliveries", "scheduled", "webhook_messages", "callback_batches")
QUEUES = (DELIVERIES, SCHEDULED, WEBHOOK_MESSAGES, CALLBACK_BATCHES)


@dataclass(frozen=True)
class Queue:
    """One queue: how many items wait, when the oldest one that is due fell due (None: none
    due), and when the earliest item falls due, due or not (scheduled sends only)."""

    depth: int
    oldest_due: datetime | None
    next_due: datetime | None = None

    def age(self, at: datetime) -> float:
        """Seconds the oldest due item has waited at ``at`` (0: none due)."""
        if self.oldest_due is None:
            return 0.0
        return max((at - self.oldest_due).total_seconds(), 0.0)


@dataclass(frozen=True)
class Queues:
    """The queues as the database saw them at ``at`` (its statement time, the clock "due" was
    read against)."""

    at: datetime
    queues: dict[str, Queue]

    def __getitem__(self, name: str) -> Queue:
        return self.queues[name]


def queues_waiting(*, account_ids: Iterable[Any] | None = None) -> Queues:
    """Every queue's depth and oldest due item; ``account_ids``: only those accounts' items
    (both modes: a test key's sends wait in the same queue), and no callback batches (they
    belong to no account). None: every account's, and the callback batches."""
    scoped = account_ids is not None
    scope = " AND account_id = ANY(%(accounts)s)" if scoped else ""
    parts = [_DELIVERIES, _SCHEDULED, _WEBHOOK_MESSAGES] + ([] if scoped else [_BATCHES])
    sql = " UNION ALL ".join(parts).format(
        scope=scope, delivery=Delivery._meta.db_table, message=Message._meta.db_table,
        batch=CallbackBatch._meta.db_table)
    params = {"accounts": list(account_ids)} if scoped else {}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return Queues(at=rows[0][4], queues={
        name: Queue(int(depth), oldest, next_due)
        for name, depth, oldest, next_due, _ in rows})


_NOW = "statement_timestamp()"
_DELIVERIES = (
    "SELECT 'deliveries', (SELECT count(*) FROM {delivery} WHERE status = 'queued'{scope}),"
    " LEAST((SELECT min(next_attempt_at) FROM {delivery} WHERE status = 'queued'"
    f" AND next_attempt_at <= {_NOW}{{scope}}),"
    " (SELECT min(created_at) FROM {delivery} WHERE status = 'queued'"
    " AND next_attempt_at IS NULL{scope})),"
    f" NULL::timestamptz, {_NOW}")
_SCHEDULED = (
    f"SELECT 'scheduled', count(*), min(next_attempt_at) FILTER (WHERE next_attempt_at <= {_NOW}),"
    f" min(next_attempt_at), {_NOW} FROM {{delivery}} WHERE status = 'scheduled'{{scope}}")
_WEBHOOK_MESSAGES = (
    "SELECT 'webhook_messages', (SELECT count(*) FROM {message} WHERE status = 'pending'{scope}),"
    " LEAST((SELECT min(next_attempt_at) FROM {message} WHERE status = 'pending'"
    f" AND next_attempt_at <= {_NOW}{{scope}}),"
    " (SELECT min(created_at) FROM {message} WHERE status = 'pending'"
    " AND next_attempt_at IS NULL{scope})),"
    f" NULL::timestamptz, {_NOW}")
_BATCHES = (
    f"SELECT 'callback_batches', count(*), min(received_at), NULL::timestamptz, {_NOW}"
    " FROM {batch} WHERE processed_at IS NULL")
