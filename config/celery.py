"""The Celery app: configured from Django settings (CELERY_* variables).

It also defines the Redis broker transport the settings select for ``redis://`` brokers
(``CELERY_BROKER_TRANSPORT``): kombu's, with a channel that a lost connection cannot turn into
a worker exit (see ``RedisChannel``), and how a worker's tasks use the database connection
pool (``WorkerFixup``).
"""

import os
from typing import Any

import redis
from celery import Celery
from celery.fixups.django import DjangoFixup, DjangoWorkerFixup
from kombu.transport import redis as kombu_redis

from common import request_id

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


class WorkerFixup(DjangoWorkerFixup):
    """Celery's Django fixup, keeping each worker process's connection pool across tasks.

    Around every task Celery's fixup closes the database connections and, in a prefork pool,
    the whole psycopg pool (``close_pool``), so each task (each send batch, each beat tick)
    opened a new PostgreSQL connection: a TCP connect, a backend started, authenticated and
    configured, and its catalog caches filled again. ``CELERY_DB_REUSE_MAX`` would keep the
    connection, but also checked out across tasks with no check at all: after a PostgreSQL
    restart every task would fail on the dead connection until the reuse count ran out
    (docs/RELIABILITY.md (c)).

    Here a task's connections go back to the pool when it ends (``connection.close()``), and
    the pool stays: the next task checks one out, and the pool's check at check-out
    (``CONN_HEALTH_CHECKS``: one empty query) replaces one a restart cut, as it did for a
    fresh pool's first connection. Everything else is Celery's: the main process still closes
    its pool before it forks the pool processes (``install``), each pool process closes the
    one it inherited (``on_worker_process_init``: its sockets are the parent's), and with
    ``CELERY_DB_REUSE_MAX`` set the tasks behave as Celery documents.
    """

    def on_task_prerun(self, sender: Any, **kwargs: Any) -> None:
        if self.db_reuse_max:
            return super().on_task_prerun(sender, **kwargs)
        if not getattr(sender.request, "is_eager", False):
            self._connections_back()
        return None

    def on_task_postrun(self, sender: Any, **kwargs: Any) -> None:
        if self.db_reuse_max:
            return super().on_task_postrun(sender, **kwargs)
        if not getattr(sender.request, "is_eager", False):
            self._connections_back()
            self.close_cache()
        return None

    def _connections_back(self) -> None:
        """This process's connections back to the pool (which discards a broken one); the
        pool stays open for the next task."""
        for conn in self._db.connections.all(initialized_only=True):
            try:
                conn.close()
            except self.interface_errors:
                pass
            except self.DatabaseError as exc:
                if "closed" not in str(exc) and "not connected" not in str(exc):
                    raise


class Fixup(DjangoFixup):
    """Celery's Django fixup with ``WorkerFixup`` for the worker, made when a worker first
    needs it, as Celery's own: making it reads the app's configuration, which loads Django's
    settings, and importing ``config`` must not (``config.database.VAR_DIR`` is set by the
    embedded server's tests before the settings are read)."""

    @property
    def worker_fixup(self) -> DjangoWorkerFixup:
        if self._worker_fixup is None:
            self._worker_fixup = WorkerFixup(self.app)
        return self._worker_fixup

    @worker_fixup.setter
    def worker_fixup(self, value: DjangoWorkerFixup) -> None:
        self._worker_fixup = value


app = Celery("herald")
app.config_from_object("django.conf:settings", namespace="CELERY")
for fixup in app._fixups:  # Celery installs its Django fixup when the app is made
    if type(fixup) is DjangoFixup:
        fixup.__class__ = Fixup
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

