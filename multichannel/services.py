"""Spec 002's multi-channel send: one subject and body to several channels at once, with a
result per channel in the response.

Each channel's send is a Delivery like any other. The rows are committed as claimed
(``sending``) before any provider is called, so a crash mid-request loses nothing: the
sweeper re-queues them after the lease and a worker sends them. The provider calls of all
channels then run concurrently (a thread pool; email's in the request thread); each is tried
once through its chain (failover included) and its outcome is final, since the caller is
told "success: false" and may send again.

A ``sendAt`` still ahead is the exception to "sent now": the channels' deliveries are queued
``scheduled`` (``comms.scheduling``) and each result says so, with its id to cancel it by
(``DELETE /api/v1/communications/send/{id}``); at their time they are sent like any queued
delivery, retries included, since nobody waits for them.

The Webhook channel needs no setup: a live send with ``webhookUrl`` signs with the account's
webhook-channel secret, made on first use (``webhook_secret``) and readable by admin keys at
``GET /api/v1/communications/webhook-secret``, so receivers can verify (Standard Webhooks).
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from accounts.models import Account, ApiKey
from common import crypto, signing
from comms.channels import integration_save
from comms.immediate import messages_send_now
from comms.messages import Message
from comms.models import FAILURES, Delivery, Integration, Status
from comms.scheduling import scheduled
from comms.services import messages_queue

# Spec 002's channel names → ours.
CHANNEL_NAMES = {"Email": "email", "Sms": "sms", "Push": "push", "InApp": "inapp",
                 "Webhook": "webhook"}
# The request field each channel sends to.
ADDRESS_FIELD = {"email": "emailAddress", "sms": "phoneNumber", "push": "pushToken",
                 "inapp": "userId", "webhook": "webhookUrl"}


@dataclass(frozen=True)
class ChannelResult:
    channel: str  # as spec 002 names it
    success: bool
    error: str | None
    delivery_id: Any
    send_at: datetime | None = None  # scheduled for then (None: sent now)


def communications_send(*, key: ApiKey, subject: str, body: str, channels: list[str],
                        is_html: bool, addresses: dict[str, str],
                        send_at: datetime | None = None) -> list[ChannelResult]:
    """Send on each channel (spec 002 names, validated), ``addresses`` by our channel name;
    with ``send_at`` still ahead, schedule them instead. Returns one result per channel in
    request order."""
    from contacts.selectors import contact_find

    account = key.account
    mode = Delivery.Mode.TEST if key.mode == ApiKey.Mode.TEST else Delivery.Mode.LIVE
    if "Webhook" in channels and mode == Delivery.Mode.LIVE:
        webhook_secret(account=account)  # the first send makes the channel's secret
    messages: list[Message] = []
    missing_user: dict[int, tuple[str, str]] = {}
    for index, name in enumerate(channels):
        channel = CHANNEL_NAMES[name]
        contact = None
        if channel == "inapp":
            contact = contact_find(account=account, identifier=addresses[channel])
            if contact is None:
                missing_user[index] = ("recipient_not_found", "User not found")
        html = body if is_html and channel in ("email", "webhook") else ""
        messages.append(Message(
            account_id=account.id, mode=mode, channel=channel, recipient=addresses[channel],
            owner=contact, refs={"contactId": str(contact.id)} if contact else None,
            subject=subject, html=html, text="" if html else body, send_at=send_at))
    if scheduled(send_at):
        return _scheduled(channels, messages, missing_user, send_at)
    rows = messages_send_now(messages, refused=missing_user)
    return _results(channels, rows)


def _scheduled(channels: list[str], messages: list[Message],
               refused: dict[int, tuple[str, str]], send_at: Any) -> list[ChannelResult]:
    """The channels' messages queued for ``send_at``; a refused one (an unknown in-app user)
    is not queued and fails in its result, as a send now would report it."""
    kept = [i for i in range(len(messages)) if i not in refused]
    ids = dict(zip(kept, messages_queue([messages[i] for i in kept]), strict=True))
    return [ChannelResult(name, False, refused[i][1], None) if i in refused
            else ChannelResult(name, True, None, ids[i], send_at)
            for i, name in enumerate(channels)]


def communications_of(*, key: ApiKey) -> QuerySet[Delivery]:
    """Spec 002's own deliveries as this key sees them: its account and mode, content given
    as is (no template) and no event's (spec 004's are an event's)."""
    mode = Delivery.Mode.TEST if key.mode == ApiKey.Mode.TEST else Delivery.Mode.LIVE
    return Delivery.objects.filter(account_id=key.account_id, mode=mode,
                                   template__isnull=True, event_name="")


def webhook_secret(*, account: Account) -> str:
    """The account's signing secret of the Webhook channel (``whsec_…``): its first webhook
    integration's, else a new integration with a fresh secret, encrypted at rest. Made once:
    the account row is locked while it is looked for. An account whose webhook integrations
    are all switched off keeps them so (its sends fail "No webhook integration configured")."""
    def first() -> Integration | None:
        return (Integration.objects.filter(account_id=account.id, channel="webhook")
                .order_by("-is_active", "priority", "created_at").first())

    integration = first()
    if integration is None:
        with transaction.atomic():
            Account.objects.select_for_update().filter(id=account.id).first()
            integration = first() or integration_save(
                account=account, provider="webhook", config={},
                name="Webhook channel (made on first use)",
                credentials={"signing_secret": signing.secret_generate()})
    return crypto.decrypt_json(integration.credentials_encrypted).get("signing_secret", "")


def _results(channels: list[str], rows: list[Delivery]) -> list[ChannelResult]:
    fresh = {d.id: d for d in Delivery.objects.filter(id__in=[r.id for r in rows])
             .only("id", "status", "failure_reason")}
    results = []
    for name, row in zip(channels, rows, strict=True):
        delivery = fresh[row.id]
        ok = delivery.status not in FAILURES | {Status.QUEUED, Status.SENDING}
        results.append(ChannelResult(name, ok, None if ok else (
            delivery.failure_reason or f"Not sent ({delivery.status})."), delivery.id))
    return results
