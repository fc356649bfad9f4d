"""Writes on deliveries: queue, the 422 rule, dispatch to a provider, lifecycle events, sweep."""

import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone
from jinja2 import TemplateError

from accounts.models import Account
from common.errors import HeraldError, NotFound
from comms.models import PERMANENT_FAILURES, Delivery, DeliveryEvent, Status
from comms.providers import email_provider
from comms.providers.base import (
    EmailMessage,
    ProviderConfigurationError,
    ProviderPermanentError,
    ProviderTransientError,
)
from comms.providers.sandbox import SandboxProvider
from guests.models import Attendee
from templates.models import MessageTemplate
from templates.rendering import render
from webhooks.services import webhooks_emit

log = logging.getLogger(__name__)

FAILURE_MESSAGES = {
    Status.BOUNCED: "Previous send bounced — resending will not help.",
    Status.DROPPED: "Previous send was dropped by the provider — resending will not help.",
    Status.SPAM_REPORTED: "Recipient reported the previous send as spam — resending is blocked.",
    Status.UNSUBSCRIBED: "Recipient has unsubscribed — resending is blocked.",
}


def iso(moment: datetime | None) -> str | None:
    """Spec 000's timestamps: ``2026-04-29T20:43:55Z``."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _enqueue(delivery_id: str, countdown: float | None = None) -> None:
    from comms.tasks import send_delivery

    send_delivery.apply_async(args=[delivery_id], countdown=countdown)


def delivery_queue(*, account: Account, attendee: Attendee, template: MessageTemplate,
                   mode: str, correlation_id: str | None) -> Delivery:
    """Insert a queued delivery; its task is enqueued when the surrounding transaction commits.

    If the broker is down at that moment the row stays queued and the sweeper sends it.
    """
    delivery = Delivery.objects.create(
        account=account, attendee=attendee, template=template, mode=mode,
        recipient=attendee.email, correlation_id=correlation_id,
    )
    transaction.on_commit(lambda: _enqueue(str(delivery.id)), robust=True)
    return delivery


def delivery_send_to_attendee(*, account: Account, mode: str, attendee_id: Any,
                              template_id: Any, correlation_id: str | None) -> Delivery:
    """Spec 000's two-step send, with its 422 rule on the pair's most recent delivery."""
    template = template_for_send(account=account, template_id=template_id)
    with transaction.atomic():
        # Locking the attendee serializes concurrent sends to it, so the 422 rule holds.
        attendee = (
            Attendee.objects.select_for_update().filter(id=attendee_id, account=account).first()
        )
        if attendee is None:
            raise NotFound("attendee")
        previous_send_check(attendee=attendee, template=template)
        return delivery_queue(account=account, attendee=attendee, template=template,
                              mode=mode, correlation_id=correlation_id)


def template_for_send(*, account: Account, template_id: Any) -> MessageTemplate:
    """The account's template, if the account may send at all (spec 000's synchronous checks)."""
    template = MessageTemplate.objects.filter(id=template_id, account=account).first()
    if template is None:
        raise NotFound("template")
    if not account.verified_for_sending:
        raise HeraldError(
            "account_not_verified",
            "This account is not verified for sending yet; ask an administrator to verify it.",
            status=403,
        )
    return template


def previous_send_check(*, attendee: Attendee, template: MessageTemplate) -> None:
    latest = (
        Delivery.objects.filter(attendee=attendee, template=template)
        .order_by("-created_at")
        .only("status", "failed_at", "failure_reason")
        .first()
    )
    if latest is None or latest.status not in PERMANENT_FAILURES:
        return
    raise HeraldError(
        "previous_send_permanently_failed",
        FAILURE_MESSAGES[latest.status],
        status=422,
        failureType=latest.status,
        lastFailureAt=iso(latest.failed_at),
        lastFailureReason=latest.failure_reason or None,
    )


# --- dispatch -------------------------------------------------------------------------------

def delivery_dispatch(*, delivery_id: str) -> None:
    """Claim a queued delivery, render it, hand it to its provider and record the outcome.

    The claim is a conditional UPDATE, so a duplicate task (broker redelivery, sweeper) finds
    nothing to do. No transaction is held open across the provider call.
    """
    now = timezone.now()
    claimed = Delivery.objects.filter(id=delivery_id, status=Status.QUEUED).update(
        status=Status.SENDING, claimed_at=now, attempts=F("attempts") + 1, next_attempt_at=None,
    )
    if not claimed:
        return
    delivery = Delivery.objects.select_related("template", "attendee__event").get(id=delivery_id)
    provider_name = "sandbox" if delivery.mode == Delivery.Mode.TEST else (
        settings.HERALD_EMAIL_PROVIDER
    )
    try:
        content = delivery_render(delivery=delivery)
    except TemplateError as exc:
        _fail(delivery, provider_name, Status.FAILED, "template_error",
              f"The template could not be rendered: {exc}")
        return
    try:
        provider = email_provider(provider_name)
        result = provider.send(_message(delivery, content))
    except ProviderConfigurationError:
        _release(delivery, provider_name)
        raise
    except ProviderTransientError as exc:
        _retry_or_fail(delivery, provider_name, exc)
        return
    except ProviderPermanentError as exc:
        _fail(delivery, provider_name, Status.FAILED, "provider_rejected", str(exc))
        return
    _mark_sent(delivery, provider_name, result.provider_message_id, content)
    if provider_name == "sandbox":
        _simulate(delivery)


@dataclass(frozen=True)
class Content:
    subject: str
    html: str
    text: str


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
    return Content(subject=rendered.subject, html=rendered.html, text=rendered.text)


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


def _event(delivery: Delivery, name: str, status: str, **detail: Any) -> None:
    event = DeliveryEvent.objects.create(
        delivery_id=delivery.id, name=name, status=status,
        correlation_id=delivery.correlation_id, occurred_at=timezone.now(), detail=detail,
    )
    webhooks_emit(delivery_event_ids=[event.id])


def _mark_sent(delivery: Delivery, provider: str, message_id: str, content: Content) -> None:
    now = timezone.now()
    # A fast provider callback may already have moved the status on: only "sending" → "sent".
    Delivery.objects.filter(id=delivery.id).update(
        status=Case(When(status=Status.SENDING, then=Value(Status.SENT)), default=F("status")),
        provider=provider, provider_message_id=message_id, sent_at=now,
        subject=content.subject, html_body=content.html, text_body=content.text,
    )
    _event(delivery, "comms.sent", Status.SENT, provider=provider, messageId=message_id)


def _retry_or_fail(delivery: Delivery, provider: str, exc: ProviderTransientError) -> None:
    if delivery.attempts >= settings.HERALD_SEND_MAX_ATTEMPTS:
        _fail(delivery, provider, Status.FAILED, "transient",
              f"Transient API-side failure after {delivery.attempts} attempts: {exc}")
        return
    delay = retry_delay(attempt=delivery.attempts, retry_after=exc.retry_after)
    Delivery.objects.filter(id=delivery.id, status=Status.SENDING).update(
        status=Status.QUEUED, provider=provider, claimed_at=None,
        next_attempt_at=timezone.now() + timedelta(seconds=delay),
    )
    _event(delivery, "comms.retry_scheduled", Status.QUEUED, provider=provider,
           attempt=delivery.attempts, retryInSeconds=round(delay, 3), reason=str(exc))
    _enqueue(str(delivery.id), countdown=delay)


def retry_delay(*, attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter; a provider's own ``retry_after`` (429) is a floor."""
    ceiling = min(settings.HERALD_RETRY_MAX_SECONDS,
                  settings.HERALD_RETRY_BASE_SECONDS * 2 ** (attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after + random.uniform(0, 1))
    return delay


def _fail(delivery: Delivery, provider: str, status: str, failure_type: str, reason: str) -> None:
    now = timezone.now()
    Delivery.objects.filter(id=delivery.id).update(
        status=status, provider=provider, failure_type=failure_type,
        failure_reason=reason, failed_at=now, claimed_at=None,
    )
    _event(delivery, "comms.failed", status, provider=provider, failureType=failure_type,
           reason=reason)


def _release(delivery: Delivery, provider: str) -> None:
    """A configuration error: put the delivery back for the sweeper once Herald is fixed."""
    log.error("Provider %s is misconfigured; delivery %s stays queued", provider, delivery.id)
    Delivery.objects.filter(id=delivery.id, status=Status.SENDING).update(
        status=Status.QUEUED, claimed_at=None, next_attempt_at=timezone.now(),
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
    """Re-enqueue deliveries whose task was lost: queued past their time, or stuck in sending
    past the lease (a killed worker). Returns how many were re-enqueued."""
    now = timezone.now()
    grace = timedelta(seconds=settings.HERALD_SWEEP_GRACE_SECONDS)
    lease = timedelta(seconds=settings.HERALD_SENDING_LEASE_SECONDS)
    stuck_sending = list(
        Delivery.objects.filter(status=Status.SENDING, claimed_at__lt=now - lease)
        .values_list("id", flat=True)[:limit]
    )
    if stuck_sending:
        Delivery.objects.filter(id__in=stuck_sending, status=Status.SENDING).update(
            status=Status.QUEUED, claimed_at=None, next_attempt_at=now,
        )
    overdue = list(
        Delivery.objects.filter(status=Status.QUEUED)
        .filter(Q(next_attempt_at__lt=now - grace)
                | Q(next_attempt_at__isnull=True, created_at__lt=now - grace)
                | Q(id__in=stuck_sending))
        .values_list("id", flat=True)[:limit]
    )
    for delivery_id in overdue:
        _enqueue(str(delivery_id))
    return len(overdue)
