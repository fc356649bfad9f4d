"""One send pipeline for every channel: claimed deliveries → suppression check → content
rendered once → the channel's provider chain with failover → outcome.

Email is a channel like the others: its chain is the platform's provider (the sandbox for
test keys), as every other channel's is the account's integrations in priority order (the
built-in in-app provider for in-app). Batching is the provider's, as the registry declares
it (``Provider.batching`` / ``in_process``): ``batch`` sends many messages a request
(SendGrid), ``each`` is a session giving each outcome as it is known (SMTP), a provider that
keeps messages in Herald (outbox, sandbox, in-app) has its batch recorded in one write; any
other is called once per message. Claimed rows whose chains send through the same providers
and integrations are one group, whatever their accounts. What a provider
reports itself after a send (the sandbox's lifecycle, in-app's delivered) comes from its
``after_sent`` hook: the pipeline names no provider.

Used by the worker (``comms.dispatch.delivery_dispatch``: transient failures retry later)
and by spec 002's synchronous send (``final=True``: a failure is final, the caller is told
so; the provider calls run concurrently). No transaction is held across a provider call;
every write goes through ``comms.outcomes``' claim-token-guarded helpers.
"""

import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from django.conf import settings
from django.db import connections
from django.utils import timezone

from common import jobs
from common.headers import header_fold
from comms import outcomes, signals, tickets, unsubscribe
from comms.channels import Link, chain_for
from comms.lifecycle import provider_events_apply
from comms.models import Delivery, Status, Suppression
from comms.outcomes import CONNECTION_LOST, Content
from comms.providers import registry
from comms.providers.base import (
    Accepted,
    AttachmentsTooLarge,
    ChannelMessage,
    EmailMessage,
    FollowUp,
    ProviderConfigurationError,
    ProviderEvent,
    ProviderInvalidRecipient,
    ProviderPermanentError,
    ProviderTransientError,
    SendResult,
)
from comms.queueing import enqueue
from comms.selectors import suppression_stops, suppressions_active
from domains.models import SenderDomain
from domains.names import email_domain
from domains.selectors import sender_for
from templates.models import TRANSACTIONAL
from templates.rendering import render

log = logging.getLogger(__name__)

Message = EmailMessage | ChannelMessage


class IntegrationMissing(ProviderPermanentError):
    """The account has no active integration for the channel."""


@dataclass
class Attempted:
    """What a chain did with one message: the last answer and the links that failed over."""

    outcome: SendResult | Exception
    link: Link | None
    failovers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Prepared:
    """A claimed delivery ready for its chain: content, providers, the message."""

    delivery: Delivery
    content: Content
    chain: list[Link]
    message: Message


def deliveries_send(deliveries: list[Delivery], *, final: bool = False) -> None:
    """Send claimed deliveries of any channels and record each outcome. ``final`` (spec 002's
    synchronous send): every provider call at once, concurrently, and a transient or
    configuration failure fails the delivery now instead of retrying.

    A misconfigured platform provider (Herald's own settings) puts its deliveries back
    without using an attempt and raises ``ProviderConfigurationError`` once every other
    group has been sent."""
    try:
        prepared = deliveries_prepare(deliveries)
    except CONNECTION_LOST:  # nothing sent yet: give the rows back now, not after the lease
        give_back(deliveries)
        raise
    if final:
        _send_now(prepared)
        return
    groups: dict[tuple[tuple[str, Any], ...], list[Prepared]] = defaultdict(list)
    for item in prepared:
        groups[chain_identity(item.chain)].append(item)
    misconfigured: list[ProviderConfigurationError] = []
    for group in groups.values():
        misconfigured += _send_group(group)
    if misconfigured:
        raise misconfigured[0]


def chain_identity(chain: list[Link]) -> tuple[tuple[str, Any], ...]:
    """What a chain sends through: each link's provider and integration. The platform's
    links are the same for every account, so one claim's email to many accounts goes out as
    one batch (one SendGrid request per sender, one SMTP session), not one per account."""
    return tuple((link.provider, link.integration_id) for link in chain)


def deliveries_prepare(deliveries: list[Delivery]) -> list[Prepared]:
    """Chain, suppression check, content (rendered once) and message of each delivery; a
    suppressed one or a render failure is recorded as failed and left out."""
    chains: dict[tuple[Any, str, str], list[Link]] = {}
    suppressed = _suppressions(deliveries)
    ready: list[tuple[Delivery, Content, list[Link]]] = []
    for delivery in deliveries:
        key = (delivery.account_id, delivery.channel, delivery.mode)
        if key not in chains:
            chains[key] = chain_for(account_id=key[0], channel=key[1],
                                    test_mode=key[2] == Delivery.Mode.TEST)
        chain = chains[key]
        provider = chain[0].provider if chain else delivery.channel
        if (suppression := _suppression_of(delivery, suppressed)) is not None:
            _fail_suppressed(delivery, provider, suppression)
        elif (content := content_for(delivery, provider)) is not None:
            ready.append((delivery, content, chain))
    senders = _senders([d for d, _, _ in ready if d.channel == "email"])
    return [Prepared(d, c, chain, _message(d, c, senders)) for d, c, chain in ready]


# --- sending --------------------------------------------------------------------------------

def chain_send(chain: list[Link], message: Message,
               failovers: list[tuple[str, str]] | None = None) -> Attempted:
    """Try each link in order: a transient error or a misconfigured integration moves the
    message to the next; success, a rejection or a dead address stops."""
    failovers = list(failovers or [])
    if not chain:
        return Attempted(IntegrationMissing(f"No {_channel(message)} integration configured"),
                         None, failovers)
    for index, link in enumerate(chain):
        try:
            outcome: SendResult | Exception = link.adapter.send(message)
        except Exception as exc:
            outcome = classified(exc, link)
        attempted = _next(chain, index, message, outcome, failovers)
        if attempted is not None:
            return attempted
    raise AssertionError("unreachable")


def _next(chain: list[Link], index: int, message: Message, outcome: SendResult | Exception,
          failovers: list[tuple[str, str]]) -> Attempted | None:
    """The chain's answer once link ``index`` gave ``outcome``; None: try the next link."""
    if isinstance(outcome, ProviderTransientError | ProviderConfigurationError) and (
            index < len(chain) - 1):
        failovers.append((chain[index].provider, str(outcome)))
        return None
    return Attempted(outcome, chain[index], failovers)


def classified(exc: Exception, link: Link) -> Exception:
    """A provider's answer as one of the Provider* errors: an unclassified adapter error is
    transient (an adapter bug must not strand the delivery)."""
    if isinstance(exc, ProviderTransientError | ProviderPermanentError
                  | ProviderConfigurationError):
        return exc
    log.error("Unexpected error from provider %s: %r", link.provider, exc)
    return ProviderTransientError(f"Unexpected provider error: {exc!r}")


def _send_now(prepared: list[Prepared]) -> None:
    """Every message through its chain at once, concurrently; every outcome final."""
    if not prepared:
        return
    with ThreadPoolExecutor(max_workers=len(prepared)) as pool:
        attempts = list(pool.map(_in_thread, prepared))
    record(prepared, attempts, final=True)


def _in_thread(item: Prepared) -> Attempted:
    """``chain_send`` in a thread of its own, whose database connection (a provider may read
    its configuration) goes back to the pool when it is done: a thread's connection is never
    closed by anyone else, and each would hold a pooled connection for ever."""
    try:
        return chain_send(item.chain, item.message)
    finally:
        connections.close_all()


def _send_group(group: list[Prepared]) -> list[ProviderConfigurationError]:
    """One chain's deliveries, batched the way its first provider offers."""
    chain = group[0].chain
    way = _batching(chain[0]) if chain else ""
    if way == "in_process" or not chain:
        return record(group, [chain_send(p.chain, p.message) for p in group])
    if way == "batch" and len(group) > 1:
        return record(group, _batch(chain, group))
    return _one_by_one(chain, group, way == "each")


def _batching(link: Link) -> str:
    """How ``link``'s provider takes a batch, as registered: ``in_process`` (a platform
    provider keeping the message in Herald), ``batch``, ``each`` or "" (one call each)."""
    known = registry.find(link.provider)
    if known is None:
        return ""
    if known.in_process and link.integration_id is None:
        return "in_process"
    return known.batching


def _batch(chain: list[Link], group: list[Prepared]) -> list[Attempted]:
    """The whole group in the first provider's ``send_batch``; a message it fails over
    goes through the rest of the chain on its own."""
    first = chain[0]
    try:
        given = first.adapter.send_batch([p.message for p in group])
    except Exception as exc:
        given = [exc] * len(group)
    attempts = []
    for item, outcome in zip(group, given, strict=True):
        if isinstance(outcome, Exception):
            outcome = classified(outcome, first)
        failovers: list[tuple[str, str]] = []
        attempted = _next(chain, 0, item.message, outcome, failovers)
        attempts.append(attempted or chain_send(chain[1:], item.message, failovers))
    return attempts


def _one_by_one(chain: list[Link], group: list[Prepared],
                session: bool) -> list[ProviderConfigurationError]:
    """One message at a time. Through the first provider's ``send_each`` session (SMTP) the
    outcomes are recorded in groups through ``record``: after ``HERALD_SEND_RECORD_EVERY``
    messages or ``HERALD_SEND_RECORD_MS`` after the group's first send began, whichever comes
    first (0: each message), and always before the rest is handed back and on any error. A
    worker that dies mid-batch leaves at most that many accepted messages unrecorded (sent
    again after the lease), as SendGrid's batch of 100 a request does; one transaction per
    message cost more than the SMTP conversation. Without a session each outcome is
    recorded before the next call. After
    half the lease the rest go back to the queue unattempted, with a kick to take them, so a
    slow provider never keeps a claimed row past its lease (the sweeper would let another
    worker send it too)."""
    claimed_at = group[0].delivery.claimed_at
    lease = timedelta(seconds=settings.HERALD_SENDING_LEASE_SECONDS)
    # Grouped only in a provider's own session (SMTP's send_each): the others' calls (SES,
    # SMS, chat, push) cost more than their recording, and some have no reconciliation.
    pending = _Pending(grouped=session)
    try:
        with closing(_session(chain, group, session)) as attempts:
            for index, item in enumerate(group):
                if claimed_at and timezone.now() > claimed_at + lease / 2:
                    pending.flush()
                    outcomes.requeue_each([rest.delivery for rest in group[index:]])
                    kick()
                    break
                started = time.monotonic()
                pending.add(item, next(attempts), started)
    except BaseException:
        pending.flush_after_error()
        raise
    pending.flush()
    return pending.misconfigured


class _Pending:
    """Outcomes known but not yet recorded, written by ``record`` a group at a time."""

    def __init__(self, *, grouped: bool = True) -> None:
        self.every = max(1, settings.HERALD_SEND_RECORD_EVERY) if grouped else 1
        self.seconds = settings.HERALD_SEND_RECORD_MS / 1000
        self.items: list[Prepared] = []
        self.attempts: list[Attempted] = []
        self.since = 0.0
        self.misconfigured: list[ProviderConfigurationError] = []

    def add(self, item: Prepared, attempted: Attempted, started: float) -> None:
        """``started``: when this message's send began (a slow server's message counts)."""
        if not self.items:
            self.since = started
        self.items.append(item)
        self.attempts.append(attempted)
        if len(self.items) >= self.every or time.monotonic() - self.since >= self.seconds:
            self.flush()

    def flush(self) -> None:
        items, attempts = self.items, self.attempts
        self.items, self.attempts = [], []  # taken: a failed write is not tried twice here
        if items:
            self.misconfigured += record(items, attempts)

    def flush_after_error(self) -> None:
        """What was sent before an error is recorded; the error raised is the first one."""
        count = len(self.items)
        try:
            self.flush()
        except Exception:
            log.exception("Outcomes of %d messages not recorded; a sent one goes again "
                          "after the lease", count)


def _session(chain: list[Link], group: list[Prepared], session: bool) -> Iterator[Attempted]:
    if not session:
        for item in group:
            yield chain_send(item.chain, item.message)
        return
    first = chain[0]
    with closing(first.adapter.send_each([p.message for p in group])) as given:
        for item, outcome in zip(group, given, strict=False):
            if isinstance(outcome, Exception):
                outcome = classified(outcome, first)
            failovers: list[tuple[str, str]] = []
            attempted = _next(chain, 0, item.message, outcome, failovers)
            yield attempted or chain_send(chain[1:], item.message, failovers)


def kick() -> None:
    """A send task for what is due; if the broker is away, the sweeper takes it."""
    try:
        enqueue(None)
    except Exception:
        log.warning("Could not kick the next batch; the sweeper will", exc_info=True)


def give_back(deliveries: list[Delivery]) -> None:
    """Claimed rows whose worker lost the database before calling the provider: back to the
    queue and a kick to take them. If even that fails, the sweeper will (after the lease)."""
    try:
        outcomes.requeue_each([d for d in deliveries if d.claimed_at is not None])
    except Exception:
        log.warning("Claimed deliveries not given back; the sweeper will", exc_info=True)
        return
    kick()


# --- outcomes -------------------------------------------------------------------------------

def record(prepared: list[Prepared], attempts: list[Attempted], *,
           final: bool = False) -> list[ProviderConfigurationError]:
    """Record each outcome: failovers on the timeline, ``sent`` per provider in one write,
    what the provider reports itself (``after_sent``), failures classified. Returns the
    platform configuration errors met (their deliveries were put back)."""
    sent: dict[tuple[str, Any], list[tuple[Delivery, Content, str]]] = defaultdict(list)
    links: dict[tuple[str, Any], Link] = {}
    misconfigured: list[ProviderConfigurationError] = []
    for item, attempted in zip(prepared, attempts, strict=True):
        if attempted.failovers and outcomes.still_mine(item.delivery):
            for provider, error in attempted.failovers:
                outcomes.record_event(item.delivery, "comms.failover", Status.SENDING,
                                      provider=provider, reason=error)
        if isinstance(attempted.outcome, SendResult) and attempted.link is not None:
            key = (attempted.link.provider, attempted.link.integration_id)
            links[key] = attempted.link
            sent[key].append((item.delivery, item.content,
                              attempted.outcome.provider_message_id))
        elif (error := failure_record(item.delivery, item.content, attempted,
                                      final=final)) is not None:
            misconfigured.append(error)
    for key, group in sent.items():
        _sent_record(links[key], group)
    return misconfigured


def _sent_record(link: Link, group: list[tuple[Delivery, Content, str]]) -> None:
    outcomes.mark_sent(group, link.provider)
    if link.integration_id is not None:  # guarded by the claim token, as every write
        Delivery.objects.filter(id__in=[d.id for d, _, _ in group],
                                claimed_at=group[0][0].claimed_at).update(
            integration_id=link.integration_id)
    hook = getattr(link.adapter, "after_sent", None)
    if hook is not None:
        follow_ups_apply(link.provider, hook([Accepted(str(d.id), d.channel, d.recipient)
                                              for d, _, _ in group]))


def follow_ups_apply(provider: str, follow_ups: list[FollowUp]) -> None:
    """What a provider reports itself: at once, or by a task later."""
    now = [f for f in follow_ups if f.after_seconds is None]
    if now:
        provider_events_apply([ProviderEvent(
            provider=provider, provider_event_id=f.provider_event_id, event=f.event,
            occurred_at=timezone.now(), delivery_id=f.delivery_id, reason=f.reason,
            bounce_type=f.bounce_type) for f in now])
    for f in follow_ups:
        if f.after_seconds is not None:
            jobs.publish("comms.apply_provider_event", countdown=f.after_seconds,
                         delivery_id=f.delivery_id, event=f.event,
                         provider_event_id=f.provider_event_id, reason=f.reason,
                         bounce_type=f.bounce_type, provider=provider)


def failure_record(delivery: Delivery, content: Content, attempted: Attempted, *,
                   final: bool) -> ProviderConfigurationError | None:
    """The one failure classifier. A rejection fails the delivery; a dead address too, and
    is announced (``signals.recipient_invalid``: a front end forgets it); a misconfigured
    integration fails it (the account's to fix); a misconfigured platform provider puts it
    back without using an attempt and is returned (Herald's to fix); a transient failure
    retries later with backoff. ``final``: nothing retries, nothing waits."""
    exc = attempted.outcome
    link = attempted.link
    provider = link.provider if link else ""
    if isinstance(exc, IntegrationMissing):
        outcomes.fail(delivery, provider, Status.FAILED, "integration_missing", str(exc))
    elif isinstance(exc, ProviderInvalidRecipient):
        outcomes.fail(delivery, provider, Status.FAILED, "invalid_recipient", str(exc))
        signals.recipient_invalid.send(sender=Delivery, account_id=delivery.account_id,
                                       channel=delivery.channel, address=delivery.recipient,
                                       delivery_id=delivery.id)
    elif isinstance(exc, AttachmentsTooLarge):  # refused before any call: Herald's to say
        outcomes.fail(delivery, provider, Status.FAILED, "attachments_too_large", str(exc))
    elif isinstance(exc, ProviderPermanentError):
        outcomes.fail(delivery, provider, Status.FAILED, "provider_rejected", str(exc))
    elif isinstance(exc, ProviderConfigurationError) and link and link.integration_id:
        outcomes.fail(delivery, provider, Status.FAILED, "integration_error", str(exc))
    elif isinstance(exc, ProviderConfigurationError):
        if final:
            outcomes.fail(delivery, provider, Status.FAILED, "configuration",
                          str(exc) or type(exc).__name__)
            return None
        outcomes.release(delivery, provider)
        return exc
    elif final:
        outcomes.fail(delivery, provider, Status.FAILED, "transient",
                      str(exc) or type(exc).__name__)
    else:  # transient: ``classified`` made every other adapter error one
        outcomes.retry_or_fail(delivery, provider, cast(ProviderTransientError, exc), content)
    return None


# --- suppressions -----------------------------------------------------------------------------

def _suppressions(deliveries: list[Delivery]) -> dict[tuple[Any, str, str, str],
                                                     list[Suppression]]:
    """The suppressions in force for these deliveries, by (account, mode, channel, address),
    every topic's: one query per key mode and channel (a live send honours live suppressions
    only); ``_suppression_of`` picks the one that stops a delivery's template's category."""
    found: dict[tuple[Any, str, str, str], list[Suppression]] = defaultdict(list)
    for mode, channel in {(d.mode, d.channel) for d in deliveries}:
        group = [d for d in deliveries if d.mode == mode and d.channel == channel]
        for s in suppressions_active(account_ids={d.account_id for d in group}, mode=mode,
                                     channel=channel, addresses=[d.recipient for d in group]):
            found[(s.account_id, mode, channel, s.address)].append(s)
    return found


def _suppression_of(delivery: Delivery, suppressed: dict[tuple[Any, str, str, str],
                                                         list[Suppression]]) -> Suppression | None:
    """The suppression that stops this delivery: a bounce's stops every message, an
    unsubscribe only its topic's (never a transactional one's: a ticket still goes)."""
    key = (delivery.account_id, delivery.mode, delivery.channel,
           delivery.recipient.strip().lower())
    category = delivery.template.category if delivery.template else TRANSACTIONAL
    return next((s for s in suppressed.get(key, ()) if suppression_stops(s, category)), None)


def _fail_suppressed(delivery: Delivery, provider: str, suppression: Suppression) -> None:
    topic = f" from {suppression.topic}" if suppression.topic else ""
    reason = (f"{delivery.recipient} is suppressed ({suppression.reason}{topic} at "
              f"{suppression.created_at:%Y-%m-%dT%H:%M:%SZ}): {suppression.detail}".rstrip(": "))
    outcomes.fail(delivery, provider, Status.SUPPRESSED, suppression.reason, reason)


# --- content and messages ---------------------------------------------------------------------

def content_for(delivery: Delivery, provider: str) -> Content | None:
    """The content rendered on the first attempt, reused by retries; None if it failed."""
    if delivery.template_version is not None:
        return Content(delivery.subject, delivery.html_body, delivery.text_body,
                       delivery.template_version)
    try:
        content = delivery_render(delivery=delivery)
    except Exception as exc:
        outcomes.fail(delivery, provider, Status.FAILED, "template_error",
                      f"The template could not be rendered: {exc}")
        return None
    size = len(content.subject) + len(content.html) + len(content.text)
    if size > settings.HERALD_MAX_RENDERED_CHARS:
        outcomes.fail(delivery, provider, Status.FAILED, "template_error",
                      f"The rendered message has {size} characters, over the "
                      f"{settings.HERALD_MAX_RENDERED_CHARS} allowed.")
        return None
    return content


# The tokens of the templates' shared vocabulary (``templates.samples.SAMPLE``) that a
# message's front end may not give: empty, so a template using them renders the same for all.
EMPTY_TOKENS = {"firstName": "", "lastName": "", "attendeeId": "", "event": {}}


def delivery_render(*, delivery: Delivery) -> Content:
    """Render the delivery's template with the context its front end stored (a guest's names
    and event, an email's tokens, a notification's contact and payload), beside the tokens
    every message has: ``email``, ``correlationId`` and ``attendeeInvitationId`` (spec 000's
    name of the delivery id).

    The front end's data is frozen when the message is queued: a guest, event or brand edited
    afterwards is not seen by this message, on its first attempt or its retries (the engine
    reads no front-end row). A resend is a new message and takes the edit."""
    template = delivery.template
    if template is None:  # content given as is (spec 002), stored at creation
        return Content(delivery.subject, delivery.html_body, delivery.text_body, 0)
    context = {
        **EMPTY_TOKENS,
        "email": delivery.recipient,
        "correlationId": delivery.correlation_id or "",
        "attendeeInvitationId": str(delivery.id),
        **unsubscribe.render_tokens(delivery),
        **tickets.render_tokens(delivery),
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


def _channel(message: Message) -> str:
    return "email" if isinstance(message, EmailMessage) else message.channel


# Channels whose messages have no title: the subject stays on the delivery, for the record.
UNTITLED = frozenset({"sms"})


def _message(delivery: Delivery, content: Content,
             senders: dict[Any, tuple[str, str] | None]) -> Message:
    if delivery.channel != "email":
        return ChannelMessage(
            delivery_id=str(delivery.id), channel=delivery.channel, to=delivery.recipient,
            title="" if delivery.channel in UNTITLED else content.subject, text=content.text,
            html=content.html, options=_options(delivery))
    from_email, from_name = senders.get(delivery.id) or (
        settings.HERALD_DEFAULT_FROM_EMAIL, settings.HERALD_DEFAULT_FROM_NAME)
    return EmailMessage(
        delivery_id=str(delivery.id),
        from_email=from_email,
        from_name=header_fold(from_name),  # headers are one line, whatever was stored
        to_email=delivery.recipient,
        to_name=header_fold(str((delivery.context or {}).get("_to_name") or "")),
        subject=header_fold(content.subject), html=content.html, text=content.text,
        custom_args={"herald_delivery_id": str(delivery.id)},
        reply_to=_options(delivery).get("reply_to", ""),
        headers=unsubscribe.email_headers(delivery),
        attachments=tickets.email_attachments(delivery),
    )


def _senders(deliveries: list[Delivery]) -> dict[Any, tuple[str, str] | None]:
    """Each email's sender: spec 004's ``from`` (checked when accepted), else the sender its
    front end chose (``context["_sender"]``: a spec-003 email's brand) while at the account's
    verified and enabled domain, else the account's default brand at that domain; else None
    (the platform's)."""
    if not deliveries:
        return {}
    accounts = {d.account_id for d in deliveries}
    verified = dict(SenderDomain.objects.filter(account_id__in=accounts, verified=True,
                                                enabled=True).values_list("account_id", "domain"))
    by_account = {account_id: sender_for(account_id=account_id) for account_id in accounts}
    return {d.id: _chosen_sender(d) or _own_sender(d, verified.get(d.account_id))
            or by_account[d.account_id] for d in deliveries}


def _chosen_sender(delivery: Delivery) -> tuple[str, str] | None:
    """Spec 004's ``from``, checked against the account's verified domain when accepted."""
    chosen = _options(delivery).get("from")
    return (chosen, "") if chosen else None


def _own_sender(delivery: Delivery, domain: str | None) -> tuple[str, str] | None:
    """The sender the front end stored with the message, if at the verified ``domain``."""
    sender = (delivery.context or {}).get("_sender") or {}
    address = str(sender.get("email") or "")
    if not domain or not address or email_domain(address) != domain:
        return None
    return address, str(sender.get("name") or "")
