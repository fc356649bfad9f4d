"""Signed keyset cursors: where a list's next page starts, opaque to clients.

A cursor carries the last key of a page (``created_at``, ``id``), the scope it was issued to
(an account, a user's inbox) and optionally the query that made it. It is HMAC'd with the
SECRET_KEY (``django.core.signing``) under a salt per list, so a changed or truncated cursor
is refused instead of paging somewhere unexpected, and so is one issued to another scope.
Signed without a timestamp (nothing checks an age): the same page of the same query is the
same cursor, not one that changes with the second it was issued in.
"""

import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core import signing

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Position:
    """The last row of a page: the next page starts strictly after it."""

    created_at: datetime
    id: uuid.UUID


class CursorInvalid(Exception):
    """Not a cursor we gave (``foreign`` False), or one given to another scope (True)."""

    def __init__(self, *, foreign: bool) -> None:
        super().__init__("cursor issued to another scope" if foreign else "cursor changed")
        self.foreign = foreign


def cursor_encode(*, salt: str, scope: str, position: Position,
                  query: dict[str, Any] | None = None) -> str:
    micros = (position.created_at - EPOCH) // timedelta(microseconds=1)
    payload: dict[str, Any] = {"a": scope, "p": [micros, position.id.hex]}
    if query is not None:
        payload["f"] = query
    return signing.Signer(salt=salt).sign_object(payload, compress=True)


def cursor_decode(*, salt: str, scope: str, token: str) -> tuple[Position, dict[str, Any]]:
    """The position and the query of a cursor issued to ``scope``; ``CursorInvalid`` else."""
    payload = _unsign(salt, token)
    if isinstance(payload, list):  # the shape first issued by the inbox: [*scope, micros, id]
        payload = {"a": ".".join(map(str, payload[:-2])), "p": payload[-2:]}
    try:
        given, (micros, id_hex) = payload["a"], payload["p"]
        position = Position(EPOCH + timedelta(microseconds=micros), uuid.UUID(id_hex))
        query = dict(payload.get("f") or {})
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        raise CursorInvalid(foreign=False) from None
    if given != scope:
        raise CursorInvalid(foreign=True)
    return position, query


def _unsign(salt: str, token: str) -> Any:
    try:
        return signing.Signer(salt=salt).unsign_object(token)
    except (signing.BadSignature, ValueError, zlib.error):
        # A cursor issued before, with a timestamp (signing.dumps): its signature passes the
        # plain signer's check, its value then does not decode.
        pass
    try:
        return signing.loads(token, salt=salt)
    except (signing.BadSignature, ValueError, zlib.error):
        raise CursorInvalid(foreign=False) from None
