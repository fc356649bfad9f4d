"""Recording a claimed delivery's outcome: sent, failed, retry later, or back to the queue.

Every write is guarded by the claim token (``claimed_at``, ``mine``), so a worker whose lease
expired can never overwrite what the worker that took over recorded; a status, its timeline
event and its customer webhooks commit together. Used by the one send pipeline
(``comms.pipeline``) and the sweeper (``comms.dispatch``).

Each write is ``durable``: a lost database connection (a restart, a failover,
``pg_terminate_backend``) does not abandon an outcome the provider already gave: the write is
tried again on a fresh connection for up to half the lease. Each write is also idempotent, so
a retry after a commit whose answer was lost records nothing twice (``sent`` only once:
``sent_at IS NULL``; the others only from ``sending``).
"""

import functools
import json
import logging
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from common import jobs, logs, metrics
from comms.lifecycle import delivery_events_insert
from comms.models import Delivery, DeliveryEvent, Status
from comms.providers.base import ProviderTransientError
from comms.queueing import enqueue
from webhooks.services import webhooks_emit

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
# What a lost connection raises: the server went away, or the connection is already closed.
CONNECTION_LOST = (OperationalError, InterfaceError)
RETRY_FIRST_PAUSE, RETRY_MAX_PAUSE = 0.05, 2.0
# Deliveries as durable jobs (``common.jobs``): queued → sending, claimed with ``claimed_at``.
DELIVERIES = jobs.JobTable(Delivery, ready=Status.QUEUED, running=Status.SENDING)


@dataclass(frozen=True)
class Content:
    subject: str
    html: str
    text: str
    template_version: int | None


def durable(write: Callable[P, R]) -> Callable[P, R]:
    """Retry ``write`` on a fresh connection when the database connection is lost, with
    backoff, for up to half the sending lease (so the row is still ours when it succeeds).
    Inside a caller's transaction nothing is retried: only the caller can start it again."""

    @functools.wraps(write)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        if connection.in_atomic_block:
            return write(*args, **kwargs)
        deadline = time.monotonic() + settings.HERALD_SENDING_LEASE_SECONDS / 2
        pause = RETRY_FIRST_PAUSE
        while True:
            try:
                return write(*args, **kwargs)
            except CONNECTION_LOST as exc:
                if time.monotonic() + pause > deadline:
                    raise
                log.warning("%s: database connection lost (%s); retrying on a new one",
                            write.__name__, str(exc).strip()[:200])
                connection_drop()
                time.sleep(pause)
                pause = min(pause * 2, RETRY_MAX_PAUSE)

    return run


def connection_drop() -> None:
    """Give up this thread's connection (the pool discards a broken one): the next query
    opens or takes a working one."""
    with suppress(Exception):
        connection.close()


def mine(delivery: Delivery):
    """This worker's claim: the row is still held with the token we claimed it with."""
    return Delivery.objects.filter(id=delivery.id, claimed_at=delivery.claimed_at)


def _content_fields(content: Content) -> dict[str, Any]:
    return {"subject": content.subject, "html_body": content.html,
            "text_body": content.text, "template_version": content.template_version}


def record_event(delivery: Delivery, name: str, status: str, **detail: Any) -> None:
    event = DeliveryEvent.objects.create(
        delivery_id=delivery.id, name=name, status=status,
        correlation_id=delivery.correlation_id, occurred_at=timezone.now(), detail=detail,
    )
    webhooks_emit(delivery_event_ids=[event.id])


@durable
def mark_sent(sent: list[tuple[Delivery, Content, str]], provider: str, *,
              reconciled: bool = False) -> None:
    """Record a batch's accepted messages: content and ids, ``sent`` (only from ``sending``,
    so a fast callback is never overwritten), and one comms.sent event each. Only once per
    delivery (``sent_at`` still empty): a retry after a lost answer to the commit, or a
    worker that outlived its lease after the sweeper reconciled its rows, records nothing.
    ``reconciled``: the sweeper records what the provider reported (the worker died)."""
    if not sent:
        return
    now = timezone.now()
    extra = {"reconciled": True} if reconciled else {}
    with transaction.atomic():  # the status, its event and its webhooks commit together
        held = _update_sent(sent, provider, now)
        # Only rows still held with our claim get their event: one another worker took over
        # (lease expired) records its own; one cancelled meanwhile (GDPR erasure) none.
        event_ids = _sent_events_insert(
            [(d, message_id) for d, _, message_id in sent if d.id in held], provider, now,
            extra)
        webhooks_emit(delivery_event_ids=event_ids)
    metrics.deliveries_sent((d.channel, provider, d.mode) for d, _, _ in sent if d.id in held)
    updated = len(held)
    if updated != len(sent):
        log.error("%d deliveries were recorded already or sent after their lease expired: "
                  "duplicates are possible", len(sent) - updated)
    logs.delivery_states(Status.SENT, ((d.id, d.account_id) for d, _, _ in sent if d.id in held),
                         provider=provider)


def _sent_events_insert(rows: list[tuple[Delivery, str]], provider: str,
                        now: datetime, extra: dict[str, Any]) -> list[int]:
    """One ``comms.sent`` event per delivery: one INSERT with the rows as one
    JSON parameter (the ORM's bulk_create cost ~0.05 ms of CPU per email); returns their ids."""
    if not rows:
        return []
    at = now.isoformat()  # once: the same time for the batch
    inserted = delivery_events_insert([
        {"d": str(d.id), "n": "comms.sent", "s": Status.SENT, "c": d.correlation_id,
         "o": at, "p": None, "x": {"provider": provider, "messageId": message_id, **extra}}
        for d, message_id in rows])
    return sorted(pk for pk, _, _ in inserted)


def _update_sent(sent: list[tuple[Delivery, Content, str]], provider: str,
                 now: datetime) -> set[Any]:
    """One UPDATE for the batch (the rows as one JSON parameter joined on id, guarded by the
    claim token). Returns the ids still held by us."""
    token = sent[0][0].claimed_at
    rows = [{"id": str(delivery.id), "mid": message_id, "subj": content.subject,
             "html": content.html, "txt": content.text, "ver": content.template_version}
            for delivery, content, message_id in sent]
    with connection.cursor() as cursor:
        cursor.execute(_UPDATE_SENT_SQL.format(table=Delivery._meta.db_table),
                       [provider, now, json.dumps(rows, ensure_ascii=False), token])
        return {Delivery._meta.pk.to_python(row[0]) for row in cursor.fetchall()}


# The batch as one JSON parameter: six placeholders a row cost more of the worker's CPU to
# adapt than the UPDATE takes to run. Not ASCII-escaped: a CJK body would be six times its size
# (the content is ``storable``: no lone surrogates to escape).
_UPDATE_SENT_SQL = (
    "UPDATE {table} AS d SET"
    " status = CASE WHEN d.status = 'sending' THEN 'sent' ELSE d.status END,"
    " provider = %s, sent_at = %s, next_attempt_at = NULL, provider_message_id = v.mid,"
    " subject = v.subj, html_body = v.html, text_body = v.txt, template_version = v.ver"
    " FROM json_to_recordset(%s::json)"
    " AS v(id uuid, mid text, subj text, html text, txt text, ver integer)"
    " WHERE d.id = v.id AND d.claimed_at = %s AND d.sent_at IS NULL RETURNING d.id"
)


@durable
def retry_or_fail(delivery: Delivery, provider: str, exc: ProviderTransientError,
                   content: Content) -> None:
    if delivery.attempts >= settings.HERALD_SEND_MAX_ATTEMPTS:
        fail(delivery, provider, Status.FAILED, "transient",
              f"Transient API-side failure after {delivery.attempts} attempts: {exc}")
        return
    delay = retry_delay(attempt=delivery.attempts, retry_after=exc.retry_after)
    with transaction.atomic():
        updated = jobs.requeue(DELIVERIES, [delivery.id], delivery.claimed_at,
                               due_at=timezone.now() + timedelta(seconds=delay),
                               give_back=False, provider=provider, **_content_fields(content))
        if updated:
            record_event(delivery, "comms.retry_scheduled", Status.QUEUED, provider=provider,
                         attempt=delivery.attempts, retryInSeconds=round(delay, 3),
                         reason=str(exc))
    if updated:
        enqueue(str(delivery.id), countdown=delay)
        logs.delivery_states(Status.QUEUED, [(delivery.id, delivery.account_id)],
                             provider=provider, attempts=delivery.attempts, reason="retry")


def retry_delay(*, attempt: int, retry_after: float | None) -> float:
    """The one backoff (``common.jobs.backoff``) with the deliveries' settings: exponential
    with jitter; a provider's own ``retry_after`` (429) is a floor, capped so a wild header
    cannot park a message for days."""
    return jobs.backoff(attempt, base=settings.HERALD_RETRY_BASE_SECONDS,
                        cap=settings.HERALD_RETRY_MAX_SECONDS,
                        floor=None if retry_after is None else max(retry_after, 0.0))


@durable
def fail(delivery: Delivery, provider: str, status: str, failure_type: str, reason: str) -> None:
    with transaction.atomic():  # the status, its event and its webhooks commit together
        updated = mine(delivery).filter(status=Status.SENDING).update(
            status=status, provider=provider, failure_type=failure_type,
            failure_reason=reason, failed_at=timezone.now(),
        )
        if updated:
            transaction.on_commit(lambda: logs.delivery_states(
                status, [(delivery.id, delivery.account_id)], provider=provider,
                failure=failure_type), robust=True)
            record_event(delivery, "comms.failed", status, provider=provider,
                         failureType=failure_type, reason=reason)
    if updated:  # committed: counted once (a retried write finds the row moved on)
        metrics.deliveries_failed([(delivery.channel, provider, delivery.mode)])


def still_mine(delivery: Delivery) -> bool:
    return mine(delivery).filter(status=Status.SENDING).exists()


def requeue_each(deliveries: list[Delivery]) -> None:
    """Claimed deliveries this worker did not get to: back to the queue, due now, without
    using an attempt (``requeue_claimed``, one UPDATE per claim token)."""
    tokens: dict[Any, list[Any]] = {}
    for delivery in deliveries:
        tokens.setdefault(delivery.claimed_at, []).append(delivery.id)
    for token, ids in tokens.items():
        requeue_claimed(ids, token)


@durable
def requeue_claimed(ids: list[Any], token: datetime) -> int:
    """Claimed deliveries nothing was sent for yet (their worker lost the database before the
    provider call): back to the queue at once, without using an attempt, instead of waiting
    for the sweeper past the lease. Returns how many went back."""
    requeued = jobs.requeue(DELIVERIES, ids, token, due_at=timezone.now())
    if requeued:  # the ids only: no query for their accounts on this rare path
        logs.delivery_states(Status.QUEUED, ((pk, None) for pk in ids), reason="given back")
    return requeued


@durable
def release(delivery: Delivery, provider: str) -> None:
    """A configuration error: put the delivery back, without using up an attempt, for the
    sweeper to send once Herald is fixed. Due only after the retry base delay, so the next
    kick of a backlog does not claim it again at once (a loop hitting the provider with a
    bad key as fast as workers run)."""
    log.error("Provider %s is misconfigured; delivery %s stays queued", provider, delivery.id,
              extra={"delivery_id": str(delivery.id), "account": str(delivery.account_id)})
    if jobs.requeue(DELIVERIES, [delivery.id], delivery.claimed_at, due_at=timezone.now()
                    + timedelta(seconds=settings.HERALD_RETRY_BASE_SECONDS)):
        logs.delivery_states(Status.QUEUED, [(delivery.id, delivery.account_id)],
                             provider=provider, reason="configuration")
