"""A ticket's attachments: the guest's check-in QR code and the event's calendar invite,
made at send time from what the guest's front end stored in the delivery's context.

Filled in by the tickets work."""

from typing import Any

from comms.models import Delivery
from comms.providers.base import Attachment


def render_tokens(delivery: Delivery) -> dict[str, Any]:
    """Tokens a ticket template may use (the QR code's ``cid:`` source)."""
    return {}


def email_attachments(delivery: Delivery) -> tuple[Attachment, ...]:
    """The QR code (inline and attached) and the .ics invite, as the template asks."""
    return ()
