"""Telling the workers that deliveries are due, with as few broker messages as correctness
allows.

A send task claims its own delivery *and* the due rows queued behind it, so under load one
task per delivery is mostly wasted: each costs the API ~3 ms to publish and the worker a task
that finds nothing to do. Instead a *kick* is published only when none is pending:

- a sender commits its rows, then ``SET kick NX PX``; only if that set the key does it publish
  a task (``enqueue``);
- a task deletes the key *before* it claims (``kick_taken``), and when its claim came back
  full it kicks again (``dispatch.delivery_dispatch``), so a backlog drains in a chain that
  keeps every worker process busy.

Why nothing is left behind: if the key exists when a sender tries to set it, the kick that set
it has not yet deleted it, so that kick's claim runs after the sender's commit and sees its
rows (or claims a full batch and kicks again). The key expires after ``KICK_TTL_MS`` so a kick
lost by the broker delays others by at most that; the sweeper re-enqueues anything overdue.

The key lives in the Redis of ``HERALD_DISPATCH_KICK_REDIS_URL`` (by default the broker's, when
it is Redis). Without Redis, or while it is unreachable, every call publishes as before.
"""

import logging
import threading
import time

import redis
from django.conf import settings
from django.db import connection

from common import jobs

log = logging.getLogger(__name__)

SEND_TASK = "comms.send_delivery"
KICK_TTL_MS = 1000
REDIS_TIMEOUT_SECONDS = 0.25
FALLBACK_SECONDS = 30.0  # after a Redis failure, publish every task for this long

_clients: dict[str, redis.Redis] = {}
_down_until: dict[str, float] = {}  # per URL: when to try Redis again
_lock = threading.Lock()


def enqueue(delivery_id: str | None, countdown: float | None = None) -> None:
    """Have a worker claim ``delivery_id`` (with the due rows behind it), after ``countdown``
    seconds if given (retries: always published). ``None``: any due rows."""
    if countdown is None and not _kick_claim():
        return  # a kick is pending and will claim after this commit
    try:
        jobs.publish(SEND_TASK, delivery_id, countdown=countdown)
    except Exception:
        if countdown is None:
            kick_taken()  # let the next sender publish; the sweeper covers this one
        raise


def kick_taken() -> None:
    """Called by a send task before it claims: the next sender publishes a new kick. Tried
    even while this process's senders fall back (a marker left behind makes other processes'
    senders skip); if it cannot be deleted, one follow-up kick is published with the marker's
    lifetime as countdown (never skipped), so their rows are claimed within about a second."""
    url = settings.HERALD_DISPATCH_KICK_REDIS_URL
    if not url:
        return
    try:
        _connection(url).delete(_key())
    except redis.RedisError as exc:
        first = time.monotonic() >= _down_until.get(url, 0.0)
        _redis_failed(exc)
        if first:  # once per outage: a follow-up that fails the same way does not loop
            _follow_up()


def _follow_up() -> None:
    try:
        jobs.publish(SEND_TASK, None, countdown=KICK_TTL_MS / 1000)
    except Exception:
        log.exception("No follow-up kick either; the sweeper will claim what is due")


def _kick_claim() -> bool:
    """True when this caller must publish: no kick pending, or no Redis to know."""
    client = _client()
    if client is None:
        return True
    try:
        return bool(client.set(_key(), b"1", nx=True, px=KICK_TTL_MS))
    except redis.RedisError as exc:
        _redis_failed(exc)
        return True


def _key() -> str:
    """One marker per database (several deployments may share a Redis)."""
    db = connection.settings_dict
    return f"herald:dispatch-kick:{db.get('HOST') or ''}:{db.get('PORT') or ''}/{db['NAME']}"


def _client() -> redis.Redis | None:
    url = settings.HERALD_DISPATCH_KICK_REDIS_URL
    if not url or time.monotonic() < _down_until.get(url, 0.0):
        return None
    return _connection(url)


def _connection(url: str) -> redis.Redis:
    client = _clients.get(url)
    if client is None:
        with _lock:
            client = _clients.setdefault(url, redis.Redis.from_url(
                url, socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS))
    return client


def _redis_failed(exc: Exception) -> None:
    _down_until[settings.HERALD_DISPATCH_KICK_REDIS_URL] = time.monotonic() + FALLBACK_SECONDS
    log.warning("Dispatch kick Redis unavailable (%s); publishing every task for %.0f s",
                exc, FALLBACK_SECONDS)
