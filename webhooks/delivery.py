"""Delivering customer webhooks: a task POSTs its message together with the due messages of
the same endpoint (a batch), signed, in order, on one keep-alive connection, then records
every attempt and outcome in one transaction (see docs/ARCHITECTURE.md, flow 7)."""

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import Case, Q, Value, When
from django.utils import timezone

from common import http, jobs, metrics, signing, ssrf
from common.times import iso
from webhooks.models import Attempt, Endpoint, Message
from webhooks.services import MESSAGES, endpoint_disable, message_lease, tasks_enqueue

log = logging.getLogger(__name__)
Status = Message.Status

# --- delivering -----------------------------------------------------------------------------
# A task delivers its message together with other due messages of the same endpoint (a
# batch): one claim, the POSTs one after another on the endpoint's keep-alive connection, then
# one transaction for every attempt and outcome. Settings (config/settings.py):
# WEBHOOKS_BATCH_SIZE (messages per batch), WEBHOOKS_BATCH_SECONDS (after this long a batch
# takes no more: a timeout always ends it), WEBHOOKS_SLOW_BATCH_SECONDS (a batch in flight
# this long, past the batch budget, is waiting on a slow request: it keeps other batches off
# its endpoint), WEBHOOKS_RELEASE_DELAY_SECONDS, WEBHOOKS_TASK_SECONDS (how long a task goes on
# claiming its endpoint's next batches after full and wholly received ones; 0: one round a
# task), WEBHOOKS_PARALLEL_BATCHES (batches of an endpoint a task POSTs at once when it has a
# backlog; 1: one at a time).


class _Item(NamedTuple):
    """What a batch needs of a claimed message (model instances cost ~10 µs each)."""

    id: int
    webhook_id: str
    payload: Any


@dataclass
class _Batch:
    endpoint: Endpoint
    token: datetime  # claimed_at of every message of the batch: guards every later write
    attempts: dict[int, int]  # message id → attempts, this one included
    sent: list[tuple[_Item, http.Outcome]] = field(default_factory=list)
    unsent: list[_Item] = field(default_factory=list)  # claimed, not POSTed
    retried: list[int] = field(default_factory=list)
    failing_since: datetime | None = None  # the endpoint's run of failures after the batch
    disabled: str = ""  # why the batch disabled the endpoint (410, days of failures)


def message_deliver(*, webhook_id: str) -> None:
    """Claim this message, if due, with up to ``WEBHOOKS_BATCH_SIZE - 1`` other due messages
    of its endpoint (oldest first), POST them in order, record every attempt and outcome in
    one transaction, then retry, finish or disable.

    When that batch is full (a backlog), the task claims up to
    ``WEBHOOKS_PARALLEL_BATCHES - 1`` more of the endpoint's due batches and POSTs them at
    the same time, each in order on its own connection (threads: only the HTTP requests; the
    database work stays in the task's thread), as batches of other tasks already run beside
    each other: a worker process waits on several answers at once instead of one. While every
    batch comes back full and wholly received, the task claims the endpoint's next batches
    itself, for up to ``WEBHOOKS_TASK_SECONDS``, instead of a follow-up task per batch (a
    Celery task cost ~2-7 ms of worker CPU, as much as 10-30 POSTs).

    A task whose message is already claimed or finished does nothing. No transaction is open
    during the HTTP requests. A batch stops after ``WEBHOOKS_BATCH_SECONDS`` (a timeout always
    stops it): the rest go back to pending without using an attempt, so a hanging endpoint
    holds one worker for one timeout per round of batches.
    """
    started = time.monotonic()
    token = timezone.now()
    attempts = _claim(webhook_id, token)
    batches: list[_Batch] = []
    while attempts:
        batches = _loaded(attempts, token)
        _post_batches(batches)
        for batch in batches:
            _record(batch)
        if not all(_goes_on(batch, started) for batch in batches):
            break
        token = timezone.now()
        attempts = _claim_next(batches[0].endpoint.id, token)
    if batches:
        _follow_up(batches)


def _loaded(attempts: dict[int, int], token: datetime) -> list[_Batch]:
    """The claimed batch with its messages and endpoint; when it is full, up to
    ``WEBHOOKS_PARALLEL_BATCHES - 1`` more of the endpoint's due batches beside it."""
    first = _batch(attempts, token, None)
    endpoint = first.endpoint
    batches = [first]
    parallel = settings.WEBHOOKS_PARALLEL_BATCHES
    if len(attempts) < settings.WEBHOOKS_BATCH_SIZE or not _sendable(endpoint):
        return batches
    while len(batches) < parallel:
        token = timezone.now()
        more = _claim_next(endpoint.id, token)
        if not more:
            break
        batches.append(_batch(more, token, endpoint))
    return batches


def _batch(attempts: dict[int, int], token: datetime, endpoint: Endpoint | None) -> _Batch:
    rows = list(Message.objects.filter(id__in=attempts).order_by("created_at", "id")
                .values_list("id", "webhook_id", "payload", "endpoint_id"))
    if endpoint is None:
        endpoint = Endpoint.objects.get(id=rows[0][3])
    batch = _Batch(endpoint, token, attempts, failing_since=endpoint.failing_since)
    batch.unsent = [_Item(*row[:3]) for row in rows]  # until POSTed
    return batch


def _sendable(endpoint: Endpoint) -> bool:
    return endpoint.is_active and not endpoint.deleted_at


def _post_batches(batches: list[_Batch]) -> None:
    """POST each batch in order, the batches at the same time (a thread for each but the
    first); an error raised in a thread is raised here once all are done."""
    if not _sendable(batches[0].endpoint):
        return  # all stay unsent: recorded as failed (disabled, deleted)
    errors: list[BaseException] = []

    def post(batch: _Batch) -> None:
        try:
            _post_batch(batch, batch.unsent)
        except BaseException as exc:  # raised again in the task's thread
            errors.append(exc)
        finally:
            if threading.current_thread() is not main:
                connections.close_all()  # a thread's own connection back to the pool

    main = threading.current_thread()

    threads = [threading.Thread(target=post, args=(batch,), daemon=True)
               for batch in batches[1:]]
    for thread in threads:
        thread.start()
    post(batches[0])
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _goes_on(batch: _Batch, started: float) -> bool:
    """Another round in this task: this batch was full, all sent and all received, and the
    task's time is not spent (a failing or slow endpoint goes back to follow-up tasks)."""
    return (len(batch.attempts) >= settings.WEBHOOKS_BATCH_SIZE and not batch.unsent
            and not batch.retried and not batch.disabled
            and all(_ok(outcome.status_code) for _, outcome in batch.sent)
            and time.monotonic() - started < settings.WEBHOOKS_TASK_SECONDS)


def _claim(webhook_id: str, now: datetime) -> dict[int, int]:
    """This message if due, plus the oldest due messages of its endpoint behind it (skipping
    rows other workers hold), in one claim (``common.jobs.claim``), so the tasks of a burst
    take one chunk each, in parallel; unless a batch of that endpoint has been in flight for
    ``WEBHOOKS_SLOW_BATCH_SECONDS`` (a slow or hanging receiver gets one worker, not all of
    them). Returns message id → attempts."""
    own = Message.objects.filter(webhook_id=webhook_id, status=Status.PENDING).values_list(
        "id", "endpoint_id", "created_at").first()
    if own is None:
        return {}
    return jobs.claim(
        MESSAGES, now=now, own=own[0], own_first=True,
        limit=max(int(settings.WEBHOOKS_BATCH_SIZE) - 1, 0),
        scope="endpoint_id = %(endpoint)s AND created_at >= %(created)s", gate=_NOT_SLOW,
        params={"endpoint": own[1], "created": own[2], **_gate_params(now)})


def _claim_next(endpoint_id: Any, now: datetime) -> dict[int, int]:
    """The endpoint's oldest due messages, as ``_claim`` takes the ones behind its own."""
    return jobs.claim(
        MESSAGES, now=now, limit=max(int(settings.WEBHOOKS_BATCH_SIZE), 1),
        scope="endpoint_id = %(endpoint)s", gate=_NOT_SLOW,
        params={"endpoint": endpoint_id, **_gate_params(now)})


_NOT_SLOW = (f"NOT EXISTS (SELECT 1 FROM {MESSAGES.table} WHERE endpoint_id = %(endpoint)s"
             " AND status = %(running)s AND claimed_at > %(lease_end)s"
             " AND claimed_at <= %(slow)s)")


def _gate_params(now: datetime) -> dict[str, datetime]:
    slow = timedelta(seconds=settings.WEBHOOKS_SLOW_BATCH_SECONDS)
    return {"lease_end": now - message_lease(), "slow": now - slow}


def _post_batch(batch: _Batch, messages: list[_Item]) -> None:
    """POST in order until done, a 410 (the endpoint is gone), a timeout, or the time budget
    is spent. A refused connection costs nothing, so it does not stop the batch."""
    started = time.monotonic()
    budget = settings.WEBHOOKS_BATCH_SECONDS
    try:
        target, refused = ssrf.url_resolve(batch.endpoint.url), ""
    except ssrf.UnsafeUrl as exc:  # resolved again per batch: DNS rebinding
        target, refused = None, f"Refused: {exc}"
    secrets = endpoint_signing_secrets(batch.endpoint)
    messages, batch.unsent = list(messages), []
    for index, message in enumerate(messages):
        outcome = (_post(message, target, secrets) if target is not None
                   else http.Outcome(None, b"", refused, 0))
        batch.sent.append((message, outcome))
        _endpoint_track(batch, outcome)
        if batch.disabled or outcome.timed_out or time.monotonic() - started >= budget:
            batch.unsent = messages[index + 1:]
            return


def _endpoint_track(batch: _Batch, outcome: http.Outcome) -> None:
    """A success ends the endpoint's failure run; 410, or 5 days of failures, disable it."""
    if _ok(outcome.status_code):
        batch.failing_since = None
    elif outcome.status_code == 410:
        batch.disabled = "The receiver answered 410 Gone."
    else:
        batch.failing_since = batch.failing_since or timezone.now()
        days = settings.WEBHOOKS_DISABLE_AFTER_DAYS
        if timezone.now() - batch.failing_since >= timedelta(days=days):
            batch.disabled = (f"Every attempt failed for {days} days "
                              f"(since {iso(batch.failing_since)}).")


def _post(message: _Item, target: ssrf.Target, secrets: list[str]) -> http.Outcome:
    body = json.dumps(message.payload, separators=(",", ":")).encode()
    headers = signing.headers(secrets=secrets, msg_id=message.webhook_id,
                              timestamp=int(time.time()), body=body)
    return http.post(target=target, body=body, headers=headers,
                     timeout=settings.WEBHOOKS_TIMEOUT_SECONDS,
                     max_bytes=settings.WEBHOOKS_RESPONSE_MAX_BYTES)


def endpoint_signing_secrets(endpoint: Endpoint) -> list[str]:
    secrets = [signing.secret_decrypt(endpoint.secret_encrypted)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_encrypted and expires and expires > timezone.now():
        secrets.append(signing.secret_decrypt(endpoint.previous_secret_encrypted))
    return secrets


def _ok(status_code: int | None) -> bool:
    return status_code is not None and 200 <= status_code < 300


def _record(batch: _Batch) -> None:
    """Every attempt in one INSERT, the outcomes in one UPDATE per kind, one commit; the
    retries are enqueued (one task per failed message) once it commits."""
    now = timezone.now()
    with transaction.atomic():
        _attempts_insert(batch, now)
        _endpoint_after(batch)
        _outcomes_record(batch, now)
    metrics.webhook_attempts(outcome.status_code for _, outcome in batch.sent)


# One statement, the varying columns as arrays: bulk_create prepared every value of every
# row through its field (6.0 ms of CPU per 100 attempts with its transaction;
# common.inserts.rows_insert 1.8 ms; this 0.86 ms). tests/webhooks/test_batch_record.py
# checks that it names every column of Attempt.
_ATTEMPTS_SQL = (
    "INSERT INTO {table} (endpoint_id, url, created_at, message_id, status_code, duration_ms,"
    " error, response_body, succeeded)"
    " SELECT %s, %s, %s, u.m, u.s, u.d, u.e, u.b, u.ok FROM unnest(%s::bigint[],"
    " %s::integer[], %s::integer[], %s::text[], %s::text[], %s::boolean[])"
    " AS u(m, s, d, e, b, ok)"
)


def _attempts_insert(batch: _Batch, now: datetime) -> None:
    if not batch.sent:
        return
    columns: list[list[Any]] = [[], [], [], [], [], []]
    for message, outcome in batch.sent:
        for column, value in zip(columns, (
                message.id, outcome.status_code, outcome.duration_ms, _text(outcome.error),
                _text(outcome.body.decode("utf-8", "replace")), _ok(outcome.status_code)),
                strict=True):
            column.append(value)
    endpoint = batch.endpoint
    with connection.cursor() as cursor:
        cursor.execute(_ATTEMPTS_SQL.format(table=Attempt._meta.db_table),
                       [endpoint.id, endpoint.url, now, *columns])


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL: a receiver's answer may (it once failed the batch's
    commit, and the batch was sent again after its lease)."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _endpoint_after(batch: _Batch) -> None:
    endpoint = batch.endpoint
    if batch.disabled:
        endpoint_disable(endpoint_id=endpoint.id, reason=batch.disabled)
    if not batch.sent or batch.failing_since == endpoint.failing_since:
        return
    rows = Endpoint.objects.filter(id=endpoint.id)
    if batch.failing_since is not None and endpoint.failing_since is None:
        rows = rows.filter(failing_since__isnull=True)  # another batch may have started it
    rows.update(failing_since=batch.failing_since)


def _outcomes_record(batch: _Batch, now: datetime) -> None:
    succeeded: list[int] = []
    failed: dict[int, str] = {}
    retry: dict[int, tuple[str, float]] = {}
    for message, outcome in batch.sent:
        if _ok(outcome.status_code):
            succeeded.append(message.id)
            continue
        error = outcome.error or f"HTTP {outcome.status_code}"
        delay = retry_delay(attempt=batch.attempts[message.id])
        if outcome.status_code == 410:
            delay = None
        if delay is None:
            failed[message.id] = error
        else:
            retry[message.id] = (error, delay)
    if not batch.endpoint.is_active or batch.endpoint.deleted_at or batch.disabled:
        reason = batch.disabled or batch.endpoint.disabled_reason
        failed.update(dict.fromkeys([m.id for m in batch.unsent],
                                    f"Not sent: endpoint disabled ({reason})."))
    elif batch.unsent:
        _release(batch, now)
    finished = {"claimed_at": None, "last_attempt_at": now, "updated_at": now}
    _update(batch, succeeded, status=Status.SUCCEEDED, last_error="", succeeded_at=now,
            **finished)
    _update(batch, list(failed), status=Status.FAILED, last_error=_case(failed), **finished)
    _update(batch, list(retry), status=Status.PENDING,
            last_error=_case({i: e for i, (e, _) in retry.items()}),
            next_attempt_at=_case({i: now + timedelta(seconds=d) for i, (_, d) in retry.items()}),
            **finished)
    batch.retried = list(retry)
    by_id = {m.id: m.webhook_id for m, _ in batch.sent}
    tasks_enqueue([(by_id[i], delay) for i, (_, delay) in retry.items()])


def _release(batch: _Batch, now: datetime) -> None:
    """Back to pending, the attempt given back, due a moment later (the follow-up takes them)."""
    delay = timedelta(seconds=settings.WEBHOOKS_RELEASE_DELAY_SECONDS)
    jobs.requeue(MESSAGES, [m.id for m in batch.unsent], batch.token, due_at=now + delay,
                 updated_at=now)


def _update(batch: _Batch, ids: list[int], **changes: Any) -> None:
    if ids:
        jobs.held(MESSAGES, ids, batch.token).update(**changes)


def _case(values: dict[int, Any]) -> Case:
    return Case(*[When(id=i, then=Value(v)) for i, v in values.items()])


def _follow_up(batches: list[_Batch]) -> None:
    """After batches that may have kept other tasks off their endpoint (slow, cut short) or
    left due messages behind (full), enqueue the oldest due message of the endpoint: its task
    takes the next batch. The tasks those messages already had may have found it busy."""
    now = timezone.now()
    size, slow = settings.WEBHOOKS_BATCH_SIZE, timedelta(
        seconds=settings.WEBHOOKS_SLOW_BATCH_SECONDS)
    if not any(len(b.attempts) >= size or now - b.token >= slow or b.unsent for b in batches):
        return
    retried = [i for batch in batches for i in batch.retried]
    soon = now + timedelta(seconds=settings.WEBHOOKS_RELEASE_DELAY_SECONDS)
    nxt = (Message.objects.filter(endpoint_id=batches[0].endpoint.id, status=Status.PENDING,
                                  endpoint__is_active=True)
           .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=soon))
           .exclude(id__in=retried).order_by("created_at")
           .values_list("webhook_id", "next_attempt_at").first())
    if nxt is not None:
        wait = (nxt[1] - now).total_seconds() if nxt[1] else 0.0
        tasks_enqueue([(nxt[0], max(wait, 0.0))])


def retry_delay(*, attempt: int) -> float | None:
    """Seconds before the try after ``attempt`` (1-based): the schedule's step less up to
    ``WEBHOOKS_RETRY_JITTER`` of it; None when the schedule is exhausted."""
    schedule = settings.WEBHOOKS_RETRY_SCHEDULE
    if attempt >= len(schedule):
        return None
    step = float(schedule[attempt])
    return jobs.backoff(1, base=step, cap=step, jitter=settings.WEBHOOKS_RETRY_JITTER)
