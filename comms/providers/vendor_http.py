"""Small helpers the channel adapters share for reading vendors' HTTP answers, and the one
function that turns a vendor's answer into what a tenant may see (``vendor_reason``)."""

import email.utils
import errno
import json
import logging
import re
import socket
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings

from common import http

log = logging.getLogger("herald.providers")

# Vendors' error codes: numbers, UPPER_SNAKE, lower_snake, CamelCase, dotted field names.
_LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:]{0,39}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
REASON_MAX = 120


def vendor_reason(vendor: str, status: int | None = None, label: Any = "", *,
                  body: Any = None) -> str:
    """What a tenant is told of a vendor's answer, for every provider: ``"<vendor> <status>
    <label>"``, where the label is a short error code or name (letters, digits, ``_.:``, at
    most 40 characters: anything else, such as free text, is left out), control characters
    removed, at most ``REASON_MAX`` characters. A vendor's body or message never reaches a
    delivery's error, trace, timeline, webhook payload or API error (a URL an account chose
    could have made it an internal service's answer): ``body`` goes to the server log at
    DEBUG only."""
    if body is not None:
        log.debug("%s answered %s: %.4000r", vendor, status, body)
    text = " ".join(part for part in (vendor, str(status) if status else "",
                                      _label(label)) if part)
    return clean(text)


# getaddrinfo's error numbers (negative, not in errno.errorcode): EAI_NONAME, EAI_AGAIN…
_EAI_NAMES = {getattr(socket, name): name for name in dir(socket) if name.startswith("EAI_")}


def network_reason(vendor: str, exc: BaseException) -> str:
    """A network error as a tenant sees it, for every provider: ``"<vendor> <kind>"``, the
    kind being the errno's name (``ECONNREFUSED``, ``EAI_NONAME``) of the first OS error in
    the chain (``URLError.reason``, ``__cause__``), else the exception's class name. Its
    message (a resolver's or a proxy's text, internal host names and addresses) goes to the
    server log at DEBUG only."""
    return vendor_reason(vendor, None, _network_kind(exc), body=f"{type(exc).__name__}: {exc}")


def _network_kind(exc: BaseException) -> str:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        number = getattr(current, "errno", None)
        if isinstance(current, OSError) and isinstance(number, int):
            name = _EAI_NAMES.get(number) if isinstance(
                current, socket.gaierror) else errno.errorcode.get(number)
            if name:
                return name
        reason = getattr(current, "reason", None)
        current = (reason if isinstance(reason, BaseException)
                   else current.__cause__ or current.__context__)
    return type(exc).__name__


def timed_out(exc: BaseException) -> bool:
    """Whether ``exc`` or an error in its chain is a timeout, whichever library raised it
    (``TimeoutError``, urllib3's, requests', botocore's vendored ones: each so named). By
    the class's own name: urllib3's ``NewConnectionError`` (refused, not resolved) inherits
    from its ``ConnectTimeoutError``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TimeoutError) or "Timeout" in type(current).__name__:
            return True
        reason = getattr(current, "reason", None)
        current = (reason if isinstance(reason, BaseException)
                   else current.__cause__ or current.__context__)
    return False


def _label(label: Any) -> str:
    text = str(label if label is not None else "").strip()
    return text if _LABEL_RE.fullmatch(text) else ""


def clean(text: str, limit: int = REASON_MAX) -> str:
    """``text`` without control characters, at most ``limit`` characters."""
    return _CONTROL_RE.sub(" ", str(text))[:limit].strip()


def allow_private() -> bool:
    """Whether an integration's own URLs (``api_base``…) may reach non-public addresses:
    only with ``HERALD_PROVIDER_API_BASE_OVERRIDE`` (tests' fakes, development)."""
    return bool(settings.HERALD_PROVIDER_API_BASE_OVERRIDE)


def pinned_session() -> Any:
    """A ``requests`` session for a provider's account-chosen URLs (``common.http``)."""
    return http.pinned_session(allow_private=allow_private())


def retry_after(value: Any) -> float | None:
    """``Retry-After`` (or a JSON ``retry_after``) in seconds or as an HTTP date; ``None``
    when absent or unreadable."""
    if value is None or value == "":
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (ValueError, TypeError, OverflowError):
        return None


def header(headers: Any, name: str) -> str | None:
    """A header's value from any mapping, whatever the case of its name."""
    if not headers:
        return None
    return next((v for k, v in dict(headers).items() if k.lower() == name.lower()), None)


def json_object(raw: bytes) -> dict:
    """The body as a JSON object; ``{}`` for anything else."""
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def sms_text(title: str, text: str) -> str:
    """An SMS: the title, a blank line, the text (no markup to escape)."""
    title = title.strip()
    return f"{title}\n\n{text}" if title else text


def titled(title: str, text: str, escape: Callable[[str], str], *, bold: str,
           limit: int) -> str:
    """The title in ``bold`` markers above the text, each escaped, cut to ``limit``
    characters (the title to 200), for chat formats whose markup user text must not make."""
    title = title.strip()[:200]
    head = f"{bold}{escape(title)}{bold}\n" if title else ""
    return head + fit(text, escape, limit - len(head))


def fit(text: str, escape: Callable[[str], str], limit: int) -> str:
    """``escape(text)``, or the escape of its longest prefix that fits with an ellipsis (cut
    before escaping, so no escape sequence is ever split)."""
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    low, high = 0, min(len(text), limit - 1)  # escaping never shortens: a bisection
    while low < high:
        middle = (low + high + 1) // 2
        if len(escape(text[:middle])) <= limit - 1:
            low = middle
        else:
            high = middle - 1
    return escape(text[:low]) + "…"
