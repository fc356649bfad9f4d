"""Log lines for operators: one JSON object a line in production, plain text for ``make run``.

Every line — Herald's, Django's, Celery's, a library's — goes through one formatter
(``structlog.stdlib.ProcessorFormatter``, settings.LOGGING) and carries ``request_id`` (the
request's, or the task's a request published; ``-`` outside one), and ``account`` and
``delivery_id`` where they are known: bound for the rest of a request by the API's
authentication (``bind``), or given with a line (``extra={"delivery_id": …}``). A delivery's
state changes are one line each (``delivery_states``), so a log search by delivery id tells its
story; they are the logs' most frequent lines (three per bulk email), so they are built the
short way (``_lines``: what a batch's lines share worked out once, rendered without the
processor chain into the same line the chain would write). Only the fields named in
``FIELDS`` leave a record's ``extra``: a record about a request
(``django.request``'s ``extra={"request": …}``) never dumps the request, its headers or its
body; and the values of secret-sounding keys and the tokens in URL paths Herald serves are
masked, whoever logs them.

It imports no app (``common/``): the settings name these functions by path.
"""

import json
import logging
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import structlog
from structlog.contextvars import (
    bind_contextvars,
    clear_contextvars,
    get_contextvars,
    merge_contextvars,
)

from common import request_id

# What a record's ``extra`` may add to a line: ids, states, names, counts — never a payload.
FIELDS = ("account", "delivery_id", "status", "previous", "provider", "channel", "mode",
          "reason", "failure", "attempts", "count", "status_code", "task", "batch")
_SECRET_KEY = re.compile(r"pass(word)?|secret|token|api_?key|authori[sz]ation|credential|"
                         r"subscription_?key|cookie|session", re.IGNORECASE)
# Secrets inside a line's text, whoever wrote it: a URL's password (a broker's, a database's),
# the tokens in paths Herald serves or calls (the unsubscribe page's /u/<token>, a Telegram
# bot's /bot<token>/…), query parameters named like a secret, and the rest below.
_TOKEN_IN_TEXT = (
    (re.compile(r"(://[^:/@\s]*:)[^@\s]+@"), r"\1<redacted>@"),  # a URL's password
    (re.compile(r"/u/[^\s/?\"']+"), "/u/<redacted>"),
    (re.compile(r"/bot[^/\s\"']+"), "/bot<redacted>"),
    (re.compile(r"([?&](?:[\w-]*(?:token|key|secret|signature|password)[\w-]*)=)[^&\s\"']+",
                re.IGNORECASE), r"\1<redacted>"),
    # credentials in a dumped header dict or line (python-http-client logs its request's
    # headers at DEBUG), or in a JSON value (SQL at DEBUG shows a stored context's
    # checkinToken): the scheme's token, and the value of a key-named header or field
    (re.compile(r"\b(Bearer|Basic|Token)\s+[^\s'\",}]+", re.IGNORECASE), r"\1 <redacted>"),
    (re.compile(r"((?:[\w-]*token|subscription-key|api-key|apikey|password|secret)[\"']?"
                r"\s*[:=]\s*[\"']?)[^\s'\",}&]+", re.IGNORECASE), r"\1<redacted>"),
)
REDACTED = "<redacted>"
# What every pattern above needs at least one of: "/" (paths, "://"), ":" or "=" (a URL's
# password, a key-named field or parameter), or a scheme word before whitespace. Text without
# any — ids, states, modes, counts, most messages — cannot change, so it is not scanned (a
# delivery's line has 9 fields: 54 substitutions became a few searches).
_MAYBE_SECRET = re.compile(r"[/:=]|(?:bearer|basic|token)\s", re.IGNORECASE)
# Set by structlog's processors, never by a caller: the time, the level.
_NOT_TEXT = frozenset({"timestamp", "level"})
# json.dumps's own escaping of a string (ensure_ascii, its default and JSONRenderer's).
_json_text = json.encoder.encode_basestring_ascii


def bind(**values: Any) -> None:
    """Give every later line of this context (the request, the task) these fields."""
    bind_contextvars(**values)


def clear() -> None:
    """Forget what was bound: a request's fields end with it (RequestIdMiddleware)."""
    clear_contextvars()


def bound() -> dict[str, Any]:
    """What is bound now (the middleware keeps a request's on the request, for the lines
    Django writes about it after the middleware has returned: ``django.request``'s 4xx)."""
    return get_contextvars()


# A delivery's state changes, on their own logger: HERALD_DELIVERY_LOG_LEVEL=WARNING silences
# them (a bulk send writes four lines per message) without silencing anything else.
deliveries = logging.getLogger("herald.deliveries")


def delivery_states(status: str, rows: Iterable[tuple[Any, Any]], **fields: Any) -> None:
    """One INFO line per delivery that moved to ``status``: ``rows`` are (delivery id,
    account id) pairs the caller already holds, so logging costs no query; nothing is built
    when the logger is off."""
    if not deliveries.isEnabledFor(logging.INFO):
        return
    _lines(((delivery_id, account_id, status) for delivery_id, account_id in rows), fields)


def delivery_rows(rows: Iterable[tuple[Any, Any, str]], **fields: Any) -> None:
    """``delivery_states`` for rows of different statuses: (id, account id, status)."""
    if not deliveries.isEnabledFor(logging.INFO):
        return
    _lines(rows, fields)


# What a caller's ``fields`` may be for the short way (else the records take the long one).
_GIVEN = frozenset(FIELDS) - {"account", "delivery_id", "status"}
# str() of these is digits, hex and hyphens: nothing a secret pattern could match.
_PLAIN_IDS = (int, uuid.UUID)
_MESSAGES: dict[str, tuple[str, str]] = {}  # status → (masked status, masked message)


def _lines(rows: Iterable[tuple[Any, Any, str]], fields: dict[str, Any]) -> None:
    """The delivery lines, each a record handed to the logger's handlers as ``info`` would
    (their levels, filters and formatters), built the short way: one record made per batch
    and copied per line, and what the line says worked out once per batch — the given fields
    and the bound ones masked once, ids of plain types not scanned — and carried to the
    formatter (``_herald_line``), which renders it without structlog's processor chain. The
    line is the same as the chain's (tests/config/test_logs.py compares them); other
    formatters see an ordinary record (``delivery %s``, the fields as attributes)."""
    if not fields.keys() <= _GIVEN:  # a field the long way drops, or one overriding an id
        for delivery_id, account_id, status in rows:
            deliveries.info("delivery %s", status, extra={
                "delivery_id": str(delivery_id),
                "account": str(account_id) if account_id else None, "status": status,
                **fields})
        return
    given = {key: _masked(key, fields[key]) for key in FIELDS if key in fields} if fields else {}
    template = None
    for delivery_id, account_id, status in rows:
        if template is None:
            template = deliveries.makeRecord(
                deliveries.name, logging.INFO, __file__, _LINENO, "delivery %s", (status,),
                None, "delivery_states", fields)
            # the line's fields in the chain's order: the message, the bound fields, level,
            # logger, the record's (ExtraAdder: FIELDS' order), the time (request id last)
            skeleton: dict[str, Any] = {"event": None}
            for key, value in get_contextvars().items():
                if key != "event":
                    skeleton[key] = _masked(key, value)
            skeleton["level"] = "info"
            skeleton["logger"] = _masked("logger", deliveries.name)
            skeleton.update(account=None, delivery_id=None, status=None)
            skeleton.update(given)
            skeleton["timestamp"] = None
            template._herald_skeleton = skeleton  # type: ignore[attr-defined]
            kind, base = type(template), template.__dict__
        record = kind.__new__(kind)
        record.__dict__.update(base)
        record.args = (status,)
        record.delivery_id = pk = str(delivery_id)  # type: ignore[attr-defined]
        record.account = account = (  # type: ignore[attr-defined]
            str(account_id) if account_id else None)
        record.status = status  # type: ignore[attr-defined]
        message = _MESSAGES.get(status)
        if message is None:
            message = (_redacted(status), _redacted(f"delivery {status!s}"))
            if len(_MESSAGES) < 64:
                _MESSAGES[status] = message
        record._herald_line = (  # type: ignore[attr-defined]
            message[1],
            account if account is None or type(account_id) in _PLAIN_IDS
            else _redacted(account),
            pk if type(delivery_id) in _PLAIN_IDS else _redacted(pk),
            message[0])
        deliveries.handle(record)


_LINENO = delivery_states.__code__.co_firstlineno


# --- processors --------------------------------------------------------------------------

def _request_id(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """The line's request id; a line about a request (``extra={"request": …}``) written
    after it ended also gets the fields it had bound (its account)."""
    record = event.get("_record")
    event.setdefault("request_id", getattr(record, "request_id", None)
                     or request_id.current() or "-")
    about = getattr(getattr(record, "request", None), "log_fields", None)
    if isinstance(about, dict):
        for key, value in about.items():
            event.setdefault(key, value)
    return event


def _redacted(text: str) -> str:
    if _MAYBE_SECRET.search(text) is None:
        return text
    for pattern, replacement in _TOKEN_IN_TEXT:
        text = pattern.sub(replacement, text)
    return text


_SECRET_KEYS: dict[str, bool] = {}  # field name → whether _SECRET_KEY matches it


def _masked(key: str, value: Any) -> Any:
    """A field's value as a line may show it: a secret-named field's masked, text scanned."""
    if key in _NOT_TEXT or key.startswith("_"):
        return value
    secret = _SECRET_KEYS.get(key)
    if secret is None:
        secret = _SECRET_KEY.search(key) is not None
        if len(_SECRET_KEYS) < 256:
            _SECRET_KEYS[key] = secret
    if secret and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        return _redacted(value)
    return value


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Masks what must never reach a log: secret-named fields and tokens in URLs."""
    for key, value in list(event.items()):
        event[key] = _masked(key, value)
    return event


def _text(_: Any, __: str, event: dict[str, Any]) -> str:
    """``make run``'s line: time, level, logger, [request id], message, then key=value."""
    head = (f"{event.pop('timestamp', '')} {event.pop('level', '').upper()} "
            f"{event.pop('logger', '')} [{event.pop('request_id', '-')}] "
            f"{event.pop('event', '')}")
    trace = event.pop("exception", None)
    tail = " ".join(f"{key}={value}" for key, value in event.items() if value is not None)
    return head + (f" {tail}" if tail else "") + (f"\n{trace}" if trace else "")


def _chain() -> list[Any]:
    """What both Herald's lines and foreign ones (Django, Celery, libraries) get first."""
    return [merge_contextvars, structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(allow=FIELDS),
            structlog.processors.TimeStamper(fmt="iso", utc=True)]


class _Formatter(structlog.stdlib.ProcessorFormatter):
    """structlog's formatter, but a delivery line (``_lines``: masked already) is rendered
    directly, as the chain would: the message, the bound fields, level, logger, the record's
    fields, the time, the request id."""

    def __init__(self, renderer: Any) -> None:
        super().__init__(
            foreign_pre_chain=_chain(),
            processors=[_request_id, structlog.processors.format_exc_info, _redact,
                        structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer])
        self._herald_render = renderer
        self._herald_json = isinstance(renderer, structlog.processors.JSONRenderer)
        # the last batch's skeleton (_lines) and its JSON parts (_json_parts)
        self._herald_cache: tuple[Any, ...] = (None, None, ())

    def format(self, record: logging.LogRecord) -> str:
        line = record.__dict__.get("_herald_line")
        if line is None or record.exc_info or record.stack_info:
            return super().format(record)
        skeleton = record._herald_skeleton  # type: ignore[attr-defined]
        # TimeStamper(fmt="iso", utc=True)'s
        stamp = datetime.now(tz=UTC).isoformat().replace("+00:00", "Z")
        rid = None if "request_id" in skeleton else _redacted(
            getattr(record, "request_id", None) or request_id.current() or "-")
        if self._herald_json:
            # worked out at a batch's second line (a batch of one is rendered as below)
            cached = self._herald_cache
            if cached[0] is not skeleton:
                self._herald_cache = cached = (skeleton, None, ())
            elif not cached[2]:
                self._herald_cache = cached = (skeleton, *_json_parts(skeleton))
            if cached[1] is not None:
                parts, slots = cached[1].copy(), cached[2]
                for index, value in zip(slots, (*line, stamp), strict=True):
                    parts[index] += "null" if value is None else _json_text(value)
                if rid is not None:
                    parts.append(f'"request_id": {_json_text(rid)}')
                return "{" + ", ".join(parts) + "}"
        event = skeleton.copy()
        (event["event"], event["account"], event["delivery_id"],
         event["status"]) = line
        event["timestamp"] = stamp
        if rid is not None:
            event["request_id"] = rid
        return (self._herald_json and _json(event)) or self._herald_render(None, "info", event)


# A delivery line's fields that differ from line to line, in _herald_line's order, and the time.
_PER_LINE = ("event", "account", "delivery_id", "status", "timestamp")


def _json_parts(skeleton: dict[str, Any]) -> tuple[list[str] | None, tuple[int, ...]]:
    """A batch's lines' JSON, worked out once: each field's text, the ones of ``_PER_LINE``
    only their names (the index of each); None if a field is not text, int or null."""
    parts, slots = [], dict.fromkeys(_PER_LINE, 0)
    for key, value in skeleton.items():
        part = _json({key: value}) if key not in slots else f"{_json_text(key)}: "
        if part is None:
            return None, (-1,)
        if key in slots:
            slots[key] = len(parts)
        else:
            part = part[1:-1]
        parts.append(part)
    return parts, tuple(slots.values())


_JSON_KEYS: dict[str, str] = {}  # field name → its JSON text and ": "


def _json(event: dict[str, Any]) -> str | None:
    """``json.dumps(event)`` (JSONRenderer's) of a line of text, ints and nulls, written
    directly; None if it holds anything else (the renderer writes that one)."""
    parts = []
    for key, value in event.items():
        head = _JSON_KEYS.get(key)
        if head is None:
            if type(key) is not str:
                return None
            head = _json_text(key) + ": "
            if len(_JSON_KEYS) < 256:
                _JSON_KEYS[key] = head
        if isinstance(value, str):
            parts.append(head + _json_text(value))
        elif value is None:
            parts.append(head + "null")
        elif type(value) is int:
            parts.append(head + int.__repr__(value))
        else:
            return None
    return "{" + ", ".join(parts) + "}"


def formatter(style: str = "json") -> logging.Formatter:
    """The one formatter (``"()"`` of settings.LOGGING): ``json`` or ``text``."""
    return _Formatter(structlog.processors.JSONRenderer() if style == "json" else _text)


def configure() -> None:
    """structlog's own loggers hand their lines to the standard library's handlers, so one
    formatter renders everything (called from the settings)."""
    structlog.configure(
        processors=[merge_contextvars, structlog.stdlib.add_log_level,
                    structlog.stdlib.add_logger_name,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True)

