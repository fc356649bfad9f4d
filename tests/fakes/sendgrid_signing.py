"""Sign SendGrid Event Webhook requests as SendGrid does (ECDSA P-256 over timestamp + body)."""

import base64
import json
import time
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


class SendGridSigner:
    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.public_key = base64.b64encode(der).decode()

    def headers(self, body: str, timestamp: int | None = None) -> dict[str, str]:
        stamp = str(timestamp if timestamp is not None else int(time.time()))
        signature = self.key.sign((stamp + body).encode(), ec.ECDSA(hashes.SHA256()))
        return {
            "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE": base64.b64encode(signature).decode(),
            "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP": stamp,
        }


def sendgrid_event(kind: str, *, delivery_id: str | None, message_id: str, email: str,
                   event_id: str, timestamp: int | None = None, **extra: Any) -> dict[str, Any]:
    """One event shaped exactly as SendGrid posts it (custom_args merged at top level)."""
    event = {
        "email": email,
        "timestamp": timestamp or int(time.time()),
        "smtp-id": f"<{message_id}@ismtpd0001p1lon1.sendgrid.net>",
        "event": kind,
        "category": [],
        "sg_event_id": event_id,
        "sg_message_id": f"{message_id}.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",
    }
    if delivery_id:
        event["herald_delivery_id"] = delivery_id
    event.update(extra)
    return event


def dumps(events: list[dict[str, Any]]) -> str:
    return json.dumps(events, separators=(",", ":"))
