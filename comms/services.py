"""Writes on deliveries before they are sent: the front ends' messages queued, suppressions.
Spec 002's messages, sent at once, go through ``comms.immediate``.

Sending is in ``comms.dispatch``, provider events in ``comms.lifecycle``; the rules of whether
a front end may send (spec 000's 422 rule: ``guests.sending``) are the front ends'.
"""

import logging
import uuid
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.utils import timezone

from accounts.models import Account
from common import logs, metrics
from common.errors import HeraldError, NotFound
from common.inserts import rows_insert
from comms import unsubscribe
from comms.messages import Message, Owner
from comms.models import Delivery, Status, Suppression
from comms.queueing import enqueue
from comms.scheduling import scheduled

log = logging.getLogger(__name__)


def message_queue(message: Message) -> Delivery:
    """Insert one queued delivery; its task is enqueued when the surrounding transaction
    commits. If the broker is down at that moment the row stays queued and the sweeper
    sends it. A scheduled one waits for its time (``comms.scheduling``) and publishes
    nothing."""
    delivery = message_row(message)
    delivery.save(force_insert=True)
    if delivery.status == Status.QUEUED:
        delivery_enqueue_on_commit(delivery)
    deliveries_logged([delivery])
    return delivery


def deliveries_logged(deliveries: Sequence[Delivery]) -> None:
    """Each new delivery's first state (queued, scheduled, sending) as a log line once its
    insert commits (``common.logs``): for the front ends that insert ``message_row``'s rows
    themselves, after their insert."""
    rows = [(d.id, d.account_id, d.status) for d in deliveries]
    transaction.on_commit(lambda: logs.delivery_rows(rows), robust=True)


def message_row(message: Message) -> Delivery:
    """The queued delivery of ``message``, not saved yet (for a front end inserting it in
    one statement with its own rows: ``common.inserts.insert_together``); counted as accepted
    when the caller's transaction commits."""
    delivery = Delivery(**_fields(message), **delivery_owner(message.owner))
    metrics.deliveries_accepted([(delivery.channel, delivery.mode)])
    return delivery


def messages_queue(messages: Sequence[Message]) -> list[uuid.UUID]:
    """Insert queued deliveries in one statement and enqueue one send task on commit (it
    claims its row and the oldest due rows behind it, and each full claim kicks the next
    batch, so the chain claims every row; the sweeper covers a lost broker message).
    Returns their ids, in the messages' order."""
    if not messages:
        return []
    columns = {name: [get(m) for m in messages] for name, get in _COLUMNS}
    owners = [_owner_pair(m.owner) for m in messages]
    columns["owner_type_id"] = [kind for kind, _ in owners]
    columns["owner_id"] = [pk for _, pk in owners]
    _deliveries_insert(columns)
    metrics.deliveries_accepted(zip(columns["channel"], columns["mode"], strict=True))
    now_ids = [pk for pk, status in zip(columns["id"], columns["status"], strict=True)
               if status == Status.QUEUED]
    if now_ids:  # scheduled ones wait for their time (comms.scheduling): no task
        first = str(now_ids[0])
        transaction.on_commit(lambda: enqueue(first), robust=True)
    logged = list(zip(columns["id"], columns["account_id"], columns["status"], strict=True))
    transaction.on_commit(lambda: logs.delivery_rows(logged), robust=True)
    return columns["id"]


# A delivery's fields from its message, by attname (the owner's: ``_owner_pair``).
_COLUMNS: tuple[tuple[str, Callable[[Message], Any]], ...] = (
    ("id", lambda m: m.id or uuid.uuid4()),
    *((name, attrgetter(name)) for name in (
        "account_id", "mode", "channel", "recipient", "template_id", "subject",
        "correlation_id", "event_name", "integration_id")),
    ("html_body", attrgetter("html")),
    ("text_body", attrgetter("text")),
    # Content given as is: its version is 0, the pipeline sends it unrendered.
    ("template_version", lambda m: 0 if m.template_id is None else None),
    ("context", Message.stored_context),
    ("refs", lambda m: dict(m.refs) if m.refs is not None else None),
    # A time still ahead: scheduled, due then; otherwise queued now.
    ("status", lambda m: Status.SCHEDULED if scheduled(m.send_at) else Status.QUEUED),
    ("next_attempt_at", lambda m: m.send_at if scheduled(m.send_at) else None),
)


def _fields(message: Message) -> dict[str, Any]:
    return {name: get(message) for name, get in _COLUMNS}


def _owner_pair(owner: Owner) -> tuple[int | None, Any]:
    if owner is None or isinstance(owner, tuple):
        return owner or (None, None)
    return owner_type_id(type(owner)), owner.pk


def delivery_owner(owner: Owner) -> dict[str, Any]:
    """The ``owner_type`` / ``owner_id`` fields of a delivery belonging to ``owner`` (a row,
    or its (content type id, id))."""
    if owner is None:
        return {}
    if isinstance(owner, tuple):
        return {"owner_type_id": owner[0], "owner_id": owner[1]}
    return {"owner_type_id": owner_type_id(type(owner)), "owner_id": owner.pk}


def owner_type_id(model: type[models.Model]) -> int:
    """The ``owner_type`` of deliveries owned by ``model``'s rows (cached per process)."""
    return ContentType.objects.get_for_model(model).id


def _deliveries_insert(columns: dict[str, list[Any]]) -> None:
    """One statement for the whole batch (``common.inserts.rows_insert``; its JSON form, as
    context and refs vary): a value the same in every row is bound once, the id always per
    row, the other fields take their default as ``bulk_create`` would."""
    count = len(columns["id"])
    constants = {name: values[0] for name, values in columns.items()
                 if name != "id" and values.count(values[0]) == count}
    varying = [name for name in columns if name not in constants]
    rows_insert(Delivery, varying, list(zip(*(columns[name] for name in varying), strict=True)),
                constants=constants)


def delivery_enqueue_on_commit(delivery: Delivery) -> None:
    """Publish the send once the row is committed (now, outside a transaction)."""
    transaction.on_commit(lambda: enqueue(str(delivery.id)), robust=True)


def account_check_can_send(*, account: Account) -> None:
    if not account.verified_for_sending:
        raise HeraldError(
            "account_not_verified",
            "This account is not verified for sending yet; ask an administrator to verify it.",
            status=403,
        )


# --- suppressions ---------------------------------------------------------------------------

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
                       channel: str = "email", topic: str = "") -> Suppression:
    """Lift an active suppression of this key mode, keeping the row with why it was lifted.
    A test key lifts only sandbox suppressions: a live one needs a live key (403). ``topic``:
    which one (an address has at most one per topic): "" the one that stops every message (a
    bounce), a topic or "*" an unsubscribe."""
    rows = Suppression.objects.filter(account=account, channel=channel, topic=topic,
                                      address=address.strip().lower(), removed_at__isnull=True)
    suppression = rows.filter(mode=mode).first()
    if suppression is None:
        if mode == Delivery.Mode.TEST and rows.exists():
            raise HeraldError("forbidden", "This address is suppressed in live mode; a test "
                              "key cannot lift a live suppression: use a live key.",
                              status=403)
        raise NotFound("suppression")
    if suppression.topic:  # an unsubscribe lifted is a resubscribe, with its webhook
        unsubscribe.resubscribes_record(account_id=account.pk, mode=mode,
                                        address=suppression.address, topics=[topic],
                                        reason=reason)
        suppression.refresh_from_db()
        return suppression
    suppression.removed_at = timezone.now()
    suppression.removed_reason = reason
    suppression.save(update_fields=["removed_at", "removed_reason", "updated_at"])
    return suppression
