"""Every request's id: the caller's well-formed ``X-Request-Id``, else a new one.

The middleware (``config.middleware.RequestIdMiddleware``) binds it for the request; it goes
back as the ``X-Request-Id`` response header, every log record of the request carries it
(``RequestIdFilter``, ``%(request_id)s``), and what the request creates can record it
(``current``: a delivery's ``request_id`` default, which spec 004's webhooks carry), and
a Celery task it publishes runs with it (``celery_connect``).
A contextvar, so each thread (and each asyncio task) sees its own request's.
"""

import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

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


# --- Celery: a task published during a request carries its id (a message header) and runs
# with it current, so the worker's log lines say which request caused them.
TASK_HEADER = "herald_request_id"
_task_tokens: dict[str, Token] = {}


def celery_connect() -> None:
    """Connect the publish and run signals (the Celery app calls it once)."""
    from celery import signals

    signals.before_task_publish.connect(_task_published, weak=False)
    signals.task_prerun.connect(_task_starts, weak=False)
    signals.task_postrun.connect(_task_ends, weak=False)


def _task_published(headers: dict | None = None, **_: object) -> None:
    rid = _current.get()
    if rid and headers is not None:
        headers.setdefault(TASK_HEADER, rid)


def _task_starts(task_id: str | None = None, task: object = None, **_: object) -> None:
    """A task that came with an id runs with it; one without (beat, eager inside a request)
    leaves the context as it is."""
    rid = getattr(getattr(task, "request", None), TASK_HEADER, None)
    if task_id and isinstance(rid, str) and accepted(rid) == rid:
        _task_tokens[task_id] = _current.set(rid)


def _task_ends(task_id: str | None = None, **_: object) -> None:
    token = _task_tokens.pop(task_id, None) if task_id else None
    if token is not None:
        _current.reset(token)
