"""Signed keyset cursors (``common.cursor``), the one mechanism behind the email history's
``Next`` and the in-app inbox's ``nextCursor``."""

import uuid
from datetime import UTC, datetime

import pytest
from django.core import signing

from common.cursor import CursorInvalid, Position, cursor_decode, cursor_encode

SALT = "tests.cursor"
POSITION = Position(datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC), uuid.uuid4())


def test_a_cursor_gives_back_its_position_and_query_and_is_the_same_for_the_same_page():
    token = cursor_encode(salt=SALT, scope="acc", position=POSITION, query={"state": "sent"})
    assert cursor_encode(salt=SALT, scope="acc", position=POSITION,
                         query={"state": "sent"}) == token
    assert cursor_decode(salt=SALT, scope="acc", token=token) == (POSITION, {"state": "sent"})


@pytest.mark.parametrize("change", [
    lambda t: t[:-3] + ("AAA" if not t.endswith("AAA") else "BBB"),  # another signature
    lambda t: t[5:],  # truncated
    lambda t: "not a cursor",
])
def test_a_changed_cursor_is_refused(change):
    token = cursor_encode(salt=SALT, scope="acc", position=POSITION)
    with pytest.raises(CursorInvalid) as refused:
        cursor_decode(salt=SALT, scope="acc", token=change(token))
    assert refused.value.foreign is False


def test_a_cursor_of_another_scope_or_list_is_refused():
    token = cursor_encode(salt=SALT, scope="acc", position=POSITION)
    with pytest.raises(CursorInvalid) as refused:
        cursor_decode(salt=SALT, scope="other", token=token)
    assert refused.value.foreign is True
    with pytest.raises(CursorInvalid):
        cursor_decode(salt="another list", scope="acc", token=token)


def test_cursors_issued_before_with_a_timestamp_still_decode():
    micros = int(POSITION.created_at.timestamp()) * 1_000_000 + 123456
    emails = signing.dumps({"a": "acc", "f": {"state": "sent"}, "p": [micros, POSITION.id.hex]},
                           salt=SALT, compress=True)
    assert cursor_decode(salt=SALT, scope="acc", token=emails) == (POSITION, {"state": "sent"})
    inbox = signing.dumps(["acc", "contact", micros, POSITION.id.hex], salt=SALT)
    assert cursor_decode(salt=SALT, scope="acc.contact", token=inbox) == (POSITION, {})
    with pytest.raises(CursorInvalid):
        cursor_decode(salt=SALT, scope="acc.other", token=inbox)
