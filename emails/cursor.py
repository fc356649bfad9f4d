"""The history's ``Next`` cursor: the last row's key and the query's filters, signed.

Opaque to clients and HMAC'd with the SECRET_KEY (``django.core.signing``), so a changed or
truncated cursor is refused with a clean error instead of paging somewhere unexpected; it is
also bound to the account it was issued to.
"""

import uuid
import zlib
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core import signing

from common.errors import HeraldError
from emails.selectors import HistoryFilters, Position

SALT = "herald.emails.history.next"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class CursorInvalid(HeraldError):
    def __init__(self, why: str) -> None:
        super().__init__("invalid_cursor", f"Next is not valid: {why}", status=400)


def cursor_encode(*, account_id: uuid.UUID, filters: HistoryFilters, position: Position) -> str:
    micros = (position.created_at - EPOCH) // timedelta(microseconds=1)
    payload = {
        "a": account_id.hex,
        "f": {k: (v.hex if isinstance(v, uuid.UUID) else v)
              for k, v in asdict(filters).items() if v is not None},
        "p": [micros, position.delivery_id.hex],
    }
    # Signed without a timestamp (nothing checks an age): the same page of the same query is
    # the same cursor, not one that changes with the second it was issued in.
    return signing.Signer(salt=SALT).sign_object(payload, compress=True)


def cursor_decode(*, account_id: uuid.UUID, token: str) -> tuple[HistoryFilters, Position]:
    try:
        payload: Any = signing.Signer(salt=SALT).unsign_object(token)
    except (signing.BadSignature, ValueError, zlib.error):
        # A cursor issued before, with a timestamp (signing.dumps): its signature passes the
        # plain signer's check, its value then does not decode.
        payload = None
    if payload is None:
        try:
            payload = signing.loads(token, salt=SALT)
        except signing.BadSignature:
            raise CursorInvalid("it was changed or truncated; pass the value a previous "
                                "response gave.") from None
    if payload.get("a") != account_id.hex:
        raise CursorInvalid("it was issued to another account.")
    micros, delivery_hex = payload["p"]
    fields = dict(payload["f"])
    if "brand_id" in fields:
        fields["brand_id"] = uuid.UUID(fields["brand_id"])
    position = Position(EPOCH + timedelta(microseconds=micros), uuid.UUID(delivery_hex))
    return HistoryFilters(**fields), position
