"""The history's ``Next`` cursor, on ``common.cursor``: the last row's key and the query's
filters, signed and bound to the account it was issued to."""

import uuid
from dataclasses import asdict

from common import cursor as signed
from common.errors import HeraldError
from emails.selectors import HistoryFilters, Position

SALT = "herald.emails.history.next"
CHANGED = "it was changed or truncated; pass the value a previous response gave."


class CursorInvalid(HeraldError):
    def __init__(self, why: str) -> None:
        super().__init__("invalid_cursor", f"Next is not valid: {why}", status=400)


def cursor_encode(*, account_id: uuid.UUID, filters: HistoryFilters, position: Position) -> str:
    query = {k: (v.hex if isinstance(v, uuid.UUID) else v)
             for k, v in asdict(filters).items() if v is not None}
    return signed.cursor_encode(salt=SALT, scope=account_id.hex, query=query,
                                position=signed.Position(position.created_at,
                                                         position.delivery_id))


def cursor_decode(*, account_id: uuid.UUID, token: str) -> tuple[HistoryFilters, Position]:
    try:
        key, query = signed.cursor_decode(salt=SALT, scope=account_id.hex, token=token)
    except signed.CursorInvalid as exc:
        raise CursorInvalid("it was issued to another account." if exc.foreign
                            else CHANGED) from None
    try:
        if "brand_id" in query:
            query["brand_id"] = uuid.UUID(query["brand_id"])
        filters = HistoryFilters(**query)
    except (TypeError, ValueError, AttributeError):
        raise CursorInvalid(CHANGED) from None
    return filters, Position(key.created_at, key.id)
