"""Spec 002's multi-channel send: one subject and body to several channels at once, with a
result per channel in the response.

Each channel's send is a Delivery like any other. The rows are committed as claimed
(``sending``) before any provider is called, so a crash mid-request loses nothing: the
sweeper re-queues them after the lease and a worker sends them. The provider calls of all
channels then run concurrently (a thread pool; email's in the request thread); each is tried
once through its chain (failover included) and its outcome is final, since the caller is
told "success: false" and may send again.
"""

from dataclasses import dataclass
from typing import Any

from accounts.models import ApiKey
from comms.immediate import messages_send_now
from comms.messages import Message
from comms.models import FAILURES, Delivery, Status

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


def communications_send(*, key: ApiKey, subject: str, body: str, channels: list[str],
                        is_html: bool, addresses: dict[str, str]) -> list[ChannelResult]:
    """Send on each channel (spec 002 names, validated), ``addresses`` by our channel name.
    Returns one result per channel in request order."""
    from contacts.selectors import contact_find

    account = key.account
    mode = Delivery.Mode.TEST if key.mode == ApiKey.Mode.TEST else Delivery.Mode.LIVE
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
            subject=subject, html=html, text="" if html else body))
    rows = messages_send_now(messages, refused=missing_user)
    return _results(channels, rows)


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
