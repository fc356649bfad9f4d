"""A guest's check-in token: what the ticket's QR code holds and the door scans.

``<attendee id hex>.<signature>``: signed with the server's key (salted for this use), so
only Herald makes them; it names the guest and nothing else (no personal data in the QR).
The check-in endpoint (``guests.checkin``) verifies it and then the guest's account, mode
and state."""

import uuid
from typing import Any

from django.core import signing

_SIGNER = signing.Signer(salt="herald.checkin.v1", sep=".")


def checkin_token(attendee_id: Any) -> str:
    """The token of a guest's ticket (stable: the same guest always has the same one)."""
    return _SIGNER.sign(uuid.UUID(str(attendee_id)).hex)


def checkin_token_read(token: Any) -> uuid.UUID | None:
    """The guest a token names, or None if it is not one of ours (forged, altered, cut)."""
    if not isinstance(token, str) or len(token) > 200:
        return None
    try:
        return uuid.UUID(hex=_SIGNER.unsign(token.strip()))
    except (signing.BadSignature, ValueError):
        return None
