"""Spec 000's two-step send and its 422 rule: check-in's rules on top of the engine's queue.

The engine (``comms.services``) queues a delivery; whether a guest may be sent a template
again is check-in's business, decided here.
"""

from dataclasses import replace
from datetime import datetime
from typing import Any

from django.db import transaction

from accounts.models import Account
from common.errors import HeraldError, NotFound
from common.times import iso
from comms.models import PERMANENT_FAILURES, Delivery, Status
from comms.selectors import unsubscribe_of
from comms.services import account_check_can_send, message_queue
from comms.unsubscribe import topic_words
from guests.messages import event_context, guest_message
from guests.models import Attendee
from templates.models import MessageTemplate

FAILURE_MESSAGES = {
    Status.BOUNCED: "Previous send bounced — resending will not help.",
    Status.DROPPED: "Previous send was dropped by the provider — resending will not help.",
    Status.SPAM_REPORTED: "Recipient reported the previous send as spam — resending is blocked.",
    Status.UNSUBSCRIBED: "Recipient has unsubscribed — resending is blocked.",
}


def delivery_send_to_attendee(*, account: Account, mode: str, attendee_id: Any,
                              template_id: Any, correlation_id: str | None,
                              send_at: datetime | None = None) -> Delivery:
    """Spec 000's two-step send, with its 422 rule on the pair's most recent delivery to the
    attendee's address. ``send_at``: a time still ahead makes it ``scheduled``; a scheduled
    send already waiting does not refuse another (each is a send of its own, cancellable).

    Retries with an idempotency key are the API layer's (``api.idempotency``, as on every
    POST); the view commits its stored answer in the same transaction as this send.
    """
    template = template_for_send(account=account, template_id=template_id)
    with transaction.atomic():
        # Locking the attendee serializes concurrent sends to it, so the 422 rule holds.
        attendee = Attendee.objects.select_for_update().filter(
            id=attendee_id, account=account).first()
        # A guest only a test key created is a rehearsal: live requests do not see it
        # until a live create names its id (and takes its fields, guests.services).
        if attendee is None or (mode == Delivery.Mode.LIVE
                                and attendee.mode != Delivery.Mode.LIVE):
            raise NotFound("attendee")
        previous_send_check(attendee=attendee, template=template, mode=mode)
        return message_queue(replace(guest_message(
            attendee=attendee, template_id=template.id, mode=mode,
            correlation_id=correlation_id, event=event_context(event=attendee.event)),
            send_at=send_at))


def template_for_send(*, account: Account, template_id: Any) -> MessageTemplate:
    """The account's template, if the account may send at all (spec 000's synchronous checks)."""
    template = MessageTemplate.objects.filter(id=template_id, account=account).first()
    if template is None:
        raise NotFound("template")
    account_check_can_send(account=account)
    return template


def previous_send_check(*, attendee: Attendee, template: MessageTemplate, mode: str) -> None:
    """Spec 000's 422 rule: the pair's most recent delivery in this key mode *to the address
    the attendee has now* failed for good. A sandbox failure never blocks a live send; once
    the email has been corrected (in the admin) a resend goes out, and correcting it back to
    the address that failed for good blocks again (a later delivery to another address does
    not clear it). A cancelled delivery is as if never made: it is no failure, and it does not
    hide the failure of the send before it."""
    latest = (
        Delivery.objects.filter(attendee=attendee, template=template, mode=mode,
                                recipient__iexact=attendee.email.strip())
        .exclude(status=Status.CANCELLED)
        .order_by("-created_at")
        .only("status", "recipient", "failed_at", "failure_reason")
        .first()
    )
    if latest is None or not failed_for_good(status=latest.status, recipient=latest.recipient,
                                             email=attendee.email):
        _unsubscribed_check(attendee=attendee, template=template, mode=mode)
        return
    raise HeraldError(
        "previous_send_permanently_failed",
        FAILURE_MESSAGES[latest.status],
        status=422,
        failureType=latest.status,
        lastFailureAt=iso(latest.failed_at),
        lastFailureReason=latest.failure_reason or None,
    )


def _unsubscribed_check(*, attendee: Attendee, template: MessageTemplate, mode: str) -> None:
    """The 422 rule's ``unsubscribed`` for a topic's template: the guest unsubscribed from
    its topic (or every topic), by link or at the provider. A transactional one still goes."""
    unsubscribe = unsubscribe_of(account_id=attendee.account_id, mode=mode,
                                 address=attendee.email, category=template.category)
    if unsubscribe is not None:
        raise HeraldError(
            "previous_send_permanently_failed", FAILURE_MESSAGES[Status.UNSUBSCRIBED],
            status=422, failureType=Status.UNSUBSCRIBED,
            lastFailureAt=iso(unsubscribe.created_at),
            lastFailureReason=topic_words(unsubscribe.topic))


def failed_for_good(*, status: str | None, recipient: str | None, email: str) -> bool:
    """Whether a delivery blocks resends to ``email``: it failed for good, to that address."""
    return (status in PERMANENT_FAILURES and recipient is not None
            and recipient.strip().lower() == email.strip().lower())
