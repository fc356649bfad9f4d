"""Sending a delivery: claim, suppression check, render once, provider call; and the sweeper
that re-enqueues what a lost task or a killed worker left behind. Outcomes are recorded by
``comms.outcomes``, every write guarded by the claim token.
"""

import logging
from collections import defaultdict
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from common.headers import header_fold
from comms.models import RANK, Delivery, DeliveryEvent, Status, Suppression
from comms.outcomes import (
    CONNECTION_LOST,
    Content,
    fail,
    mark_sent,
    release,
    requeue_claimed,
    requeue_each,
    retry_or_fail,
)
from comms.providers import email_provider
from comms.providers.base import (
    EmailMessage,
    ProviderConfigurationError,
    ProviderPermanentError,
    ProviderTransientError,
    SendResult,
)
from comms.providers.sandbox import SandboxProvider
from comms.queueing import enqueue, kick_taken
from comms.selectors import suppressions_active
from domains.selectors import sender_for
from templates.rendering import render

log = logging.getLogger(__name__)


def delivery_dispatch(*, delivery_id: str | None) -> None:
    """Claim this delivery, if due, together with other due deliveries waiting behind it, and
    send them as one batch. Under load the queue drains in batches (one claim, one provider
    request per sender, a handful of writes) while an idle system still sends at once; the
    tasks of rows claimed by someone else find nothing to do.

    No transaction is held open across the provider call. ``delivery_id`` None: a kick that
    claims the oldest due rows (``comms.queueing``); a full claim kicks the next batch before
    this one is sent, so a backlog keeps every worker process busy.
    """
    kick_taken()  # before the claim: a sender committing from now on publishes a new kick
    now = timezone.now()
    batch_size = settings.HERALD_DISPATCH_BATCH_SIZE
    ids = _claim(delivery_id, now, batch_size)
    if not ids:
        return
    if len(ids) >= max(batch_size - 1, 1):
        _kick()  # the next batch; if the broker went away, still send what is claimed
    # Templates and events once per batch (not one copy per row, bodies and all).
    try:
        rows = list(Delivery.objects.select_related("attendee")
                    .prefetch_related("template", "attendee__event")
                    .filter(id__in=ids).order_by("created_at"))
    except CONNECTION_LOST:  # nothing sent yet: give the rows back now, not after the lease
        _give_back([Delivery(id=i, claimed_at=now) for i in ids])
        raise
    groups: dict[str, list[Delivery]] = defaultdict(list)
    others: list[Delivery] = []
    for delivery in rows:
        if delivery.channel == "email":
            groups[_provider_name(delivery)].append(delivery)
        else:
            others.append(delivery)
    try:
        for provider, deliveries in groups.items():
            email_send_group(provider, deliveries)
    finally:  # a misconfigured email provider must not strand the other channels' rows
        if others:
            from comms.channel_dispatch import channels_dispatch

            channels_dispatch(others)


def _provider_name(delivery: Delivery) -> str:
    return "sandbox" if delivery.mode == Delivery.Mode.TEST else email_provider_name()


def email_provider_name() -> str:
    return settings.HERALD_EMAIL_PROVIDER


def _claim(delivery_id: str | None, now: datetime, batch_size: int) -> list[Any]:
    """``UPDATE … RETURNING``: this row if due, plus up to ``batch_size - 1`` other due rows
    (skipping rows other workers hold). All get the same claim token. Without
    ``delivery_id``: up to ``batch_size`` due rows."""
    table = Delivery._meta.db_table
    due = "status = 'queued' AND (next_attempt_at IS NULL OR next_attempt_at <= %s)"
    token = connection.ops.adapt_datetimefield_value(now)
    own = Delivery._meta.pk.get_db_prep_value(delivery_id, connection) if delivery_id else None
    others = batch_size - 1 if delivery_id else batch_size
    sql = (
        f"UPDATE {table} SET status = 'sending', claimed_at = %s, attempts = attempts + 1,"
        f" next_attempt_at = NULL WHERE {due} AND (id = %s OR id IN ("
        f"SELECT id FROM {table} WHERE {due} ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED"
        ")) RETURNING id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [token, token, own, token, max(others, 0)])
        return [Delivery._meta.pk.to_python(row[0]) for row in cursor.fetchall()]


def email_send_group(provider_name: str, deliveries: list[Delivery], *,
                     final: bool = False) -> None:
    """Send claimed email deliveries through one provider. ``final`` (spec 002's synchronous
    send): a transient or configuration failure fails the delivery now instead of retrying.

    Outcomes are recorded as the provider gives them: per request for a batching API, per
    message for an adapter that sends one at a time (SES; SMTP's ``send_each`` session), so
    a worker that dies mid-batch leaves at most one accepted message unrecorded per
    process."""
    try:
        ready = _ready(provider_name, deliveries)
        messages = _messages(ready) if ready else []
    except CONNECTION_LOST:  # nothing sent yet: give the rows back now, not after the lease
        _give_back(deliveries)
        raise
    if not ready:
        return
    try:
        provider = email_provider(provider_name)
    except ProviderConfigurationError as exc:
        for delivery, content in ready:
            if final:
                _record_failure(delivery, provider_name, content, exc, final=True)
            else:
                release(delivery, provider_name)
        if final:
            return
        raise
    if hasattr(provider, "send_each") or (
            not hasattr(provider, "send_batch") and provider_name not in IN_PROCESS):
        given = _send_each(provider_name, provider, ready, messages, final=final)
    else:
        given = _provider_send(provider, messages)
        _record(provider_name, list(zip(ready, given, strict=True)), final=final)
    if not final and any(isinstance(o, ProviderConfigurationError) for o in given):
        raise next(o for o in given if isinstance(o, ProviderConfigurationError))


# Providers that keep the message in Herald (the admin's outbox, the test-mode sandbox):
# nothing can be sent twice, so their batches are recorded in one write.
IN_PROCESS = frozenset({"outbox", "sandbox"})


def _send_each(provider_name: str, provider: Any, ready: list[tuple[Delivery, Content]],
               messages: list[EmailMessage], *, final: bool) -> list[Any]:
    """One message at a time, each outcome recorded as soon as it is known. After half the
    lease the rest go back to the queue unattempted, with a kick to take them, so a slow
    server never keeps a claimed row past its lease (the sweeper would let another worker
    send it too)."""
    claimed_at = ready[0][0].claimed_at
    lease = timedelta(seconds=settings.HERALD_SENDING_LEASE_SECONDS)
    given: list[Any] = []
    with closing(_each(provider, messages)) as results:
        for index, item in enumerate(ready):
            if not final and claimed_at and timezone.now() > claimed_at + lease / 2:
                requeue_claimed([delivery.id for delivery, _ in ready[index:]], claimed_at)
                _kick()
                break
            given.append(next(results))
            _record(provider_name, [(item, given[-1])], final=final)
    return given


def _each(provider: Any, messages: list[EmailMessage]) -> Iterator[Any]:
    """Each message's SendResult or exception, one message per provider call (SES), or
    through the adapter's own session (``send_each``: SMTP)."""
    if hasattr(provider, "send_each"):
        with closing(provider.send_each(messages)) as results:
            yield from results
        return
    for message in messages:
        try:
            yield provider.send(message)
        except Exception as exc:  # classified by _record_failure
            yield exc


def _kick() -> None:
    """A send task for what is due; if the broker is away, the sweeper takes it."""
    try:
        enqueue(None)
    except Exception:
        log.warning("Could not kick the next batch; the sweeper will", exc_info=True)


def _ready(provider_name: str, deliveries: list[Delivery]) -> list[tuple[Delivery, Content]]:
    """The deliveries to send with their content; suppressed ones and render failures are
    recorded as failed."""
    suppressed = _suppressions(deliveries)
    ready: list[tuple[Delivery, Content]] = []
    for delivery in deliveries:
        if (suppression := suppressed.get(_suppression_key(delivery))) is not None:
            _fail_suppressed(delivery, provider_name, suppression)
        elif (content := content_for(delivery, provider_name)) is not None:
            ready.append((delivery, content))
    return ready


def _record(provider_name: str, given: list[tuple[tuple[Delivery, Content], Any]], *,
            final: bool) -> None:
    sent = []
    for (delivery, content), outcome in given:
        if isinstance(outcome, SendResult):
            sent.append((delivery, content, outcome.provider_message_id))
        else:
            _record_failure(delivery, provider_name, content, outcome, final=final)
    mark_sent(sent, provider_name)
    if provider_name == "sandbox":
        for delivery, _, _ in sent:
            _simulate(delivery)


def _give_back(deliveries: list[Delivery]) -> None:
    """Claimed rows whose worker lost the database before calling the provider: back to the
    queue and a kick to take them. If even that fails, the sweeper will (after the lease)."""
    try:
        requeue_each([d for d in deliveries if d.claimed_at is not None])
    except Exception:
        log.warning("Claimed deliveries not given back; the sweeper will", exc_info=True)
        return
    _kick()


def _messages(ready: list[tuple[Delivery, Content]]) -> list[EmailMessage]:
    """Each message with its sender: a spec-003 email's brand, else the account's default
    brand, each only at the account's verified and enabled domain; else the platform's."""
    from emails.selectors import email_senders

    by_delivery = email_senders(delivery_ids=[d.id for d, _ in ready])
    by_account = {account_id: sender_for(account_id=account_id)
                  for account_id in {d.account_id for d, _ in ready}}
    return [_message(d, c, _chosen_sender(d) or by_delivery.get(d.id)
                     or by_account[d.account_id]) for d, c in ready]


def _chosen_sender(delivery: Delivery) -> tuple[str, str] | None:
    """Spec 004's ``from``, checked against the account's verified domain when accepted."""
    chosen = _options(delivery).get("from")
    return (chosen, "") if chosen else None


def _provider_send(provider: Any, messages: list[EmailMessage]) -> list[Any]:
    """Each message's SendResult or exception, in order (``send_batch`` where the adapter has
    one, else one call per message)."""
    if len(messages) > 1 and hasattr(provider, "send_batch"):
        return provider.send_batch(messages)
    with closing(_each(provider, messages)) as results:
        return list(results)


def _record_failure(delivery: Delivery, provider: str, content: Content,
                    exc: Exception, *, final: bool = False) -> None:
    if final and not isinstance(exc, ProviderPermanentError):
        fail(delivery, provider, Status.FAILED,
             "configuration" if isinstance(exc, ProviderConfigurationError) else "transient",
             str(exc) or type(exc).__name__)
    elif isinstance(exc, ProviderConfigurationError):
        release(delivery, provider)
    elif isinstance(exc, ProviderPermanentError):
        fail(delivery, provider, Status.FAILED, "provider_rejected", str(exc))
    elif isinstance(exc, ProviderTransientError):
        retry_or_fail(delivery, provider, exc, content)
    else:  # an unclassified adapter error must not strand the row
        log.error("Unexpected error from provider %s for %s: %r", provider, delivery.id, exc)
        retry_or_fail(delivery, provider,
                       ProviderTransientError(f"Unexpected provider error: {exc!r}"), content)


def _suppressions(deliveries: list[Delivery]) -> dict[tuple[Any, str, str], Suppression]:
    """The suppressions in force for these deliveries, by (account, mode, address): one
    query per key mode (a live send honours live suppressions only)."""
    found = {}
    for mode in {d.mode for d in deliveries}:
        group = [d for d in deliveries if d.mode == mode]
        for s in suppressions_active(account_ids={d.account_id for d in group}, mode=mode,
                                     addresses=[d.recipient for d in group]):
            found[(s.account_id, mode, s.address)] = s
    return found


def _suppression_key(delivery: Delivery) -> tuple[Any, str, str]:
    return (delivery.account_id, delivery.mode, delivery.recipient.strip().lower())


def _fail_suppressed(delivery: Delivery, provider: str, suppression: Suppression) -> None:
    reason = (f"{delivery.recipient} is suppressed ({suppression.reason} at "
              f"{suppression.created_at:%Y-%m-%dT%H:%M:%SZ}): {suppression.detail}".rstrip(": "))
    fail(delivery, provider, Status.SUPPRESSED, suppression.reason, reason)


def content_for(delivery: Delivery, provider: str) -> Content | None:
    """The content rendered on the first attempt, reused by retries; None if it failed."""
    if delivery.template_version is not None:
        return Content(delivery.subject, delivery.html_body, delivery.text_body,
                       delivery.template_version)
    try:
        content = delivery_render(delivery=delivery)
    except Exception as exc:
        fail(delivery, provider, Status.FAILED, "template_error",
              f"The template could not be rendered: {exc}")
        return None
    size = len(content.subject) + len(content.html) + len(content.text)
    if size > settings.HERALD_MAX_RENDERED_CHARS:
        fail(delivery, provider, Status.FAILED, "template_error",
              f"The rendered message has {size} characters, over the "
              f"{settings.HERALD_MAX_RENDERED_CHARS} allowed.")
        return None
    return content


def delivery_render(*, delivery: Delivery) -> Content:
    """Render the delivery's template with its attendee and event, or with the context the
    delivery carries (spec 003's emails have neither attendee nor event)."""
    template, attendee = delivery.template, delivery.attendee
    if template is None:  # content given as is (spec 002), stored at creation
        return Content(delivery.subject, delivery.html_body, delivery.text_body, 0)
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
        **(delivery.context or {}),
    }
    rendered = render(
        cache_key=(str(template.id), template.version), subject=template.subject,
        html_body=template.html_body, text_body=template.text_body, context=context,
        fallback=template.event_id is not None,
    )
    # Spec 004's per-send overrides (e.g. the email subject) replace the rendered part.
    subject = _options(delivery).get("subject") or _options(delivery).get("title")
    return Content(header_fold(subject or rendered.subject), rendered.html, rendered.text,
                   template.version)


def _options(delivery: Delivery) -> dict[str, Any]:
    return (delivery.context or {}).get("_options") or {}


def _message(delivery: Delivery, content: Content,
             sender: tuple[str, str] | None) -> EmailMessage:
    """The message for the provider. ``sender``: the account's brand at its verified and
    enabled domain, else None for the platform's default sender."""
    attendee = delivery.attendee
    from_email, from_name = sender or (settings.HERALD_DEFAULT_FROM_EMAIL,
                                       settings.HERALD_DEFAULT_FROM_NAME)
    return EmailMessage(
        delivery_id=str(delivery.id),
        from_email=from_email,
        from_name=header_fold(from_name),  # headers are one line, whatever was stored
        to_email=delivery.recipient,
        to_name=header_fold(f"{attendee.first_name} {attendee.last_name}".strip()
                            if attendee else ""),
        subject=header_fold(content.subject), html=content.html, text=content.text,
        custom_args={"herald_delivery_id": str(delivery.id)},
        reply_to=_options(delivery).get("reply_to", ""),
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
    if overdue:  # one kick: it claims the oldest due rows, and each full claim the next batch
        enqueue(None)
    return len(overdue)


def _reclaim_expired(now: datetime) -> None:
    """Claims past their lease (their worker died or lost the database): first those the
    provider reported, recorded as sent (``_reconcile``); then, where the provider reports
    what it accepted, the others are held back for ``HERALD_RECONCILE_SECONDS`` more, for
    its report to arrive; the rest go back to the queue, or fail once out of attempts."""
    lease_end = now - timedelta(seconds=settings.HERALD_SENDING_LEASE_SECONDS)
    _reconcile(lease_end)
    expired = Q(status=Status.SENDING, claimed_at__lt=lease_end)
    if reconciling():  # only live email goes to the reporting provider
        window = timedelta(seconds=settings.HERALD_RECONCILE_SECONDS)
        expired &= ~Q(channel="email", mode=Delivery.Mode.LIVE,
                      claimed_at__gte=lease_end - window)
    exhausted = Delivery.objects.filter(expired, attempts__gte=settings.HERALD_SEND_MAX_ATTEMPTS)
    for delivery in exhausted.only("id", "claimed_at", "correlation_id", "provider")[:1000]:
        fail(delivery, delivery.provider, Status.FAILED, "transient",
              f"No outcome after {settings.HERALD_SEND_MAX_ATTEMPTS} attempts "
              "(the worker stopped each time).")
    # The same condition in the UPDATE: a row re-claimed meanwhile is left alone.
    Delivery.objects.filter(expired).update(
        status=Status.QUEUED, claimed_at=None, next_attempt_at=now - timedelta(days=1))


# The email providers that report what they accepted, each with the setting that says its
# events reach Herald (SendGrid's Event Webhook ``processed``, SES's ``Send`` through SNS,
# both carrying our delivery id).
REPORTING_PROVIDERS = {"sendgrid": "SENDGRID_WEBHOOK_PUBLIC_KEY",
                       "ses": "HERALD_SES_SNS_TOPIC_ARNS"}


def reconciling() -> bool:
    """Whether the live email provider's reports are awaited before a lost send is repeated."""
    setting = REPORTING_PROVIDERS.get(email_provider_name())
    return bool(setting and getattr(settings, setting, None)
                and settings.HERALD_RECONCILE_SECONDS > 0)


def _reconcile(lease_end: datetime, limit: int = 1000) -> int:
    """Expired claims the provider has reported on (any event of it with our delivery id):
    it has the message, so it is recorded ``sent`` (with the provider's message id, and the
    content rendered as it was sent) and never sent again; one an event already moved on
    (``delivered``, a bounce…) keeps that status and gets its send recorded. Returns how
    many."""
    reported = DeliveryEvent.objects.filter(delivery_id=OuterRef("pk"),
                                            provider_event_id__isnull=False)
    load = Delivery.objects.select_related("attendee").prefetch_related("template",
                                                                         "attendee__event")
    rows = list(load.filter(status=Status.SENDING, claimed_at__lt=lease_end)
                .filter(Exists(reported))[:limit])
    # Rows a provider event moved on (delivered, bounced…) while still being sent: marked
    # with their claim (``comms.lifecycle``) until their send is recorded.
    rows += load.filter(status__in=MOVED_ON, next_attempt_at__lt=lease_end,
                        sent_at__isnull=True)[:limit]
    if not rows:
        return 0
    first: dict[Any, dict[str, Any]] = {}
    for delivery_id, detail in (DeliveryEvent.objects.filter(
            delivery_id__in=[d.id for d in rows], provider_event_id__isnull=False)
            .order_by("-id").values_list("delivery_id", "detail")):
        first[delivery_id] = detail or {}
    groups: dict[tuple[datetime, str], list[tuple[Delivery, Content, str]]] = defaultdict(list)
    for delivery in rows:
        detail = first.get(delivery.id, {})
        provider = str(detail.get("provider") or email_provider_name())
        groups[(delivery.claimed_at, provider)].append(
            (delivery, _content_as_sent(delivery), str(detail.get("messageId") or "")))
    for (_, provider), sent in groups.items():
        mark_sent(sent, provider, reconciled=True)
    log.warning("%d deliveries whose worker stopped were reported accepted by the provider: "
                "recorded sent, not sent again", len(rows))
    return len(rows)


# What only a provider event moves a delivery to.
MOVED_ON = [status for status in RANK if status not in (Status.QUEUED, Status.SENDING,
                                                        Status.SENT, Status.SUPPRESSED)]


def _content_as_sent(delivery: Delivery) -> Content:
    """The content a reconciled delivery went out with: stored, else rendered again (the
    worker died before storing it); what is stored if the template no longer renders."""
    if delivery.template_version is not None:
        return Content(delivery.subject, delivery.html_body, delivery.text_body,
                       delivery.template_version)
    try:
        return delivery_render(delivery=delivery)
    except Exception:
        log.warning("Reconciled delivery %s: content not rendered again", delivery.id,
                    exc_info=True)
        return Content(delivery.subject, delivery.html_body, delivery.text_body, None)
