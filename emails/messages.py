"""One message of ``POST /v1/Email/`` checked on its own, without the database.

Each message gets its own result, so a bad one is an ``Error`` in ``Results`` and never fails
the batch. Hand-written rather than a DRF serializer: a batch holds up to 1,000 of them.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from comms.scheduling import send_at_read
from emails.models import EmailType

TYPES = [t.value for t in EmailType]
OPTIONAL = ("Token", "GroupId", "NumPhotos", "OrderId")  # null counts as absent
FIELDS = ("To", "Type", "BrandId", *OPTIONAL, "SendAt")
# The optional fields each type uses, and those of them it requires.
USES = {
    EmailType.TOKEN: ("Token", "NumPhotos"),
    EmailType.GROUP: ("GroupId",),
    EmailType.TOKEN_AND_GROUP: ("Token", "GroupId", "NumPhotos"),
    EmailType.PURCHASE: ("OrderId",),
}
REQUIRES = {
    EmailType.TOKEN: ("Token",),
    EmailType.GROUP: ("GroupId",),
    EmailType.TOKEN_AND_GROUP: ("Token", "GroupId"),
    EmailType.PURCHASE: ("OrderId",),
}
MAX_NUM_PHOTOS = 2**31 - 1


@dataclass(frozen=True)
class EmailRequest:
    to: str
    type: str
    brand_id: uuid.UUID
    token: str = ""
    group_id: str = ""
    num_photos: int | None = None
    order_id: uuid.UUID | None = None
    send_at: datetime | None = None  # a time still ahead: scheduled until then


class MessageInvalid(ValueError):
    """Why one message cannot be sent, with the ``Status`` of its result."""

    def __init__(self, error: str, status: int = 400) -> None:
        super().__init__(error)
        self.error = error
        self.status = status


def message_parse(raw: Any) -> EmailRequest:
    """The message as an ``EmailRequest``, or ``MessageInvalid`` naming what is wrong."""
    if not isinstance(raw, dict):
        raise MessageInvalid("A message must be a JSON object.")
    unknown = sorted(str(name) for name in raw if name not in FIELDS)
    if unknown:
        raise MessageInvalid(f"Unknown field(s): {', '.join(unknown)}.")
    to = _address(raw.get("To"))
    email_type = _type(raw.get("Type"))
    brand_id = _uuid("BrandId", raw.get("BrandId"))
    given = {name for name in OPTIONAL if raw.get(name) is not None}
    for name in REQUIRES[email_type]:
        if name not in given:
            raise MessageInvalid(f"{name} is required for Type {email_type}.")
    if extra := sorted(given - set(USES[email_type])):
        raise MessageInvalid(f"Not used with Type {email_type}: {', '.join(extra)}.")
    return EmailRequest(
        to=to, type=email_type, brand_id=brand_id,
        token=_text("Token", raw["Token"]) if "Token" in given else "",
        group_id=_text("GroupId", raw["GroupId"]) if "GroupId" in given else "",
        num_photos=_num_photos(raw["NumPhotos"]) if "NumPhotos" in given else None,
        order_id=_uuid("OrderId", raw["OrderId"]) if "OrderId" in given else None,
        send_at=_send_at(raw.get("SendAt")),
    )


def _send_at(value: Any) -> datetime | None:
    """Beyond the spec: when to send (``comms.scheduling.send_at_read``); null or past: now."""
    try:
        return send_at_read(value)
    except ValueError as exc:
        raise MessageInvalid(f"SendAt: {exc}") from None


def _type(value: Any) -> str:
    if value is None:
        raise MessageInvalid("Type is required.")
    if value not in TYPES:
        raise MessageInvalid(f"Type must be one of {', '.join(TYPES)}.")
    return value


def _address(value: Any) -> str:
    if value is None:
        raise MessageInvalid("To is required.")
    if not isinstance(value, str):
        raise MessageInvalid("To must be a string.")
    address = value.strip()
    try:
        validate_email(address)
    except ValidationError:
        raise MessageInvalid(f"To is not a valid email address: {value[:254]!r}.") from None
    if len(address) > 254:
        raise MessageInvalid("To is longer than 254 characters.")
    return address


def _uuid(name: str, value: Any) -> uuid.UUID:
    if value is None:
        raise MessageInvalid(f"{name} is required.")
    if not isinstance(value, str):
        raise MessageInvalid(f"{name} must be a UUID string.")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise MessageInvalid(f"{name} is not a UUID: {value[:64]!r}.") from None


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise MessageInvalid(f"{name} must be a string.")
    if not value.strip():
        raise MessageInvalid(f"{name} must not be empty.")
    if len(value) > 255:
        raise MessageInvalid(f"{name} is longer than 255 characters.")
    return value


def _num_photos(value: Any) -> int:
    # JSON true is a Python int, and 10.0 is not an integer count.
    if isinstance(value, bool) or not isinstance(value, int) or not (
            -1 <= value <= MAX_NUM_PHOTOS):
        raise MessageInvalid("NumPhotos must be an integer ≥ -1 (-1 means unlimited).")
    return value
