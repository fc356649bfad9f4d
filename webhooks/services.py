"""Writes on customer webhooks: endpoints, emitting messages, resending and sweeping them
(delivering them, in batches, is ``webhooks.delivery``)."""

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Account
from common.errors import Conflict, HeraldError
from common.times import iso
from webhooks import catalogue, signing, ssrf
from webhooks.models import Endpoint, Message

log = logging.getLogger(__name__)

MAX_DESCRIPTION = 500
Status = Message.Status


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
                    enabled_events: list[str] | None = None) -> tuple[Endpoint, str]:
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
                secret_encrypted=signing.secret_encrypt(secret),
            )
    except IntegrityError:
        raise Conflict("CONFLICT", "This account already has a webhook endpoint.") from None
    return endpoint, secret


def endpoint_update(*, endpoint: Endpoint, url: str | None = None,
                    description: str | None = None, enabled_events: list[str] | None = None,
                    is_active: bool | None = None) -> Endpoint:
    """Change what was given; re-enabling clears the disabled reason and the failure run."""
    endpoint_validate(url=url, enabled_events=enabled_events, description=description)
    if url is not None:
        endpoint.url = url
    if description is not None:
        endpoint.description = description
    if enabled_events is not None:
        endpoint.enabled_events = list(dict.fromkeys(enabled_events))
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

def webhooks_emit(*, delivery_event_ids: list[int]) -> None:
    """Turn recorded lifecycle events into webhook messages for the accounts' endpoints.

    Costs one query when no account concerned has an active endpoint. Messages are inserted
    in the caller's transaction and their delivery tasks enqueued when it commits.
    """
    from comms.models import DeliveryEvent

    if not delivery_event_ids:
        return
    endpoints = list(Endpoint.objects.filter(
        is_active=True, deleted_at__isnull=True,
        account__deliveries__events__id__in=delivery_event_ids,
        account__deliveries__events__name__in=catalogue.COMMS_EVENTS,
    ).distinct())
    if not endpoints:
        return
    by_account: dict[Any, list[Endpoint]] = defaultdict(list)
    for endpoint in endpoints:
        by_account[endpoint.account_id].append(endpoint)
    events = DeliveryEvent.objects.filter(
        id__in=delivery_event_ids, name__in=catalogue.COMMS_EVENTS,
    ).select_related("delivery__attendee")
    messages = list(_messages_for(events, by_account, timezone.now()))
    Message.objects.bulk_create(messages, ignore_conflicts=True)
    messages_enqueue(messages=[(m.webhook_id, m.endpoint_id) for m in messages])


def webhooks_emit_account_event(*, account_id: Any, event_type: str,
                                data: dict[str, Any]) -> None:
    """An account-level event (``domain.verified``) to the account's endpoint, if it
    subscribes: ``{type, timestamp, data}``, delivered like every other message."""
    now = timezone.now()
    messages = [
        Message(webhook_id=_new_webhook_id(), account_id=endpoint.account_id,
                endpoint=endpoint, event_type=event_type, next_attempt_at=now,
                payload={"type": event_type, "timestamp": iso(now), "data": data})
        for endpoint in Endpoint.objects.filter(account_id=account_id, is_active=True,
                                                deleted_at__isnull=True)
        if event_type in endpoint.enabled_events
    ]
    Message.objects.bulk_create(messages)
    messages_enqueue(messages=[(m.webhook_id, m.endpoint_id) for m in messages])


def _messages_for(events: Iterable[Any], by_account: dict[Any, list[Endpoint]],
                  now: datetime) -> Iterable[Message]:
    for event in events:
        for endpoint in by_account.get(event.delivery.account_id, ()):
            for event_type in catalogue.event_types_for(event.name):
                if event_type not in endpoint.enabled_events:
                    continue
                yield Message(
                    webhook_id=_new_webhook_id(), account_id=endpoint.account_id,
                    endpoint=endpoint, delivery_event=event, event_type=event_type,
                    payload=catalogue.payload_for(event, event_type, now=now),
                    next_attempt_at=now,
                )


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
    from webhooks.tasks import deliver_message

    def send() -> None:
        for webhook_id, countdown in tasks:
            deliver_message.apply_async(args=[webhook_id], countdown=countdown)

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
    lease = timedelta(seconds=settings.WEBHOOKS_TIMEOUT_SECONDS * 4 + 60)
    stuck = list(Message.objects.filter(status=Status.SENDING, claimed_at__lt=now - lease)
                 .values_list("id", flat=True)[:limit])
    if stuck:
        Message.objects.filter(id__in=stuck, status=Status.SENDING).update(
            status=Status.PENDING, claimed_at=None, next_attempt_at=now)
    overdue = list(Message.objects.filter(status=Status.PENDING, next_attempt_at__lt=now - grace)
                   .order_by("created_at", "id").values_list("webhook_id", "endpoint_id")[:limit])
    overdue += list(Message.objects.filter(id__in=stuck).values_list("webhook_id", "endpoint_id"))
    overdue = list(dict.fromkeys(overdue))
    messages_enqueue(messages=overdue)
    return len(overdue)
