"""Sending a delivery: claim, suppression check, render once, provider call, outcome; and the
sweeper that re-enqueues what a lost task or a killed worker left behind.

Every write after the claim is guarded by the claim token (``claimed_at``), so a worker whose
lease expired can never overwrite what the worker that took over recorded.
"""

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from comms.models import Delivery, DeliveryEvent, Status, Suppression
from comms.providers import email_provider
from comms.providers.base import (
    EmailMessage,
    ProviderConfigurationError,
    ProviderPermanentError,
    ProviderTransientError,
)
from comms.providers.sandbox import SandboxProvider
from templates.rendering import render
from webhooks.services import webhooks_emit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Content:
    subject: str
    html: str
    text: str
    template_version: int


def enqueue(delivery_id: str, countdown: float | None = None) -> None:
    from comms.tasks import send_delivery

    send_delivery.apply_async(args=[delivery_id], countdown=countdown)


def delivery_dispatch(*, delivery_id: str) -> None:
    """Claim a queued delivery that is due, and send it. Zero rows claimed: someone has it.

    No transaction is held open across the provider call.
    """
    now = timezone.now()
    claimed = Delivery.objects.filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
        id=delivery_id, status=Status.QUEUED,
    ).update(status=Status.SENDING, claimed_at=now, attempts=F("attempts") + 1,
             next_attempt_at=None)
    if not claimed:
        return
    delivery = Delivery.objects.select_related("template", "attendee__event").get(id=delivery_id)
    provider = "sandbox" if delivery.mode == Delivery.Mode.TEST else settings.HERALD_EMAIL_PROVIDER
    if _suppressed(delivery, provider):
        return
    content = _content(delivery, provider)
    if content is not None:
        _send(delivery, provider, content)


def _send(delivery: Delivery, provider: str, content: Content) -> None:
    try:
        result = email_provider(provider).send(_message(delivery, content))
    except ProviderConfigurationError:
        _release(delivery, provider)
        raise
    except ProviderTransientError as exc:
        _retry_or_fail(delivery, provider, exc, content)
    except ProviderPermanentError as exc:
        _fail(delivery, provider, Status.FAILED, "provider_rejected", str(exc))
    except Exception as exc:  # an unclassified adapter error must not strand the row
        log.exception("Unexpected error from provider %s for %s", provider, delivery.id)
        _retry_or_fail(delivery, provider,
                       ProviderTransientError(f"Unexpected provider error: {exc!r}"), content)
    else:
        _mark_sent(delivery, provider, result.provider_message_id, content)
        if provider == "sandbox":
            _simulate(delivery)


def _suppressed(delivery: Delivery, provider: str) -> bool:
    suppression = Suppression.objects.filter(
        account_id=delivery.account_id, channel=delivery.channel,
        address=delivery.recipient.lower(), removed_at__isnull=True,
    ).first()
    if suppression is None:
        return False
    reason = (f"{delivery.recipient} is suppressed ({suppression.reason} at "
              f"{suppression.created_at:%Y-%m-%dT%H:%M:%SZ}): {suppression.detail}".rstrip(": "))
    _fail(delivery, provider, Status.SUPPRESSED, suppression.reason, reason)
    return True


def _content(delivery: Delivery, provider: str) -> Content | None:
    """The content rendered on the first attempt, reused by retries; None if it failed."""
    if delivery.template_version is not None:
        return Content(delivery.subject, delivery.html_body, delivery.text_body,
                       delivery.template_version)
    try:
        content = delivery_render(delivery=delivery)
    except Exception as exc:
        _fail(delivery, provider, Status.FAILED, "template_error",
              f"The template could not be rendered: {exc}")
        return None
    size = len(content.subject) + len(content.html) + len(content.text)
    if size > settings.HERALD_MAX_RENDERED_CHARS:
        _fail(delivery, provider, Status.FAILED, "template_error",
              f"The rendered message has {size} characters, over the "
              f"{settings.HERALD_MAX_RENDERED_CHARS} allowed.")
        return None
    return content


def delivery_render(*, delivery: Delivery) -> Content:
    template, attendee = delivery.template, delivery.attendee
    event = attendee.event if attendee else None
    context = {
        "firstName": attendee.first_name if attendee else "",
        "lastName": attendee.last_name if attendee else "",
        "email": delivery.recipient,
        "attendeeId": str(attendee.id) if attendee else "",
        "correlationId": delivery.correlation_id or "",
        "attendeeInvitationId": str(delivery.id),
        "event": {
            "id": str(event.id), "name": event.name, "venue": event.venue,
            "startsAt": event.starts_at, "endsAt": event.ends_at,
        } if event else {},
    }
    rendered = render(
        cache_key=(str(template.id), template.version), subject=template.subject,
        html_body=template.html_body, text_body=template.text_body, context=context,
    )
    return Content(rendered.subject, rendered.html, rendered.text, template.version)


def _message(delivery: Delivery, content: Content) -> EmailMessage:
    attendee = delivery.attendee
    return EmailMessage(
        delivery_id=str(delivery.id),
        from_email=settings.HERALD_DEFAULT_FROM_EMAIL,
        from_name=settings.HERALD_DEFAULT_FROM_NAME,
        to_email=delivery.recipient,
        to_name=f"{attendee.first_name} {attendee.last_name}".strip() if attendee else "",
        subject=content.subject, html=content.html, text=content.text,
        custom_args={"herald_delivery_id": str(delivery.id)},
    )


def _mine(delivery: Delivery):
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


def _mark_sent(delivery: Delivery, provider: str, message_id: str, content: Content) -> None:
    # A fast provider callback may already have moved the status on: only "sending" → "sent".
    updated = _mine(delivery).update(
        status=Case(When(status=Status.SENDING, then=Value(Status.SENT)), default=F("status")),
        provider=provider, provider_message_id=message_id, sent_at=timezone.now(),
        **_content_fields(content),
    )
    if not updated:
        log.error("Delivery %s was sent after its lease expired: a duplicate is possible",
                  delivery.id)
        return
    record_event(delivery, "comms.sent", Status.SENT, provider=provider, messageId=message_id)


def _retry_or_fail(delivery: Delivery, provider: str, exc: ProviderTransientError,
                   content: Content) -> None:
    if delivery.attempts >= settings.HERALD_SEND_MAX_ATTEMPTS:
        _fail(delivery, provider, Status.FAILED, "transient",
              f"Transient API-side failure after {delivery.attempts} attempts: {exc}")
        return
    delay = retry_delay(attempt=delivery.attempts, retry_after=exc.retry_after)
    updated = _mine(delivery).filter(status=Status.SENDING).update(
        status=Status.QUEUED, provider=provider, claimed_at=None,
        next_attempt_at=timezone.now() + timedelta(seconds=delay), **_content_fields(content),
    )
    if updated:
        record_event(delivery, "comms.retry_scheduled", Status.QUEUED, provider=provider,
                     attempt=delivery.attempts, retryInSeconds=round(delay, 3), reason=str(exc))
        enqueue(str(delivery.id), countdown=delay)


def retry_delay(*, attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter; a provider's own ``retry_after`` (429) is a floor,
    capped so a wild header cannot park a message for days."""
    ceiling = min(settings.HERALD_RETRY_MAX_SECONDS,
                  settings.HERALD_RETRY_BASE_SECONDS * 2 ** (attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        floor = min(max(retry_after, 0.0), settings.HERALD_RETRY_MAX_SECONDS)
        delay = max(delay, floor + random.uniform(0, 1))
    return delay


def _fail(delivery: Delivery, provider: str, status: str, failure_type: str, reason: str) -> None:
    updated = _mine(delivery).filter(status=Status.SENDING).update(
        status=status, provider=provider, failure_type=failure_type,
        failure_reason=reason, failed_at=timezone.now(),
    )
    if updated:
        record_event(delivery, "comms.failed", status, provider=provider,
                     failureType=failure_type, reason=reason)


def _release(delivery: Delivery, provider: str) -> None:
    """A configuration error: put the delivery back, without using up an attempt, for the
    sweeper to send once Herald is fixed."""
    log.error("Provider %s is misconfigured; delivery %s stays queued", provider, delivery.id)
    _mine(delivery).filter(status=Status.SENDING).update(
        status=Status.QUEUED, claimed_at=None, attempts=F("attempts") - 1,
        next_attempt_at=timezone.now(),
    )


def _simulate(delivery: Delivery) -> None:
    from comms.tasks import apply_sandbox_event

    unit = settings.HERALD_SANDBOX_DELAY_SECONDS
    for index, step in enumerate(SandboxProvider.script(delivery.recipient)):
        apply_sandbox_event.apply_async(
            kwargs={"delivery_id": str(delivery.id), "event": step.event,
                    "provider_event_id": f"sandbox-{delivery.id}-{index}",
                    "reason": step.reason, "bounce_type": step.bounce_type},
            countdown=step.after_seconds * unit,
        )


# --- sweeper --------------------------------------------------------------------------------

def deliveries_sweep(*, limit: int = 1000) -> int:
    """Re-enqueue deliveries whose task was lost (queued, overdue by the grace period) and
    re-queue those a killed worker left in ``sending`` past the lease; a delivery that has
    used all its attempts that way fails instead of looping. Returns how many were enqueued."""
    now = timezone.now()
    _reclaim_expired(now)
    grace = timedelta(seconds=settings.HERALD_SWEEP_GRACE_SECONDS)
    overdue = list(
        Delivery.objects.filter(status=Status.QUEUED)
        .filter(Q(next_attempt_at__lt=now - grace)
                | Q(next_attempt_at__isnull=True, created_at__lt=now - grace))
        .order_by("next_attempt_at", "created_at").values_list("id", flat=True)[:limit]
    )
    # Mark them as just re-enqueued, so the next sweep waits another grace period.
    Delivery.objects.filter(id__in=overdue, status=Status.QUEUED).update(next_attempt_at=now)
    for delivery_id in overdue:
        enqueue(str(delivery_id))
    return len(overdue)


def _reclaim_expired(now: datetime) -> None:
    expired = Q(status=Status.SENDING,
                claimed_at__lt=now - timedelta(seconds=settings.HERALD_SENDING_LEASE_SECONDS))
    exhausted = Delivery.objects.filter(expired, attempts__gte=settings.HERALD_SEND_MAX_ATTEMPTS)
    for delivery in exhausted.only("id", "claimed_at", "correlation_id", "provider")[:1000]:
        _fail(delivery, delivery.provider, Status.FAILED, "transient",
              f"No outcome after {settings.HERALD_SEND_MAX_ATTEMPTS} attempts "
              "(the worker stopped each time).")
    # The same condition in the UPDATE: a row re-claimed meanwhile is left alone.
    Delivery.objects.filter(expired).update(
        status=Status.QUEUED, claimed_at=None, next_attempt_at=now - timedelta(days=1))
