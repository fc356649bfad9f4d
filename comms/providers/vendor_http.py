"""Small helpers the channel adapters share for reading vendors' HTTP answers."""

import email.utils
import json
import time
from collections.abc import Callable
from typing import Any


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
