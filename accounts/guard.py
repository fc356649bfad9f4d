"""Brute force on API keys: after too many failed authentications from one client address
within a window, that address is refused with 429 until the window ends.

Counted per ``REMOTE_ADDR`` (a client-sent ``X-Forwarded-For`` changes nothing; behind a
proxy, set the address in the proxy). Shared between processes through Django's cache
(``CACHE_URL``: Redis in production; per process with the default local-memory cache).
"""

import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.exceptions import Throttled


def _key(request) -> str:
    return f"herald:authfail:{request.META.get('REMOTE_ADDR', '')}"


def auth_guard_check(request) -> None:
    """Raise Throttled (429 with Retry-After) while this address is blocked."""
    state = cache.get(_key(request))
    if state and state[0] >= settings.HERALD_AUTH_FAILURE_LIMIT:
        wait = max(1, int(state[1] + settings.HERALD_AUTH_FAILURE_WINDOW_SECONDS - time.time()))
        raise Throttled(wait=wait, detail=(
            f"Too many failed authentications from this address; retry in {wait} s."))


def auth_failure_record(request) -> None:
    """Count one failed authentication of this address (the window starts at the first)."""
    key, now = _key(request), time.time()
    window = settings.HERALD_AUTH_FAILURE_WINDOW_SECONDS
    count, start = cache.get(key) or (0, now)
    remaining = max(1, int(start + window - now))
    cache.set(key, (count + 1, start), timeout=remaining)
