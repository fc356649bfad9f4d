"""Writes on deliveries before they are sent: queue, suppressions.

Sending is in ``comms.dispatch``, provider events in ``comms.lifecycle``; the rules of whether
a front end may send (spec 000's 422 rule: ``guests.sending``) are the front ends'.
"""

import json
import logging
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import connection, models, transaction
from django.utils import timezone

from accounts.models import Account
from common.errors import HeraldError, NotFound
from comms.models import Delivery, Suppression
from comms.queueing import enqueue

log = logging.getLogger(__name__)


def delivery_queue(*, account: Account, template_id: Any, mode: str, recipient: str,
                   correlation_id: str | None, owner: models.Model | None = None,
                   context: dict[str, Any] | None = None,
                   refs: dict[str, Any] | None = None) -> Delivery:
    """Insert a queued delivery; its task is enqueued when the surrounding transaction commits.

    If the broker is down at that moment the row stays queued and the sweeper sends it.
    """
    delivery = delivery_new(account=account, template_id=template_id, mode=mode,
                            recipient=recipient, correlation_id=correlation_id, owner=owner,
                            context=context, refs=refs)
    delivery.save(force_insert=True)
    delivery_enqueue_on_commit(delivery)
    return delivery


def delivery_new(*, account: Account, template_id: Any, mode: str, recipient: str,
                 correlation_id: str | None, owner: models.Model | None = None,
                 context: dict[str, Any] | None = None,
                 refs: dict[str, Any] | None = None) -> Delivery:
    """The queued delivery of a template to a recipient, not saved yet. A front end gives
    what it belongs to (``owner``: it finds its messages by it), the render ``context``
    (``_sender`` / ``_to_name`` beside the template's tokens) and the ids its webhooks
    carry (``refs``); the engine reads none of its rows."""
    return Delivery(account=account, template_id=template_id, mode=mode, recipient=recipient,
                    correlation_id=correlation_id, context=context, refs=refs,
                    **delivery_owner(owner))


def delivery_owner(owner: models.Model | None) -> dict[str, Any]:
    """The ``owner_type`` / ``owner_id`` fields of a delivery belonging to ``owner``."""
    if owner is None:
        return {}
    return {"owner_type_id": owner_type_id(type(owner)), "owner_id": owner.pk}


def owner_type_id(model: type[models.Model]) -> int:
    """The ``owner_type`` of deliveries owned by ``model``'s rows (cached per process)."""
    return ContentType.objects.get_for_model(model).id


def deliveries_describe(*, rows: list[tuple[Any, dict[str, Any], dict[str, Any]]]) -> None:
    """The render context and refs of deliveries a front end inserted in bulk, by (id,
    context, refs): one UPDATE with the rows as one JSON parameter. (A column array of JSON
    values costs psycopg a regex substitution per quote of every value: three times the
    rest of a bulk insert.)"""
    if not rows:
        return
    records = json.dumps([{"id": str(i), "c": c, "r": r} for i, c, r in rows],
                         ensure_ascii=False)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Delivery._meta.db_table} AS d SET context = v.c, refs = v.r"
            " FROM jsonb_to_recordset(%s::jsonb) AS v(id uuid, c jsonb, r jsonb)"
            " WHERE d.id = v.id", [records])


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
