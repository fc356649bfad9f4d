"""Writes of spec 003: sending batches of emails, and brands with one template per email type.

A batch is validated message by message (``emails.messages``); the valid ones become queued
Deliveries and their Email rows in two bulk inserts and one transaction, and the send tasks
are enqueued on commit — one per dispatcher batch, since each task claims that many due rows.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction

from accounts.models import Account
from common.errors import Conflict, HeraldError, NotFound
from comms.messages import Message
from comms.scheduling import scheduled
from comms.services import account_check_can_send, messages_queue
from domains.models import Brand
from domains.services import brand_save
from emails.messages import EmailRequest, MessageInvalid, message_parse
from emails.models import Email, EmailType
from templates.models import MessageTemplate
from templates.services import template_create

log = logging.getLogger(__name__)

MAX_BATCH = 1000
# Herald's content for a type the brand has no template for (tokens: see _context).
DEFAULT_TEMPLATES = {
    EmailType.TOKEN: (
        "Your photos from {{ brand.name }}",
        "Your code is {{ token }}.{% if numPhotos %} It gives you {{ numPhotos }} photos."
        "{% endif %}"),
    EmailType.GROUP: (
        "Your photos from {{ brand.name }} are ready",
        "Find your photos with group {{ groupId }}."),
    EmailType.TOKEN_AND_GROUP: (
        "Your photos from {{ brand.name }}",
        "Your code is {{ token }} for group {{ groupId }}.{% if numPhotos %} It gives you "
        "{{ numPhotos }} photos.{% endif %}"),
    EmailType.PURCHASE: (
        "Your order with {{ brand.name }}",
        "Thank you for your order {{ orderId }}."),
}
_DEFAULTS_NAMESPACE = uuid.UUID("0b5d2c1e-6a57-4f4e-9a51-3e0f2d1c0a03")


@dataclass(frozen=True)
class EmailResult:
    """One entry of ``Results``: 200 and the MessageId, or a 4xx and why."""

    status: int
    message_id: uuid.UUID | None = None
    error: str = ""
    send_at: datetime | None = None  # scheduled for then (None: sent now)


def emails_send(*, account: Account, mode: str, messages: list[Any]) -> list[EmailResult]:
    """Validate each message on its own and queue the valid ones; results in request order.

    A fixed number of queries whatever the batch size (brands, templates, two bulk inserts),
    and ⌈n / (HERALD_DISPATCH_BATCH_SIZE - 1)⌉ send tasks enqueued on commit.
    """
    if not 1 <= len(messages) <= MAX_BATCH:
        raise HeraldError("batch_size", f"Messages must hold 1 to {MAX_BATCH} messages.")
    account_check_can_send(account=account)
    parsed: list[EmailRequest | MessageInvalid] = []
    for raw in messages:
        try:
            parsed.append(message_parse(raw))
        except MessageInvalid as exc:
            parsed.append(exc)
    requests = [p for p in parsed if isinstance(p, EmailRequest)]
    brands = {b.uuid: b for b in Brand.objects.filter(
        account=account, uuid__in={r.brand_id for r in requests})}
    queued: dict[int, uuid.UUID] = {}
    with transaction.atomic():
        templates = _templates_for(account, brands.values(), {r.type for r in requests})
        rows: list[tuple[Message, Email]] = []
        for index, item in enumerate(parsed):
            if isinstance(item, EmailRequest) and item.brand_id in brands:
                rows.append(_rows(account, mode, item, brands[item.brand_id], templates))
                queued[index] = rows[-1][1].delivery_id
        _insert(rows)
    return [_result(item, queued.get(index)) for index, item in enumerate(parsed)]


def _result(item: EmailRequest | MessageInvalid, message_id: uuid.UUID | None) -> EmailResult:
    if message_id is not None:
        return EmailResult(200, message_id, send_at=item.send_at if scheduled(item.send_at)
                           else None)
    if isinstance(item, MessageInvalid):
        return EmailResult(item.status, error=item.error)
    return EmailResult(404, error=f"No brand with BrandId {item.brand_id}.")


def _rows(account: Account, mode: str, item: EmailRequest, brand: Brand,
          templates: dict[tuple[int, str], uuid.UUID]) -> tuple[Message, Email]:
    message_id = uuid.uuid4()  # the MessageId: in its own context and its Email row
    message = Message(account_id=account.id, mode=mode, recipient=item.to, id=message_id,
                      template_id=templates[(brand.id, item.type)], send_at=item.send_at,
                      context=_context(item, brand, message_id),
                      # The engine sends from it while at the account's verified domain.
                      sender={"email": brand.from_email, "name": brand.from_name})
    email = Email(delivery_id=message_id, account=account, brand=brand, type=item.type,
                  address=item.to.lower(), token=item.token, group_id=item.group_id,
                  num_photos=item.num_photos, order_id=item.order_id)
    return message, email


def _context(item: EmailRequest, brand: Brand, message_id: uuid.UUID) -> dict[str, Any]:
    """The template tokens of one email (beside ``email`` and ``attendeeInvitationId``)."""
    photos = "unlimited" if item.num_photos == -1 else item.num_photos
    return {
        "messageId": str(message_id), "to": item.to, "type": item.type,
        "token": item.token, "groupId": item.group_id,
        "numPhotos": "" if photos is None else photos,
        "orderId": str(item.order_id) if item.order_id else "",
        "brand": {"id": str(brand.uuid), "name": brand.name, "fromName": brand.from_name,
                  "fromEmail": brand.from_email},
    }


def _insert(rows: list[tuple[Message, Email]]) -> None:
    """Two bulk inserts: the messages, handed to the engine (which enqueues one send task on
    commit, ``comms.services.messages_queue``), and their Email rows."""
    if not rows:
        return
    messages_queue([m for m, _ in rows])
    Email.objects.bulk_create([e for _, e in rows])


# --- templates per type ---------------------------------------------------------------------

def _templates_for(account: Account, brands: Any,
                   types: set[str]) -> dict[tuple[int, str], uuid.UUID]:
    """(brand pk, type) → the MessageTemplate to send with: the brand's own while it still
    exists, else Herald's default for the type (created once per account). At most two
    queries: the brands' templates, and an insert-if-missing of the defaults needed."""
    brands = list(brands)
    wanted = {(b.id, t): _ref(_templates_of(b).get(t)) for b in brands for t in types}
    existing = set(MessageTemplate.objects.filter(
        account=account, id__in={ref for ref in wanted.values() if ref}).values_list(
        "id", flat=True)) if any(wanted.values()) else set()
    chosen = {key: ref for key, ref in wanted.items() if ref in existing}
    missing = {t for (_, t), ref in wanted.items() if ref not in existing}
    defaults = default_templates_ensure(account=account, types=missing) if missing else {}
    return {key: chosen.get(key) or defaults[key[1]] for key in wanted}


def _templates_of(brand: Brand) -> dict[str, Any]:
    """The brand's type → template map (the admin edits it as raw JSON: tolerate junk)."""
    return brand.templates if isinstance(brand.templates, dict) else {}


def _ref(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def default_templates_ensure(*, account: Account, types: set[str]) -> dict[str, uuid.UUID]:
    """Herald's default template of each type for this account, created on first use. Their
    ids are derived from (account, type), so concurrent first uses create one each."""
    ids = {t: uuid.uuid5(_DEFAULTS_NAMESPACE, f"{account.id}:{t}") for t in types}
    MessageTemplate.objects.bulk_create([
        MessageTemplate(id=ids[t], account=account, name=f"Herald default: {t} email",
                        subject=DEFAULT_TEMPLATES[t][0], text_body=DEFAULT_TEMPLATES[t][1])
        for t in types
    ], ignore_conflicts=True)
    return ids


# --- brands ---------------------------------------------------------------------------------

def brand_create(*, account: Account, name: str, from_email: str, from_name: str = "",
                 is_default: bool = False, templates: dict[str, Any] | None = None) -> Brand:
    """A new brand; ``templates`` maps a type to a template id, to inline content
    (``{"subject", "html_body", "text_body"}``, stored as a new template) or to None."""
    brand = Brand(account=account, name=name, from_email=from_email, from_name=from_name,
                  is_default=is_default)
    return _brand_store(brand, templates or {})


def brand_update(*, brand: Brand, templates: dict[str, Any] | None = None,
                 **changes: Any) -> Brand:
    """Change the fields given (``name``, ``from_email``, ``from_name``, ``is_default``) and
    the types named in ``templates``; the rest stays as it is."""
    for field, value in changes.items():
        if field not in {"name", "from_email", "from_name", "is_default"}:
            raise TypeError(f"brand_update() got an unexpected field {field!r}")
        setattr(brand, field, value)
    return _brand_store(brand, templates or {})


def _brand_store(brand: Brand, templates: dict[str, Any]) -> Brand:
    try:
        with transaction.atomic():
            refs = {t: _template_ref(brand, t, value) for t, value in templates.items()}
            merged = {**_templates_of(brand), **refs}
            brand.templates = {t: ref for t, ref in merged.items() if ref}
            return brand_save(brand=brand)
    except IntegrityError:
        raise Conflict("brand_name_taken",
                       f"The account already has a brand named {brand.name!r}.") from None


def _template_ref(brand: Brand, email_type: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        template = template_create(account=brand.account, name=f"{brand.name}: {email_type}",
                                   **value)
        return str(template.id)
    if not MessageTemplate.objects.filter(account=brand.account, id=value).exists():
        raise NotFound("template")
    return str(value)
