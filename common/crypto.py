"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) under a key from the environment.

``HERALD_ENCRYPTION_KEY`` (any string; hashed into a Fernet key), else the older
``WEBHOOKS_ENCRYPTION_KEY``, else ``SECRET_KEY``. Rotating it makes stored secrets unreadable:
webhook secrets must then be rotated and integration credentials entered again.
"""

import base64
import hashlib
import json
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken  # noqa: F401 (callers catch it)
from django.conf import settings


@cache
def _fernet(key: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()))


def _cipher() -> Fernet:
    return _fernet(settings.HERALD_ENCRYPTION_KEY or settings.WEBHOOKS_ENCRYPTION_KEY
                   or settings.SECRET_KEY)


def encrypt(raw: str) -> str:
    return _cipher().encrypt(raw.encode()).decode()


def decrypt(token: str) -> str:
    return _cipher().decrypt(token.encode()).decode()


def encrypt_json(data: dict[str, Any]) -> str:
    return encrypt(json.dumps(data, separators=(",", ":"))) if data else ""


def decrypt_json(token: str) -> dict[str, Any]:
    return json.loads(decrypt(token)) if token else {}


def encrypt_bytes(raw: bytes) -> bytes:
    return _cipher().encrypt(raw)


def decrypt_bytes(token: bytes) -> bytes:
    return _cipher().decrypt(token)
