"""Every request's id: the caller's well-formed ``X-Request-Id``, else a new one.

The middleware (``config.middleware.RequestIdMiddleware``) binds it for the request; it goes
back as the ``X-Request-Id`` response header, every log record of the request carries it
(``RequestIdFilter``, ``%(request_id)s``), and what the request creates can record it
(``current``: a delivery's ``request_id`` default, which spec 004's webhooks carry).
A contextvar, so each thread (and each asyncio task) sees its own request's.
"""

import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

HEADER = "X-Request-Id"
MAX_LENGTH = 128
# A caller's id is echoed in a header and in logs: bounded, and of characters that can
# neither split a header or a log line nor read as markup (a UUID, a ULID, base64 all fit).
_WELL_FORMED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+=/@-]*")

_current: ContextVar[str | None] = ContextVar("herald_request_id", default=None)


def current() -> str | None:
    """The id of the request under way in this context, or None (a worker, a command)."""
    return _current.get()


def new() -> str:
    return f"req-{uuid.uuid4()}"


def accepted(value: str | None) -> str:
    """``value`` if it is a well-formed id, else a new one (a hostile or absent header is
    replaced, never cleaned: an id either is the caller's or is ours)."""
    if value and len(value) <= MAX_LENGTH and _WELL_FORMED.fullmatch(value):
        return value
    return new()


@contextmanager
def bound(request_id: str) -> Iterator[str]:
    """``request_id`` is the current one inside the block."""
    token = _current.set(request_id)
    try:
        yield request_id
    finally:
        _current.reset(token)


class RequestIdFilter(logging.Filter):
    """Gives every record ``request_id``: the current request's, ``-`` outside one. Django
    logs a 4xx answer (``django.request``) after the middleware has returned, so a record
    about a request (``extra={"request": …}``) takes that request's id."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            about = getattr(getattr(record, "request", None), "request_id", None)
            record.request_id = about or _current.get() or "-"
        return True
