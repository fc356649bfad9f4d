"""A prefork worker process keeps its database connection pool across tasks
(``config.celery.WorkerFixup``), and still gets a working connection after PostgreSQL cut
the pooled ones (a restart, ``pg_terminate_backend``)."""

from datetime import datetime
from types import SimpleNamespace

import psycopg
import pytest
from django.db import connection

from config.celery import WorkerFixup, app

pytestmark = pytest.mark.django_db(transaction=True)

# What the fixup reads of Celery's task and of its WorkController (a prefork pool).
TASK = SimpleNamespace(request=SimpleNamespace(is_eager=False))
PREFORK = SimpleNamespace(pool_cls="celery.concurrency.prefork:TaskPool")


@pytest.fixture
def fixup():
    # A pool of its own, as a worker process has: in the full suite, earlier tests' threads
    # (live servers) may still hold connections of the shared one up to its max size, and a
    # cut connection could then not be replaced within the pool's timeout.
    connection.close()
    connection.close_pool()
    if connection.pool is None:
        pytest.skip("DATABASE_POOL is off: Django opens a connection per task anyway")
    made = WorkerFixup(app)
    made.worker = PREFORK
    return made


def backend() -> tuple[int, datetime]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid, backend_start FROM pg_stat_activity"
                       " WHERE pid = pg_backend_pid()")
        return cursor.fetchone()


def test_the_app_uses_the_fixup():
    from celery.fixups.django import DjangoFixup

    installed = [f for f in app._fixups if isinstance(f, DjangoFixup)]
    assert installed and all(isinstance(f.worker_fixup, WorkerFixup) for f in installed)


def test_the_next_task_reuses_a_pooled_connection(fixup):
    """Celery's own fixup closes the pool after each prefork task: every task then started
    a new PostgreSQL backend."""
    pool = connection.pool
    backend()
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        ended = cursor.fetchone()[0]
    fixup.on_task_postrun(TASK)
    assert connection.connection is None  # given back to the pool between tasks
    fixup.on_task_prerun(TASK)
    _, started = backend()
    assert connection.pool is pool
    assert started < ended, "a backend started for the next task"


def test_a_connection_postgres_cut_between_tasks_is_replaced(fixup):
    """The pool checks a connection as it hands it out: one a restart cut is replaced, so
    the next task runs (what ``close_pool`` after every task used to guarantee)."""
    used, _ = backend()
    fixup.on_task_postrun(TASK)
    # What a restart does to the pool: every idle pooled connection cut (only this pool's:
    # connections other tests' threads hold are left alone).
    idle = [c.info.backend_pid for c in list(connection.pool._pool)]
    assert used in idle
    db = connection.settings_dict
    with psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432,
                         user=db["USER"], password=db["PASSWORD"] or None,
                         dbname=db["NAME"], autocommit=True) as other:
        cut = other.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                            " WHERE pid = ANY(%s)", [idle]).fetchone()[0]
    assert cut == len(idle)
    fixup.on_task_prerun(TASK)
    pid, _ = backend()  # no OperationalError: a fresh connection
    assert pid not in idle


def test_the_main_process_still_closes_its_pool_before_forking(fixup):
    """``install`` (in the worker's main process, before the pool processes are forked) and
    beat's embedded start close the whole pool as Celery does: a child never shares a live
    pooled socket with its parent."""
    backend()
    pool = connection.pool
    fixup.close_database()
    assert connection.connection is None
    assert connection.pool is not pool  # a new pool object on next use; the old one closed
    assert pool.closed
