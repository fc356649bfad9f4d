"""A guest's check-in token: what the ticket's QR code holds and the door scans.

``<attendee id hex><ticket key>.<signature>``: signed with the server's key (salted for this
use), so only Herald makes them. It names the guest and this guest's ticket (``ticket_key``,
random per guest: a guest deleted and added again under the same id has a new one, so the
old QR code stays refused), and no personal data. The check-in endpoint (``guests.checkin``)
verifies it and then the guest's account, mode, key and state."""

import uuid
from typing import Any, NamedTuple

from django.core import signing

_SIGNER = signing.Signer(salt="herald.checkin.v1", sep=".")
_ID_LENGTH = 32  # a uuid's hex


class Ticket(NamedTuple):
    attendee_id: uuid.UUID
    key: str


def checkin_token(attendee_id: Any, key: str) -> str:
    """The token of a guest's ticket (stable: the same guest always has the same one)."""
    return _SIGNER.sign(uuid.UUID(str(attendee_id)).hex + key)


def ticket_token(attendee: Any) -> str:
    """``checkin_token`` of a guest row."""
    return checkin_token(attendee.id, attendee.ticket_key)


def checkin_token_read(token: Any) -> Ticket | None:
    """The guest and ticket key a token names, or None if it is not one of ours (forged,
    altered, cut)."""
    if not isinstance(token, str) or len(token) > 200:
        return None
    try:
        value = _SIGNER.unsign(token.strip())
        return Ticket(uuid.UUID(hex=value[:_ID_LENGTH]), value[_ID_LENGTH:])
    except (signing.BadSignature, ValueError):
        return None
