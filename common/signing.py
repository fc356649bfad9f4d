"""Standard Webhooks signing (``webhook-id``/``-timestamp``/``-signature``) and secret storage.

Secrets are ``whsec_`` + base64 of 24 random bytes; the HMAC key is the decoded bytes. They are
stored encrypted by ``common.crypto``.
"""

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable

from common import crypto

SECRET_PREFIX = "whsec_"


def secret_generate() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def secret_encrypt(raw: str) -> str:
    return crypto.encrypt(raw)


def secret_decrypt(token: str) -> str:
    return crypto.decrypt(token)


def signature(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` with the secret's decoded key."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(*, secrets: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers; one signature per secret, space-separated."""
    signatures = " ".join(
        signature(secret=s, msg_id=msg_id, timestamp=timestamp, body=body) for s in secrets
    )
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures,
    }
