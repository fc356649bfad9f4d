"""The Celery app: configured from Django settings (CELERY_* variables).

It also defines the Redis broker transport the settings select for ``redis://`` brokers
(``CELERY_BROKER_TRANSPORT``): kombu's, with a channel that a lost connection cannot turn into
a worker exit (see ``RedisChannel``).
"""

import os

import redis
from celery import Celery
from kombu.transport import redis as kombu_redis

from common import request_id

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("herald")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
request_id.celery_connect()  # a task published during a request carries its id


class RedisChannel(kombu_redis.Channel):
    """kombu's Redis channel, closable after the broker went away (issue 15, item 13).

    With kombu 5.7 / Celery 5.7, a prefork worker whose Redis stops exits with ``Unrecoverable
    error: AttributeError("'NoneType' object has no attribute 'hostname'")``, so sends stay
    queued until someone restarts it. The sequence (reproduced by
    tests/faults/test_faults.py::test_redis_down_under_a_draining_prefork_worker):

    1. the consumer's channel has a BRPOP pending when the connection drops; celery's
       ``on_connection_error_after_connected`` calls ``connection.collect()``, which closes the
       channel; kombu's ``close()`` first reads the pending BRPOP reply, which raises
       ConnectionError on the dead socket *before* the channel is marked closed, and the
       error is swallowed;
    2. ``collect()`` then drops the transport's client (``transport.client = None``);
    3. celery closes the connection once more: the half-closed channel is closed again, tries
       to put its unacknowledged messages back, needs a new Redis pool, and
       ``_connparams`` reads ``None.hostname``. An AttributeError is not a connection error,
       so nothing ignores it and the worker stops (kombu#582 and kombu#970 are older forms of
       the same late ``_connparams``).

    Two small overrides, one for each step: a pending reply that cannot be read is dropped
    and the close goes on (the channel is closed once, as it should be); and a channel asked
    for a new Redis pool after its connection was closed raises redis' ``ConnectionError``,
    which every caller already treats as "the broker is gone" (retry, ignore on close). The
    unacknowledged messages are not lost by this: kombu keeps them in Redis (restored after
    the visibility timeout), and a Redis that restarts empty loses every queued task anyway,
    which Herald's sweepers re-enqueue from the delivery rows (docs/RELIABILITY.md).
    """

    def close(self) -> None:
        if self._in_poll:
            try:
                self._brpop_read()
            except (kombu_redis.Empty, *self.connection_errors):
                pass  # the reply is lost with the socket: close the channel regardless
        super().close()

    def _connparams(self, asynchronous: bool = False) -> dict:
        if self.connection is None or self.connection.client is None:
            raise redis.exceptions.ConnectionError("The broker connection was closed")
        return super()._connparams(asynchronous=asynchronous)


class RedisTransport(kombu_redis.Transport):
    """kombu's Redis transport with ``RedisChannel``."""

    Channel = RedisChannel

