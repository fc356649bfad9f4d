"""Writes on customer webhooks: endpoints, emitting messages, resending and sweeping them
(delivering them, in batches, is ``webhooks.delivery``)."""

import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import Account
from common import jobs, signing, ssrf
from common.errors import Conflict, HeraldError
from common.times import iso
from webhooks import catalogue
from webhooks.models import Endpoint, Message

log = logging.getLogger(__name__)

MAX_DESCRIPTION = 500
Status = Message.Status
# Messages are durable jobs: claimed in batches with a token, retried, swept (common.jobs).
MESSAGES = jobs.JobTable(Message, ready=Status.PENDING, running=Status.SENDING,
                         touch=("updated_at",))


def message_lease() -> timedelta:
    """How long a claimed batch is its worker's: past it, the sweeper hands it back."""
    return timedelta(seconds=settings.WEBHOOKS_TIMEOUT_SECONDS * 4 + 60)


class WebhookValidationError(HeraldError):
    def __init__(self, message: str) -> None:
        super().__init__("VALIDATION_ERROR", message, status=400)


# --- endpoints ------------------------------------------------------------------------------

def endpoint_validate(*, url: str | None = None, enabled_events: Any = None,
                      description: Any = None) -> None:
    """Reject a bad URL (syntax, scheme, non-public address), unknown events, long descriptions."""
    if url is not None:
        try:
            ssrf.url_resolve(url)
        except ssrf.UnsafeUrl as exc:
            raise WebhookValidationError(f"url: {exc}") from None
    if enabled_events is not None:
        if not isinstance(enabled_events, list) or not enabled_events:
            raise WebhookValidationError("enabled_events: give a non-empty list of event names.")
        unknown = sorted({str(e) for e in enabled_events} - set(catalogue.ALL_EVENTS))
        if unknown or not all(isinstance(e, str) for e in enabled_events):
            raise WebhookValidationError(
                f"enabled_events: unknown event(s) {', '.join(unknown)}; "
                f"known: {', '.join(catalogue.ALL_EVENTS)}.")
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise WebhookValidationError(
            f"description: at most {MAX_DESCRIPTION} characters.")


def endpoint_create(*, account: Account, url: str, description: str = "",
                    enabled_events: list[str] | None = None,
                    include_test_events: bool = False) -> tuple[Endpoint, str]:
    """The account's endpoint and its raw ``whsec_`` secret (the only time it is returned).

    One live endpoint per account: a second one is a 409 CONFLICT (a unique index backs it).
    """
    events = list(dict.fromkeys(enabled_events)) if enabled_events is not None else list(
        catalogue.ALL_EVENTS)
    endpoint_validate(url=url, enabled_events=events, description=description)
    secret = signing.secret_generate()
    try:
        with transaction.atomic():
            endpoint = Endpoint.objects.create(
                account=account, url=url, description=description, enabled_events=events,
                include_test_events=include_test_events,
                secret_encrypted=signing.secret_encrypt(secret),
            )
    except IntegrityError:
        raise Conflict("CONFLICT", "This account already has a webhook endpoint.") from None
    return endpoint, secret


def endpoint_update(*, endpoint: Endpoint, url: str | None = None,
                    description: str | None = None, enabled_events: list[str] | None = None,
                    is_active: bool | None = None,
                    include_test_events: bool | None = None) -> Endpoint:
    """Change what was given; re-enabling clears the disabled reason and the failure run."""
    endpoint_validate(url=url, enabled_events=enabled_events, description=description)
    if url is not None:
        endpoint.url = url
    if description is not None:
        endpoint.description = description
    if enabled_events is not None:
        endpoint.enabled_events = list(dict.fromkeys(enabled_events))
    if include_test_events is not None:
        endpoint.include_test_events = include_test_events
    if is_active is True and not endpoint.is_active:
        endpoint.is_active, endpoint.disabled_reason = True, ""
        endpoint.disabled_at = endpoint.failing_since = None
    elif is_active is False and endpoint.is_active:
        endpoint.is_active, endpoint.disabled_reason = False, "Disabled by the account."
        endpoint.disabled_at = timezone.now()
    endpoint.save()
    return endpoint


def endpoint_delete(*, endpoint: Endpoint) -> None:
    """Soft delete: the row and its log stay, nothing more is sent, a new endpoint may be made."""
    now = timezone.now()
    Endpoint.objects.filter(id=endpoint.id, deleted_at__isnull=True).update(
        deleted_at=now, is_active=False, disabled_reason="Deleted.", disabled_at=now,
        updated_at=now,
    )


def endpoint_secret_reveal(*, endpoint: Endpoint) -> str:
    return signing.secret_decrypt(endpoint.secret_encrypted)


def endpoint_secret_rotate(*, endpoint: Endpoint) -> str:
    """A new secret; the old one keeps signing beside it for WEBHOOKS_SECRET_OVERLAP_HOURS."""
    secret = signing.secret_generate()
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted
    endpoint.previous_secret_expires_at = timezone.now() + timedelta(
        hours=settings.WEBHOOKS_SECRET_OVERLAP_HOURS)
    endpoint.secret_encrypted = signing.secret_encrypt(secret)
    endpoint.save()
    return secret


def endpoint_disable(*, endpoint_id: uuid.UUID, reason: str) -> None:
    """Stop sending to an endpoint (410 Gone, days of failures); the reason shows in the admin."""
    now = timezone.now()
    changed = Endpoint.objects.filter(id=endpoint_id, is_active=True).update(
        is_active=False, disabled_reason=reason[:255], disabled_at=now, updated_at=now)
    if changed:
        log.warning("Webhook endpoint %s disabled: %s", endpoint_id, reason)


def endpoint_send_test(*, endpoint: Endpoint) -> Message:
    """Queue a ``webhook.test`` message to the endpoint, whatever events it subscribes to."""
    if not endpoint.is_active:
        raise Conflict("CONFLICT", "The endpoint is disabled; enable it first.")
    now = timezone.now()
    message = Message.objects.create(
        webhook_id=_new_webhook_id(), account_id=endpoint.account_id, endpoint=endpoint,
        event_type=catalogue.TEST_EVENT, next_attempt_at=now,
        payload=catalogue.test_payload(endpoint_id=str(endpoint.id), now=now),
    )
    messages_enqueue(messages=[(message.webhook_id, endpoint.id)])
    return message


# --- emitting -------------------------------------------------------------------------------

class _Source(NamedTuple):
    """One recorded event of an account with a live endpoint, and that endpoint."""

    endpoint_id: uuid.UUID
    account_id: uuid.UUID
    enabled_events: frozenset[str]
    delivery_event_id: int
    event: catalogue.Occurrence


class _NewMessage(NamedTuple):
    webhook_id: str
    account_id: uuid.UUID
    endpoint_id: uuid.UUID
    delivery_event_id: int
    event_type: str
    payload: dict[str, Any]


def webhooks_emit(*, delivery_event_ids: list[int]) -> None:
    """Turn recorded lifecycle events into webhook messages for the accounts' endpoints.

    Costs one query when no account concerned has an active endpoint; otherwise, on
    PostgreSQL, one more whatever the number of events (the read takes only the columns the
    payloads need; one INSERT of every message). Messages are inserted in the caller's
    transaction, in event order, and their delivery tasks enqueued when it commits.
    """
    if not delivery_event_ids:
        return
    sources = _sources(delivery_event_ids)
    if not sources:
        return
    now = timezone.now()
    messages = list(_messages_for(sources, now))
    _messages_insert(messages, now)
    messages_enqueue(messages=[(m.webhook_id, m.endpoint_id) for m in messages])


def webhooks_emit_account_event(*, account_id: Any, event_type: str,
                                data: dict[str, Any], mode: str = "live") -> None:
    """An account-level event (``domain.verified``) to the account's endpoint, if it
    subscribes: ``{type, timestamp, data}``, delivered like every other message. A test
    key's event (``mode="test"``: a rehearsed check-in) reaches only an endpoint that
    includes test events, as a sandbox delivery's do."""
    now = timezone.now()
    messages = [
        Message(webhook_id=_new_webhook_id(), account_id=endpoint.account_id,
                endpoint=endpoint, event_type=event_type, next_attempt_at=now,
                payload={"type": event_type, "timestamp": iso(now), "data": data})
        for endpoint in Endpoint.objects.filter(account_id=account_id, is_active=True,
                                                deleted_at__isnull=True)
        if event_type in endpoint.enabled_events
        and (mode == "live" or endpoint.include_test_events)
    ]
    Message.objects.bulk_create(messages)
    messages_enqueue(messages=[(m.webhook_id, m.endpoint_id) for m in messages])


def _sources(delivery_event_ids: list[int]) -> list[_Source]:
    """The customer-facing events among these ids whose account has a live endpoint, in
    timeline order (occurred_at, id). A test-mode (sandbox) delivery's events go only to
    endpoints that include test events: a rehearsal never reaches a receiver as live."""
    return _sources_sql(delivery_event_ids)


# The events and their deliveries first, by primary key (MATERIALIZED: never planned from
# the endpoint's account, whose every delivery it would read), then their live endpoints.
# The front end's ids (attendee, event) are the ones it gave the delivery (``refs``).
_SOURCES_SQL = (
    "WITH e AS MATERIALIZED (SELECT e.id, e.name, e.status, e.detail -> 'reason' AS reason,"
    " e.occurred_at, d.id::text AS delivery_id, d.refs ->> 'attendeeId' AS attendee_id,"
    " d.refs ->> 'eventId' AS attendee_event_id, d.template_id::text AS template_id,"
    " d.recipient, d.correlation_id, d.channel, d.event_name, d.provider_message_id, d.sent_at,"
    " d.delivered_at, d.failure_reason, d.mode, d.request_id, d.account_id"
    " FROM {events} e JOIN {deliveries} d ON d.id = e.delivery_id"
    " WHERE e.id = ANY(ARRAY(SELECT json_array_elements_text(%s::json))::bigint[])"
    " AND e.name IN ({names}))"
    " SELECT w.id, w.account_id, w.enabled_events::text, e.id, e.name, e.status, e.reason,"
    " e.occurred_at, e.delivery_id, e.attendee_id, e.attendee_event_id, e.template_id,"
    " e.recipient, e.correlation_id, e.channel, e.event_name, e.provider_message_id,"
    " e.sent_at, e.delivered_at, e.failure_reason, e.mode, e.request_id"
    " FROM e JOIN {endpoints} w ON w.account_id = e.account_id AND w.is_active"
    " AND w.deleted_at IS NULL AND (e.mode = '{live}' OR w.include_test_events)"
    " ORDER BY e.occurred_at, e.id, w.id"
)


def _sources_sql(delivery_event_ids: list[int]) -> list[_Source]:
    """One query joining events, deliveries and endpoints, the ids as one JSON parameter
    (psycopg's quoting of a long list costs more than the query); ids as text."""
    from comms.models import Delivery, DeliveryEvent

    sql = _SOURCES_SQL.format(
        events=DeliveryEvent._meta.db_table, deliveries=Delivery._meta.db_table,
        endpoints=Endpoint._meta.db_table,
        live=Delivery.Mode.LIVE, names=", ".join(f"'{name}'" for name in catalogue.COMMS_EVENTS))
    with connection.cursor() as cursor:
        cursor.execute(sql, [json.dumps(delivery_event_ids)])
        rows = cursor.fetchall()
    enabled = _enabled_parser()
    return [_Source(row[0], row[1], enabled(row[2]), row[3], catalogue.Occurrence(
        row[4], row[5], None if row[6] is None else json.loads(row[6]), *row[7:]))
        for row in rows]


def _enabled_parser() -> Callable[[str], frozenset[str]]:
    """``enabled_events`` as JSON text → a set, parsed once per distinct value."""
    parsed: dict[str, frozenset[str]] = {}

    def parse(text: str) -> frozenset[str]:
        if text not in parsed:
            parsed[text] = frozenset(json.loads(text))
        return parsed[text]

    return parse



def _messages_for(sources: list[_Source], now: datetime) -> Iterator[_NewMessage]:
    for source in sources:
        for event_type in catalogue.event_types_for(source.event.name):
            if event_type in source.enabled_events:
                yield _NewMessage(
                    _new_webhook_id(), source.account_id, source.endpoint_id,
                    source.delivery_event_id, event_type,
                    catalogue.payload_for(source.event, event_type, now=now))


_INSERT_SQL = (
    "INSERT INTO {table} (webhook_id, account_id, endpoint_id, delivery_event_id, event_type,"
    " payload, status, attempts, next_attempt_at, last_error, created_at, updated_at)"
    " SELECT m.w, m.a, m.e, m.v, m.k, m.p, '{pending}', 0, c.at, '',"
    " c.at + m.n * interval '1 microsecond', c.at + m.n * interval '1 microsecond'"
    " FROM json_to_recordset(%s::json) AS m(n integer, w text, a uuid, e uuid, v bigint,"
    " k text, p jsonb), (SELECT %s::timestamptz AS at) AS c"
    " ORDER BY m.n ON CONFLICT DO NOTHING"
)


def _messages_insert(messages: list[_NewMessage], now: datetime) -> None:
    """Insert the messages in order, a message already emitted skipped: one INSERT, its rows
    as one JSON parameter, each created a microsecond after the one before (a delivery task
    claims the messages behind its own by creation time)."""
    if not messages:
        return
    records = json.dumps([
        {"n": n, "w": m.webhook_id, "a": str(m.account_id), "e": str(m.endpoint_id),
         "v": m.delivery_event_id, "k": m.event_type, "p": m.payload}
        for n, m in enumerate(messages)])
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_SQL.format(table=Message._meta.db_table,
                                          pending=Status.PENDING.value), [records, now])


def _new_webhook_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def messages_enqueue(*, messages: list[tuple[str, Any]]) -> None:
    """Once the caller commits, publish one delivery task per ``WEBHOOKS_BATCH_SIZE`` new
    messages of each endpoint (``messages`` are (webhook id, endpoint id), oldest first): each
    task claims its message and the oldest due ones behind it, and a full batch enqueues the
    next, so together they take every message (the sweeper covers a lost task)."""
    size = max(int(settings.WEBHOOKS_BATCH_SIZE), 1)
    by_endpoint: dict[Any, list[str]] = defaultdict(list)
    for webhook_id, endpoint_id in messages:
        by_endpoint[endpoint_id].append(webhook_id)
    tasks_enqueue([(webhook_id, None) for ids in by_endpoint.values()
                   for webhook_id in ids[::size]])


def tasks_enqueue(tasks: list[tuple[str, float | None]]) -> None:
    """Publish ``webhooks.deliver_message`` per (webhook id, countdown) once the caller
    commits."""

    def send() -> None:
        for webhook_id, countdown in tasks:
            jobs.publish("webhooks.deliver_message", webhook_id, countdown=countdown)

    if tasks:
        transaction.on_commit(send, robust=True)


# --- resending and sweeping -----------------------------------------------------------------

def message_resend(*, message: Message) -> Message:
    """Send a finished (failed or succeeded) message again, with a fresh retry schedule."""
    if not message.endpoint.is_active:
        raise Conflict("CONFLICT", "The endpoint is disabled; enable it first.")
    now = timezone.now()
    requeued = Message.objects.filter(
        id=message.id, status__in=[Status.FAILED, Status.SUCCEEDED],
    ).update(status=Status.PENDING, attempts=0, next_attempt_at=now, last_error="",
             updated_at=now)
    if requeued:
        messages_enqueue(messages=[(message.webhook_id, message.endpoint_id)])
    message.refresh_from_db()
    return message


def messages_resend_failed(*, endpoint: Endpoint, since: datetime,
                           until: datetime | None = None) -> int:
    """Requeue every failed message of the endpoint created in ``[since, until)``."""
    if not endpoint.is_active:
        raise Conflict("CONFLICT", "The endpoint is disabled; enable it first.")
    until = until or timezone.now()
    if until <= since:
        raise WebhookValidationError("until: must be after since.")
    failed = Message.objects.filter(endpoint=endpoint, status=Status.FAILED,
                                    created_at__gte=since, created_at__lt=until)
    ids = list(failed.order_by("created_at", "id").values_list("webhook_id", flat=True))
    now = timezone.now()
    Message.objects.filter(webhook_id__in=ids, status=Status.FAILED).update(
        status=Status.PENDING, attempts=0, next_attempt_at=now, last_error="", updated_at=now)
    messages_enqueue(messages=[(webhook_id, endpoint.id) for webhook_id in ids])
    return len(ids)


def messages_sweep(*, limit: int = 1000) -> int:
    """Re-enqueue messages whose task was lost: pending past their time, or stuck in sending
    past the lease (a killed worker). Returns how many were re-enqueued."""
    now = timezone.now()
    grace = timedelta(seconds=settings.WEBHOOKS_SWEEP_GRACE_SECONDS)
    stuck = jobs.expired_requeue(MESSAGES, now=now, lease=message_lease(), due_at=now,
                                 limit=limit)
    # Oldest created first, as messages_enqueue needs: a task claims the due messages created
    # after its own, so a head taken in another order (the jittered due time, a stuck message
    # listed last) would leave the older ones to the next sweep.
    fields = ("webhook_id", "endpoint_id", "created_at")
    found = jobs.overdue(MESSAGES, now=now, grace=grace, limit=limit, fields=fields,
                         order=(MESSAGES.created,))
    found += list(Message.objects.filter(id__in=stuck).values_list(*fields))
    overdue = list(dict.fromkeys((webhook_id, endpoint_id) for webhook_id, endpoint_id, _
                                 in sorted(found, key=lambda row: row[2])))
    messages_enqueue(messages=overdue)
    return len(overdue)
