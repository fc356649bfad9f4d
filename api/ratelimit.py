"""Rate limits per API key and daily delivery quotas (spec 004's "Rate Limits" table); the
counters are also the brute-force guard's (``api.guard``).

Counters live in Redis when ``HERALD_RATE_LIMIT_REDIS_URL`` names one (shared by every web
process and worker), else in this process. In Redis the counting is the `limits` library's
storage (an atomic INCRBY + EXPIRE script): one round trip per request. Windows are aligned
on the clock (the current second; the current UTC day), so ``X-RateLimit-Reset`` is exact.

A Redis outage never takes the API down: the counters fall back to this process's memory
(logged) and Redis is tried again after ``FALLBACK_SECONDS``.
"""

import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from limits.errors import StorageError
from limits.storage import RedisStorage, Storage

from common.errors import HeraldError

if TYPE_CHECKING:
    from accounts.models import ApiKey

logger = logging.getLogger(__name__)

FALLBACK_SECONDS = 30.0  # how long to count in memory after a Redis failure
REDIS_TIMEOUT_SECONDS = 0.25  # a slow Redis costs a request at most this, then the fallback


class RateLimited(HeraldError):
    """429 in the family's shape; ``headers`` (``Retry-After``, ``X-RateLimit-*``) go on the
    response (``HeraldAPIView.handle_exception``)."""

    def __init__(self, message: str, *, retry_after: int, window: "Window | None" = None) -> None:
        super().__init__("rate_limited", message, status=429)
        self.retry_after = max(1, retry_after)
        self.window = window  # None: the daily quota (the metrics tell the two apart)
        self.headers = {"Retry-After": str(self.retry_after),
                        **(window.headers() if window else {})}


@dataclass(frozen=True)
class Window:
    """One request's standing in its rate-limit window, for the ``X-RateLimit-*`` headers."""

    limit: int
    remaining: int
    reset: int  # Unix time (s) at which the window ends

    def headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit),
                "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": str(self.reset)}


class _MemoryCounters:
    """This process's counters. Not limits' MemoryStorage: that one starts a timer thread
    every 10 ms to expire keys, which cost milliseconds per request on a busy host."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[float, int]] = {}  # key: (expires at, count)
        self._lock = threading.Lock()
        self._purge_above = 10_000

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.monotonic()
        with self._lock:
            expires, count = self._counts.get(key, (0.0, 0))
            if expires <= now:
                expires, count = now + expiry, 0
            self._counts[key] = (expires, count + amount)
            if len(self._counts) > self._purge_above:
                self._counts = {k: v for k, v in self._counts.items() if v[0] > now}
                self._purge_above = 2 * len(self._counts) + 10_000
            return count + amount

    def get(self, key: str) -> int:
        expires, count = self._counts.get(key, (0.0, 0))
        return count if expires > time.monotonic() else 0

    def expires_in(self, key: str) -> float:
        expires, _ = self._counts.get(key, (0.0, 0))
        return max(0.0, expires - time.monotonic())


class _Counters:
    """Redis when configured and reachable, else this process's memory."""

    def __init__(self) -> None:
        self._memory = _MemoryCounters()
        self._redis: dict[str, Storage] = {}
        self._down_until: dict[str, float] = {}  # per URL: when to try Redis again
        self._lock = threading.Lock()

    def incr(self, key: str, *, expiry: int, amount: int = 1) -> int:
        url = settings.HERALD_RATE_LIMIT_REDIS_URL
        redis = self._redis_storage(url)
        if redis is not None:
            try:
                return redis.incr(key, expiry, amount=amount)
            except StorageError as exc:
                self._down_until[url] = time.monotonic() + FALLBACK_SECONDS
                logger.warning("Rate-limit Redis unavailable (%s); counting in process for "
                               "%.0f s", exc, FALLBACK_SECONDS)
        return self._memory.incr(key, expiry, amount=amount)

    def get(self, key: str) -> int:
        """The counter's value (0 when its window has ended)."""
        redis = self._redis_storage(settings.HERALD_RATE_LIMIT_REDIS_URL)
        if redis is not None:
            try:
                return redis.get(key)
            except StorageError:
                pass  # the next incr switches to memory and logs it
        return self._memory.get(key)

    def expires_in(self, key: str) -> float:
        """Seconds until the counter's window ends (0 when it has none)."""
        redis = self._redis_storage(settings.HERALD_RATE_LIMIT_REDIS_URL)
        if redis is not None:
            try:
                return max(0.0, redis.get_expiry(key) - time.time())
            except StorageError:
                pass
        return self._memory.expires_in(key)

    def _redis_storage(self, url: str) -> Storage | None:
        if not url.startswith(("redis://", "rediss://", "redis+unix://")):
            return None
        if time.monotonic() < self._down_until.get(url, 0.0):
            return None
        storage = self._redis.get(url)
        if storage is None:
            with self._lock:
                storage = self._redis.setdefault(url, RedisStorage(
                    url, wrap_exceptions=True, key_prefix="herald",
                    socket_timeout=REDIS_TIMEOUT_SECONDS,
                    socket_connect_timeout=REDIS_TIMEOUT_SECONDS))
        return storage


counters = _Counters()


def _limit(api_key: "ApiKey", kind: str) -> int:
    """The account's own limit for the key's mode, else the setting; 0 means no limit."""
    mode = "live" if api_key.mode == "live" else "test"
    own = getattr(api_key.account, f"{kind}_{mode}")
    return own if own is not None else getattr(settings, f"HERALD_{kind.upper()}_{mode.upper()}")


def rate_limit_hit(*, api_key: "ApiKey") -> Window | None:
    """Count one request of this API key in the current second; raise RateLimited beyond the
    account's per-second limit for the key's mode. None when the key is unlimited."""
    limit = _limit(api_key, "rate_limit")
    if not limit:
        return None
    second = int(time.time())
    used = counters.incr(f"rps:{api_key.account_id}:{api_key.pk}:{second}", expiry=2)
    window = Window(limit=limit, remaining=max(0, limit - used), reset=second + 1)
    if used > limit:
        raise RateLimited(f"Rate limit of {limit} requests per second exceeded.",
                          retry_after=1, window=window)
    return window


def _quota_day(api_key: "ApiKey") -> tuple[str, int]:
    """Today's (UTC) quota counter of the key's account and mode, and the seconds until
    midnight UTC."""
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    until_midnight = math.ceil((midnight - now).total_seconds())
    return f"quota:{api_key.account_id}:{api_key.mode}:{now.date().isoformat()}", until_midnight


def _quota_refused(quota: int, until_midnight: int) -> RateLimited:
    return RateLimited(f"Daily quota of {quota} deliveries reached.", retry_after=until_midnight)


def delivery_quota_check(*, api_key: "ApiKey", count: int) -> None:
    """Raise RateLimited when ``count`` more deliveries do not fit in today's quota, reserving
    nothing: a sender calls it before any write with the fewest deliveries its request can
    make, so a send over quota is refused before it does work (``delivery_quota_take``
    still reserves the exact number before the deliveries are created)."""
    quota = _limit(api_key, "daily_quota")
    if not quota or count <= 0:
        return
    key, until_midnight = _quota_day(api_key)
    if counters.get(key) + count > quota:
        raise _quota_refused(quota, until_midnight)


def delivery_quota_take(*, api_key: "ApiKey", count: int) -> None:
    """Reserve ``count`` deliveries of today's (UTC) quota of the key's account and mode.

    Raises RateLimited (429, ``Retry-After`` until midnight UTC) and reserves nothing when
    they do not all fit. Call it before creating the deliveries.
    """
    quota = _limit(api_key, "daily_quota")
    if not quota or count <= 0:
        return
    key, until_midnight = _quota_day(api_key)
    used = counters.incr(key, expiry=until_midnight + 60, amount=count)
    if used > quota:
        counters.incr(key, expiry=until_midnight + 60, amount=-count)  # give them back
        raise _quota_refused(quota, until_midnight)
