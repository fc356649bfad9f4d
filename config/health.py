"""``/healthz`` and ``/readyz``: for load balancers and orchestrators, without authentication.

``/healthz`` says the process answers (liveness: no database, nothing that could make a
restart loop out of a database outage). ``/readyz`` says this process can do its work
(readiness): the database answers, the Celery broker accepts a connection, and no migration is
left to apply (a web process started before ``migrate`` finished would write rows the old
schema refuses). Each check runs in its own thread under one deadline
(``HERALD_READINESS_TIMEOUT_SECONDS``, 2 s at most), so a database whose pool waits 10 s for a
connection still answers the probe in time, as "timeout". A failure names the check and the
error's type only: never a URL, a host or a password.
"""

import contextvars
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from django.conf import settings
from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

log = logging.getLogger(__name__)
OK = "ok"
# A few threads: a check stuck past its deadline holds one until its own timeouts end, and
# the probes behind it then time out too (not ready) instead of piling up threads.
_checks = ThreadPoolExecutor(max_workers=6, thread_name_prefix="readyz")
_migrated: set[str] = set()  # aliases found migrated: that stays true for the process's life


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process answers."""
    return JsonResponse({"status": OK})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when the database, the broker and the migrations are ready; 503 naming what is not."""
    checks = readiness()
    ready = all(value == OK for value in checks.values())
    return JsonResponse({"status": OK if ready else "unavailable", "checks": checks},
                        status=200 if ready else 503)


VIEWS = {"/healthz": healthz, "/readyz": readyz}


def readiness(alias: str = "default") -> dict[str, str]:
    """Each check's answer: ``ok``, or a short reason without configuration in it."""
    timeout = min(settings.HERALD_READINESS_TIMEOUT_SECONDS, 2.0)
    started = time.monotonic()
    futures = {name: _checks.submit(contextvars.copy_context().run, _guarded, name, check, alias)
               for name, check in (("database", database_check), ("broker", broker_check),
                                   ("migrations", migrations_check))}
    answers = {}
    for name, future in futures.items():
        try:
            answers[name] = future.result(timeout=max(0.0, timeout - (time.monotonic()
                                                                        - started)))
        except FutureTimeout:
            answers[name] = "timeout"
    return answers


def _guarded(name: str, check: Callable[[str], str], alias: str) -> str:
    try:
        return check(alias)
    except Exception as exc:  # any failure is "not ready", logged with its detail
        log.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
        return f"failed ({type(exc).__name__})"
    finally:
        connections[alias].close()  # this thread's connection back to the pool


def database_check(alias: str) -> str:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1")
    return OK


def broker_check(alias: str) -> str:
    """A connection to the broker, once, under a short timeout (no retry)."""
    from config.celery import app

    timeout = min(settings.HERALD_READINESS_TIMEOUT_SECONDS, 2.0)
    with app.connection_for_write(connect_timeout=timeout) as connection:
        connection.ensure_connection(max_retries=0, timeout=timeout)
        connection.default_channel  # noqa: B018 (Redis: the channel's connection is the ping)
    return OK


def migrations_check(alias: str) -> str:
    """No migration on disk is left unapplied (MigrationExecutor's plan is empty); once
    true, not read again: a process's migrations on disk do not change under it."""
    if alias in _migrated:
        return OK
    executor = MigrationExecutor(connections[alias])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        return f"unapplied ({len(plan)} migration{'s' if len(plan) != 1 else ''})"
    _migrated.add(alias)
    return OK
