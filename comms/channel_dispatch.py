"""Sending on the channels other than email: each delivery goes through its channel's chain
of providers (``comms.channels.chain_for``), failing over to the next on a transient error or
a misconfigured integration. Used by the worker (``dispatch.delivery_dispatch``: transient
failures retry later) and by spec 002's synchronous send (``final=True``: they fail at once,
since the caller is told so).

Provider calls hold no transaction and touch no database, so the synchronous path can run
them concurrently; every write goes through ``comms.outcomes``' claim-token-guarded helpers.
"""

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils import timezone

from comms import dispatch, outcomes
from comms.channels import Link, chain_for
from comms.models import Delivery, Status
from comms.providers.base import (
    ChannelMessage,
    ProviderConfigurationError,
    ProviderInvalidRecipient,
    ProviderPermanentError,
    ProviderTransientError,
    SendResult,
)
from comms.queueing import enqueue

log = logging.getLogger(__name__)


class IntegrationMissing(ProviderPermanentError):
    """The account has no active integration for the channel."""


@dataclass
class Attempted:
    """What a chain did with one message: the last answer and the links that failed over."""

    outcome: SendResult | Exception
    link: Link | None
    failovers: list[tuple[str, str]] = field(default_factory=list)


def chain_send(chain: list[Link], message: ChannelMessage) -> Attempted:
    """Try each link in order: a transient error or a misconfigured integration moves the
    message to the next; success, a rejection or a dead address stops."""
    if not chain:
        return Attempted(IntegrationMissing(f"No {message.channel} integration configured"),
                         None)
    failovers: list[tuple[str, str]] = []
    for index, link in enumerate(chain):
        try:
            return Attempted(link.adapter.send(message), link, failovers)
        except (ProviderTransientError, ProviderConfigurationError) as exc:
            if index == len(chain) - 1:
                return Attempted(exc, link, failovers)
            failovers.append((link.provider, str(exc)))
        except ProviderPermanentError as exc:
            return Attempted(exc, link, failovers)
        except Exception as exc:  # an adapter bug must not strand the delivery
            log.exception("Unexpected error from %s", link.provider)
            error = ProviderTransientError(f"Unexpected provider error: {exc!r}")
            if index == len(chain) - 1:
                return Attempted(error, link, failovers)
            failovers.append((link.provider, str(error)))
    raise AssertionError("unreachable")


# Channels whose messages have no title: the subject stays on the delivery, for the record.
UNTITLED = frozenset({"sms"})


def channel_message(delivery: Delivery, content: outcomes.Content) -> ChannelMessage:
    return ChannelMessage(
        delivery_id=str(delivery.id), channel=delivery.channel, to=delivery.recipient,
        title="" if delivery.channel in UNTITLED else content.subject, text=content.text,
        html=content.html,
        options=(delivery.context or {}).get("_options", {}),
    )


@dataclass(frozen=True)
class Prepared:
    """A claimed delivery ready for its chain: content, providers, the message."""

    delivery: Delivery
    content: outcomes.Content
    chain: list[Link]
    message: ChannelMessage


def channels_prepare(deliveries: list[Delivery]) -> list[Prepared]:
    """Content (a render failure is recorded and skipped) and provider chain of each."""
    prepared: list[Prepared] = []
    chains: dict[tuple[Any, str, bool], list[Link]] = {}
    for delivery in deliveries:
        content = dispatch.content_for(delivery, delivery.channel)
        if content is None:
            continue
        key = (delivery.account_id, delivery.channel, delivery.mode == Delivery.Mode.TEST)
        if key not in chains:
            chains[key] = chain_for(account_id=key[0], channel=key[1], test_mode=key[2])
        prepared.append(Prepared(delivery, content, chains[key],
                                 channel_message(delivery, content)))
    return prepared


def channels_record(prepared: list[Prepared], attempts: list[Attempted], *,
                    final: bool = False) -> None:
    """Record each outcome: failovers on the timeline, ``sent`` per provider in batches,
    failures classified; ``final``: a transient failure fails now instead of retrying."""
    sent: dict[tuple[str, Any], list[tuple[Delivery, outcomes.Content, str]]] = defaultdict(list)
    for item, attempted in zip(prepared, attempts, strict=True):
        if attempted.failovers and outcomes.still_mine(item.delivery):
            for provider, error in attempted.failovers:
                outcomes.record_event(item.delivery, "comms.failover", Status.SENDING,
                                      provider=provider, reason=error)
        if isinstance(attempted.outcome, SendResult) and attempted.link is not None:
            link = attempted.link
            sent[(link.provider, link.integration_id)].append(
                (item.delivery, item.content, attempted.outcome.provider_message_id))
        else:
            _record_failure(item.delivery, item.content, attempted, final=final)
    for (provider, integration_id), group in sent.items():
        outcomes.mark_sent(group, provider)
        if integration_id is not None:  # guarded by the claim token, as every write
            Delivery.objects.filter(id__in=[d.id for d, _, _ in group],
                                    claimed_at=group[0][0].claimed_at).update(
                integration_id=integration_id)
        _after_sent(provider, [d for d, _, _ in group])


def channels_dispatch(deliveries: list[Delivery]) -> None:
    """The worker's path: claimed deliveries of any non-email channels, one after another,
    each outcome recorded as soon as it is known (a worker that dies mid-batch resends
    nothing already recorded); transient failures retry later (``outcomes.retry_or_fail``).
    After half the lease the rest go back to the queue unattempted, with a task to take them,
    so a slow provider can never keep a claimed row past its lease."""
    prepared = channels_prepare(deliveries)
    deadline = time.monotonic() + settings.HERALD_SENDING_LEASE_SECONDS / 2
    for index, item in enumerate(prepared):
        if time.monotonic() > deadline:
            outcomes.requeue_each([rest.delivery for rest in prepared[index:]])
            enqueue(str(prepared[index].delivery.id))
            return
        channels_record([item], [chain_send(item.chain, item.message)])


def _record_failure(delivery: Delivery, content: outcomes.Content, attempted: Attempted,
                    *, final: bool) -> None:
    exc = attempted.outcome
    provider = attempted.link.provider if attempted.link else ""
    if isinstance(exc, IntegrationMissing):
        outcomes.fail(delivery, provider, Status.FAILED, "integration_missing", str(exc))
    elif isinstance(exc, ProviderInvalidRecipient):
        outcomes.fail(delivery, provider, Status.FAILED, "invalid_recipient", str(exc))
        if delivery.channel == "push":
            _push_token_forget(delivery)
    elif isinstance(exc, ProviderPermanentError):
        outcomes.fail(delivery, provider, Status.FAILED, "provider_rejected", str(exc))
    elif isinstance(exc, ProviderConfigurationError):
        outcomes.fail(delivery, provider, Status.FAILED, "integration_error", str(exc))
    elif final:
        outcomes.fail(delivery, provider, Status.FAILED, "transient", str(exc))
    else:
        outcomes.retry_or_fail(delivery, provider, exc, content)


def _push_token_forget(delivery: Delivery) -> None:
    from contacts.services import push_tokens_remove_dead

    removed = push_tokens_remove_dead(account_id=delivery.account_id, token=delivery.recipient)
    if removed:
        log.info("Removed a dead push token (%d contact(s)) after delivery %s",
                 removed, delivery.id)


def _after_sent(provider: str, deliveries: list[Delivery]) -> None:
    """In-app messages are in the inbox once stored; the sandbox reports delivery later."""
    from comms.lifecycle import provider_events_apply
    from comms.providers.base import ProviderEvent

    if provider == "inapp":
        now = timezone.now()
        provider_events_apply([ProviderEvent(
            provider="inapp", provider_event_id=f"inapp-stored-{d.id}", event="delivered",
            occurred_at=now, delivery_id=str(d.id)) for d in deliveries])
    elif provider == "sandbox":
        from comms.tasks import apply_sandbox_event

        for delivery in deliveries:
            apply_sandbox_event.apply_async(
                kwargs={"delivery_id": str(delivery.id), "event": "delivered",
                        "provider_event_id": f"sandbox-{delivery.id}-0"},
                countdown=settings.HERALD_SANDBOX_DELAY_SECONDS)
