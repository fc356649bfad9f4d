"""Writes on deliveries before they are sent: queue, the 422 rule, suppressions.

Sending is in ``comms.dispatch``, provider events in ``comms.lifecycle``.
"""

import hashlib
import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Account
from common.errors import Conflict, HeraldError, NotFound
from common.times import iso
from comms.models import PERMANENT_FAILURES, Delivery, IdempotencyRecord, Status, Suppression
from comms.queueing import enqueue
from guests.models import Attendee
from templates.models import MessageTemplate

log = logging.getLogger(__name__)

FAILURE_MESSAGES = {
    Status.BOUNCED: "Previous send bounced — resending will not help.",
    Status.DROPPED: "Previous send was dropped by the provider — resending will not help.",
    Status.SPAM_REPORTED: "Recipient reported the previous send as spam — resending is blocked.",
    Status.UNSUBSCRIBED: "Recipient has unsubscribed — resending is blocked.",
}



def delivery_queue(*, account: Account, attendee: Attendee, template_id: Any,
                   mode: str, correlation_id: str | None) -> Delivery:
    """Insert a queued delivery; its task is enqueued when the surrounding transaction commits.

    If the broker is down at that moment the row stays queued and the sweeper sends it.
    """
    delivery = delivery_new(account=account, attendee=attendee, template_id=template_id,
                            mode=mode, correlation_id=correlation_id)
    delivery.save(force_insert=True)
    delivery_enqueue_on_commit(delivery)
    return delivery


def delivery_new(*, account: Account, attendee: Attendee, template_id: Any, mode: str,
                 correlation_id: str | None) -> Delivery:
    """The queued delivery of a template to an attendee, not saved yet."""
    return Delivery(account=account, attendee=attendee, template_id=template_id, mode=mode,
                    recipient=attendee.email, correlation_id=correlation_id)


def delivery_enqueue_on_commit(delivery: Delivery) -> None:
    """Publish the send once the row is committed (now, outside a transaction)."""
    transaction.on_commit(lambda: enqueue(str(delivery.id)), robust=True)


def delivery_send_to_attendee(*, account: Account, mode: str, attendee_id: Any,
                              template_id: Any, correlation_id: str | None,
                              idempotency_key: str | None = None) -> Delivery:
    """Spec 000's two-step send, with its 422 rule on the pair's most recent delivery.

    With an ``Idempotency-Key``, a retry of the same request returns the first send instead of
    sending again (a reuse of the key for a different request is a 409). Keys are per key mode:
    a live request never gets a test key's sandbox send back.
    """
    fingerprint = hashlib.sha256(
        f"{attendee_id}|{template_id}|{correlation_id}".encode()).hexdigest()
    if idempotency_key and (replay := _replayed(account, mode, idempotency_key, fingerprint)):
        return replay
    template = template_for_send(account=account, template_id=template_id)
    try:
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
            delivery = delivery_queue(account=account, attendee=attendee,
                                      template_id=template.id, mode=mode,
                                      correlation_id=correlation_id)
            if idempotency_key:
                IdempotencyRecord.objects.create(account=account, mode=mode,
                                                 key=idempotency_key, fingerprint=fingerprint,
                                                 delivery=delivery)
            return delivery
    except IntegrityError:
        # A concurrent request with the same key won: answer as its retry would.
        replay = _replayed(account, mode, idempotency_key or "", fingerprint)
        if replay is None:
            raise
        return replay


def _replayed(account: Account, mode: str, key: str, fingerprint: str) -> Delivery | None:
    record = IdempotencyRecord.objects.filter(account=account, mode=mode, key=key
                                              ).select_related("delivery").first()
    if record is None:
        return None
    if record.fingerprint != fingerprint:
        raise Conflict("idempotency_key_reused",
                       "This Idempotency-Key was used for a different request.")
    return record.delivery


def template_for_send(*, account: Account, template_id: Any) -> MessageTemplate:
    """The account's template, if the account may send at all (spec 000's synchronous checks)."""
    template = MessageTemplate.objects.filter(id=template_id, account=account).first()
    if template is None:
        raise NotFound("template")
    account_check_can_send(account=account)
    return template


def account_check_can_send(*, account: Account) -> None:
    if not account.verified_for_sending:
        raise HeraldError(
            "account_not_verified",
            "This account is not verified for sending yet; ask an administrator to verify it.",
            status=403,
        )


def previous_send_check(*, attendee: Attendee, template: MessageTemplate, mode: str) -> None:
    """Spec 000's 422 rule: the pair's most recent delivery in this key mode failed for good
    *to the address the attendee still has*. A sandbox failure never blocks a live send, and
    once the email has been corrected (in the admin) a resend goes out."""
    latest = (
        Delivery.objects.filter(attendee=attendee, template=template, mode=mode)
        .order_by("-created_at")
        .only("status", "recipient", "failed_at", "failure_reason")
        .first()
    )
    if latest is None or not failed_for_good(status=latest.status, recipient=latest.recipient,
                                             email=attendee.email):
        return
    raise HeraldError(
        "previous_send_permanently_failed",
        FAILURE_MESSAGES[latest.status],
        status=422,
        failureType=latest.status,
        lastFailureAt=iso(latest.failed_at),
        lastFailureReason=latest.failure_reason or None,
    )


def failed_for_good(*, status: str | None, recipient: str | None, email: str) -> bool:
    """Whether a delivery blocks resends to ``email``: it failed for good, to that address."""
    return (status in PERMANENT_FAILURES and recipient is not None
            and recipient.strip().lower() == email.strip().lower())




# --- suppressions ---------------------------------------------------------------------------

def suppression_add(*, account_id: Any, address: str, reason: str, detail: str = "",
                    delivery_id: Any = None, channel: str = "email",
                    mode: str | None = None) -> None:
    """Suppress an address (idempotent: an active suppression is kept as it is)."""
    suppressions_add(items=[{"account_id": account_id, "address": address, "reason": reason,
                             "detail": detail, "delivery_id": delivery_id,
                             "channel": channel, "mode": mode}])


def suppressions_add(*, items: list[dict[str, Any]]) -> None:
    """Suppress many addresses in one insert; ones already suppressed are left as they are.
    Each item: account_id, address, reason, and optionally detail, delivery_id, channel, mode.
    Without a mode an item takes its delivery's (a sandbox bounce suppresses in test mode
    only), else live."""
    if not items:
        return
    modes = _delivery_modes([item["delivery_id"] for item in items
                             if not item.get("mode") and item.get("delivery_id")])
    Suppression.objects.bulk_create([
        Suppression(account_id=item["account_id"], channel=item.get("channel", "email"),
                    mode=item.get("mode") or modes.get(str(item.get("delivery_id")),
                                                       Delivery.Mode.LIVE),
                    address=item["address"].strip().lower(), reason=item["reason"],
                    detail=(item.get("detail") or "")[:2000],
                    delivery_id=item.get("delivery_id"))
        for item in items
    ], ignore_conflicts=True)


def _delivery_modes(ids: list[Any]) -> dict[str, str]:
    if not ids:
        return {}
    return {str(pk): mode for pk, mode in
            Delivery.objects.filter(id__in=ids).values_list("id", "mode")}


def suppression_remove(*, account: Account, mode: str, address: str, reason: str,
                       channel: str = "email") -> Suppression:
    """Lift an active suppression of this key mode, keeping the row with why it was lifted.
    A test key lifts only sandbox suppressions: a live one needs a live key (403)."""
    rows = Suppression.objects.filter(account=account, channel=channel,
                                      address=address.strip().lower(), removed_at__isnull=True)
    suppression = rows.filter(mode=mode).first()
    if suppression is None:
        if mode == Delivery.Mode.TEST and rows.exists():
            raise HeraldError("forbidden", "This address is suppressed in live mode; a test "
                              "key cannot lift a live suppression: use a live key.",
                              status=403)
        raise NotFound("suppression")
    suppression.removed_at = timezone.now()
    suppression.removed_reason = reason
    suppression.save(update_fields=["removed_at", "removed_reason", "updated_at"])
    return suppression
