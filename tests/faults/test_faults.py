"""Fault tests: "nothing lost, nothing sent twice" under real faults (issue 10, part 3).

Each test runs the production shape: PostgreSQL, Redis (``CELERY_BROKER_URL``), a real
``celery -A config worker --pool=prefork -c 2`` subprocess (the pool ``make worker`` runs)
on the test database, sending through the
official ``sendgrid`` client to the fake SendGrid server, and customer webhooks POSTed to a
real local receiver that verifies their signatures. Each injects one fault, lets the sweepers
(what beat runs every ``HERALD_SWEEP_INTERVAL_SECONDS``, run here every second) and a worker
recover, then checks that

- every accepted send reached a final state (``sent``: the fake sends no callbacks),
- the fake saw each message exactly once; the one duplicate window (SendGrid accepted a
  message whose worker could not record it) is counted and must match exactly the messages
  that were in that window,
- every ``comms.sent`` webhook reached the receiver (once, unless counted).

Redis and PostgreSQL are stopped or restarted for real and always restored in ``finally``.
Figures are printed as ``[fault …]`` lines (``pytest -s``) and quoted in docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import DatabaseError, InterfaceError, connection
from django.db.models import F
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import AccountKeys, account_create
from comms.dispatch import deliveries_sweep
from comms.models import Delivery, DeliveryEvent
from config.celery import app
from tests.conftest import TICKET, guest, make_client
from tests.fakes.sendgrid_api import FakeSendGrid
from tests.fakes.smtp_server import free_port
from tests.fakes.webhook_receiver import WebhookReceiver
from webhooks.models import Attempt, Endpoint, Message
from webhooks.services import messages_sweep

pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parents[2]
CELERY = Path(sys.executable).parent / "celery"
LEASE = 5  # HERALD_SENDING_LEASE_SECONDS: a killed worker's rows come back after this
GRACE = 2  # HERALD_SWEEP_GRACE_SECONDS / WEBHOOKS_SWEEP_GRACE_SECONDS
SWEEP_EVERY = 1.0  # what beat's HERALD_SWEEP_INTERVAL_SECONDS would be
BATCH = 10  # HERALD_DISPATCH_BATCH_SIZE
MAX_ATTEMPTS = 8  # HERALD_SEND_MAX_ATTEMPTS
RETRY_BASE = 0.5  # HERALD_RETRY_BASE_SECONDS
# The broker these tests stop is their own: a Redis on a free port (never the shared 6379),
# started with the machine's options (``--save ""``: nothing survives a stop).
REDIS_PORT = int(os.environ.get("HERALD_FAULT_REDIS_PORT") or free_port())
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/0"
REDIS_DIR = Path(tempfile.gettempdir()) / f"herald-faults-redis-{REDIS_PORT}"
REDIS_START = [
    "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(REDIS_PORT),
    "--save", "", "--appendonly", "no", "--dir", str(REDIS_DIR),
    "--logfile", str(REDIS_DIR / "redis.log"),
]
# A PostgreSQL cluster of the tests' own (its data directory; DATABASE_URL must point at it)
# may be restarted for real (pg_ctl, as the directory's owner); the shared one never is:
# without it a "restart" cuts every connection to the test database (pg_terminate_backend),
# what the worker sees of a restart. A private cluster, for example:
#   runuser -u postgres -- initdb -D /tmp/pg/data -A trust -U postgres
#   runuser -u postgres -- pg_ctl -D /tmp/pg/data -o "-p 5441 -k /tmp/pg" -w start
#   HERALD_FAULT_PGDATA=/tmp/pg/data DATABASE_URL=postgres://postgres@127.0.0.1:5441/herald \
#     .venv/bin/python -m pytest -s tests/faults/test_faults.py -k postgres
PGDATA = os.environ.get("HERALD_FAULT_PGDATA", "")


def report(fault: str, **figures: Any) -> None:
    """One ``[fault …]`` line of figures (shown with ``pytest -s``); also appended as JSON to
    ``$HERALD_FAULT_FIGURES`` when that is set."""
    print(f"\n[fault {fault}] " + " ".join(f"{k}={v}" for k, v in figures.items()), flush=True)
    if path := os.environ.get("HERALD_FAULT_FIGURES"):
        with open(path, "a") as out:
            out.write(json.dumps({"fault": fault, **figures}, default=str) + "\n")


# --- processes and services ---------------------------------------------------------------

class Worker:
    """One ``celery -A config worker`` process on the test database, in the pool production
    uses (``make worker``: prefork) unless ``pool`` says otherwise. It runs in its own
    process group, so a kill reaches the pool's children too."""

    def __init__(self, env: dict[str, str], log: Path, *, pool: str = "prefork",
                 concurrency: int = 2) -> None:
        self.log = log
        self.pool = pool
        name = f"faults-{uuid.uuid4().hex[:8]}@%h"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(CELERY), "-A", "config", "worker", f"--pool={pool}", "-c", str(concurrency),
                 "-n", name, "--loglevel=INFO"],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited ({self.proc.returncode}):\n{self.tail()}")
            if b" ready." in self.log.read_bytes():
                return
            time.sleep(0.1)
        raise AssertionError(f"worker not ready after {timeout} s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL to the whole process group (the main process and its pool children): no
        shutdown, no acks, no cleanup, as an OOM kill or a lost machine."""
        if self.proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._reap_group()

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL if it takes longer than 15 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reap_group()

    def _reap_group(self) -> None:
        """No pool child outlives its main process (a child orphaned by a kill would keep
        consuming)."""
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def redis_up() -> bool:
    result = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(REDIS_PORT), "ping"],
                            capture_output=True, text=True, timeout=5, check=False)
    return result.stdout.strip() == "PONG"


def redis_start() -> None:
    """Start the tests' own Redis (``REDIS_URL``) if it is down."""
    if redis_up():
        return
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(REDIS_START, check=True, timeout=15)
    wait_until(redis_up, 15, "Redis did not come back")


def redis_stop() -> None:
    subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(REDIS_PORT), "shutdown",
                    "nosave"], capture_output=True, timeout=10, check=False)
    wait_until(lambda: not redis_up(), 10, "Redis did not stop")


@contextmanager
def broker(url: str) -> Iterator[None]:
    """This process publishes to ``url``. Celery prefers ``$CELERY_BROKER_URL`` to its
    configuration and caches its connection and producer pools: both are repointed (the
    app's references to the pools dropped as after a fork; kombu keeps one pool per broker
    URL, so the next publish takes the one of ``url``)."""
    def repoint(to: str | None) -> None:
        app._pool = None
        app.amqp._producer_pool = None
        if to is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = to

    before = os.environ.get("CELERY_BROKER_URL")
    repoint(url)
    try:
        yield
    finally:
        repoint(before)


def postgres_up() -> bool:
    db = connection.settings_dict
    return subprocess.run(["pg_isready", "-h", db["HOST"] or "127.0.0.1",
                           "-p", str(db["PORT"] or 5432)], capture_output=True,
                          timeout=5, check=False).returncode == 0


def postgres_ctl(action: str) -> None:
    """``pg_ctl <action>`` on the tests' own cluster (``HERALD_FAULT_PGDATA``). Without one,
    "restart" cuts every connection to the test database instead (and only those), what a
    worker sees of a fast-shutdown restart, and "start" does nothing."""
    if PGDATA:
        as_owner = ["runuser", "-u", Path(PGDATA).owner(), "--"] if os.geteuid() == 0 else []
        log = Path(PGDATA).parent / "fault-tests.log"  # the server's output, not our pipe
        subprocess.run([*as_owner, "pg_ctl", "-D", PGDATA, "-l", str(log), "-w", "-m", "fast",
                        action], check=True, capture_output=True, timeout=60,
                       env={**os.environ, "PATH": _pg_path()})
        return
    if action == "restart":
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                           " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        db_reconnect()


def _pg_path() -> str:
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    return os.pathsep.join([*(str(b) for b in bins[-1:]), os.environ.get("PATH", "")])


def postgres_ensure_up() -> None:
    if not postgres_up():
        with suppress(subprocess.CalledProcessError):
            postgres_ctl("start")
    wait_until(postgres_up, 30, "PostgreSQL did not come back")


def db_reconnect() -> None:
    """Drop this process's (dead) pooled connections so the next query opens a fresh one."""
    with suppress(DatabaseError, InterfaceError):
        connection.close()
    if hasattr(connection, "close_pool"):
        with suppress(Exception):
            connection.close_pool()


def wait_until(check: Callable[[], Any], timeout: float, message: str,
               every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(every)
    raise AssertionError(message)


class ReceiverOn(WebhookReceiver):
    """The test receiver on a chosen port: the endpoint's URL outlives the server being down."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self._server.server_close()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)


class PublishFailures(logging.Handler):
    """Counts the on-commit publishes Django logs as failed (``robust=True``) instead of
    printing each long kombu traceback while the broker is down."""

    logger = logging.getLogger("django.db.backends.base")

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1

    def __enter__(self) -> PublishFailures:
        self.logger.addHandler(self)
        self.logger.propagate = False
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)
        self.logger.propagate = True


# --- the stack ------------------------------------------------------------------------------

@dataclass
class Stack:
    fake: FakeSendGrid
    keys: AccountKeys
    client: APIClient
    event_id: str
    template_id: str
    env: dict[str, str]
    logs: Path
    workers: list[Worker] = field(default_factory=list)

    def worker(self, *, pool: str = "prefork", concurrency: int = 2, **env: str) -> Worker:
        """Start a worker with the stack's environment (plus ``env``) and wait until ready:
        prefork with two processes by default, the shape ``make worker`` runs."""
        worker = Worker({**self.env, **env}, self.logs / f"worker-{len(self.workers)}.log",
                        pool=pool, concurrency=concurrency)
        self.workers.append(worker)
        worker.wait_ready()
        return worker

    def send(self, count: int, tag: str) -> list[str]:
        """``count`` atomic create+send requests; each must be accepted (200)."""
        return [self.send_one(f"{tag}{i}") for i in range(count)]

    def send_one(self, tag: str) -> str:
        body = guest(self.event_id, self.template_id, email=f"{tag}@example.com",
                     firstName=tag)
        response = self.client.post("/checkin/v1/api/guest", body, format="json")
        assert response.status_code == 200, response.content
        return response.json()["attendeeInvitationId"]

    def hooks(self, url: str, events: list[str], receiver: WebhookReceiver | None) -> str:
        hooks = APIClient()
        hooks.credentials(HTTP_AUTHORIZATION=f"Bearer {self.keys.live_key}")
        created = hooks.post("/v1/webhooks", {"url": url, "enabled_events": events},
                             format="json")
        assert created.status_code == 201, created.content
        secret = created.json()["webhook"]["signing_secret"]
        if receiver is not None:
            receiver.secret = secret
        return secret


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="session")
def fault_redis() -> Iterator[str]:
    """The tests' own Redis, the broker (and kick and rate-limit store) of every stack."""
    redis_start()
    try:
        yield REDIS_URL
    finally:
        redis_stop()


@pytest.fixture
def stack(transactional_db, settings, tmp_path, fault_redis) -> Iterator[Stack]:
    app.conf.task_always_eager = False  # the conftest default; real brokers here
    settings.CELERY_BROKER_URL = fault_redis
    settings.HERALD_DISPATCH_KICK_REDIS_URL = settings.HERALD_RATE_LIMIT_REDIS_URL = fault_redis
    fake = FakeSendGrid(api_key="SG.faults").start()
    settings.HERALD_EMAIL_PROVIDER = "sendgrid"
    settings.SENDGRID_API_KEY, settings.SENDGRID_API_HOST = fake.api_key, fake.url
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    settings.HERALD_SENDING_LEASE_SECONDS = LEASE
    settings.HERALD_SWEEP_GRACE_SECONDS = GRACE
    settings.WEBHOOKS_SWEEP_GRACE_SECONDS = GRACE
    settings.HERALD_SEND_MAX_ATTEMPTS = MAX_ATTEMPTS
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": fault_redis,
        "HERALD_DISPATCH_KICK_REDIS_URL": fault_redis,
        "HERALD_RATE_LIMIT_REDIS_URL": fault_redis,
        "DJANGO_SECRET_KEY": django_settings.SECRET_KEY,
        "WEBHOOKS_ENCRYPTION_KEY": django_settings.WEBHOOKS_ENCRYPTION_KEY,
        "HERALD_EMAIL_PROVIDER": "sendgrid",
        "SENDGRID_API_KEY": fake.api_key,
        "SENDGRID_API_HOST": fake.url,
        "HERALD_DISPATCH_BATCH_SIZE": str(BATCH),
        "HERALD_RETRY_BASE_SECONDS": str(RETRY_BASE),
        "HERALD_SEND_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "HERALD_SENDING_LEASE_SECONDS": str(LEASE),
        "HERALD_SWEEP_GRACE_SECONDS": str(GRACE),
        "HERALD_PROVIDER_TIMEOUT_SECONDS": "10",
        "WEBHOOKS_ALLOW_PRIVATE_URLS": "true",
        "WEBHOOKS_SWEEP_GRACE_SECONDS": str(GRACE),
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    with broker(fault_redis):
        keys = account_create(name="Fault Tolerant Events")
        client = make_client(keys)
        event_id = client.post("/checkin/v1/api/event", {"name": "Faults"},
                               format="json").json()["id"]
        template = client.post("/comms/v1/api/comms/template", TICKET, format="json")
        built = Stack(fake, keys, client, event_id, template.json()["id"], env, tmp_path)
        yield from _running(built)


def _running(built: Stack) -> Iterator[Stack]:
    try:
        yield built
    finally:
        for worker in built.workers:
            worker.stop()
        built.fake.stop()
        redis_start()
        postgres_ensure_up()
        db_reconnect()


# --- waiting and checking -------------------------------------------------------------------

FINAL = {"sent", "delivered", "opened", "clicked", "failed", "bounced", "dropped",
         "spam_reported", "unsubscribed", "suppressed"}


@dataclass
class Settled:
    seconds: float
    sweeps: int = 0
    requeued: int = 0  # deliveries the sweeper re-enqueued (lost task or expired lease)
    hooks_requeued: int = 0
    errors: list[str] = field(default_factory=list)  # sweeps that failed (beat retries them)


def settle(ids: list[str], hooks_expected: int, timeout: float = 60.0) -> Settled:
    """Run the sweepers as beat would until every delivery is final and every expected webhook
    message succeeded."""
    started = time.monotonic()
    result = Settled(0.0)
    last_sweep = 0.0
    while True:
        statuses = Counter(Delivery.objects.filter(id__in=ids).values_list("status", flat=True))
        hooks = Counter(Message.objects.values_list("status", flat=True))
        if set(statuses) <= FINAL and hooks["succeeded"] >= hooks_expected and \
                sum(hooks.values()) == hooks["succeeded"]:
            result.seconds = round(time.monotonic() - started, 1)
            return result
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not settled after {timeout} s: deliveries {dict(statuses)},"
                                 f" webhooks {dict(hooks)} (expected {hooks_expected}),"
                                 f" sweep errors {result.errors[-3:]}")
        if time.monotonic() - last_sweep >= SWEEP_EVERY:
            last_sweep = time.monotonic()
            result.sweeps += 1
            try:
                result.requeued += deliveries_sweep()
                result.hooks_requeued += messages_sweep()
            except Exception as exc:  # a failed beat run: the next one tries again
                result.errors.append(repr(exc))
        time.sleep(0.1)


def fake_counts(fake: FakeSendGrid) -> Counter[str]:
    """How many times the fake accepted each delivery (by ``custom_args``)."""
    return Counter(r.custom_args.get("herald_delivery_id", "?") for r in fake.recipients())


def check_sent_once(fake: FakeSendGrid, ids: list[str],
                    window: AbstractSet[str] = frozenset()) -> set[str]:
    """Every delivery is ``sent`` with one ``comms.sent`` event, and the fake accepted it once;
    only deliveries of ``window`` (accepted, outcome never recorded) may have been accepted
    twice. Returns the duplicated ones."""
    statuses = Counter(Delivery.objects.filter(id__in=ids).values_list("status", flat=True))
    assert statuses == {"sent": len(ids)}, statuses
    events = Counter(str(d) for d in DeliveryEvent.objects.filter(
        delivery_id__in=ids, name="comms.sent").values_list("delivery_id", flat=True))
    assert events == dict.fromkeys(ids, 1), "each delivery has exactly one comms.sent event"
    counts = fake_counts(fake)
    assert set(counts) == set(ids), "the fake saw every delivery, and nothing else"
    twice = {i for i, n in counts.items() if n > 1}
    assert max(counts.values()) <= 2, counts.most_common(3)
    assert twice <= set(window), f"duplicates outside the window: {twice - set(window)}"
    recorded = dict(Delivery.objects.filter(id__in=ids).values_list("id", "provider_message_id"))
    by_id = {r.custom_args["herald_delivery_id"]: r.message_id for r in fake.recipients()}
    assert all(recorded[uuid.UUID(i)] for i in ids)
    # The recorded provider id is the last accepted request's (the one that was recorded).
    assert {str(k): v for k, v in recorded.items()} == by_id
    return twice


def check_webhooks(receiver: WebhookReceiver, ids: list[str]) -> int:
    """Every comms.sent webhook message succeeded, reached the receiver signed, and each
    delivery's arrived; returns how many webhook ids arrived more than once."""
    messages = dict(Message.objects.values_list("webhook_id", "status"))
    assert set(messages.values()) == {"succeeded"}, Counter(messages.values())
    assert len(messages) == len(ids)
    assert all(r.payload is not None for r in receiver.received), "every request verifies"
    arrived = Counter(r.headers["webhook-id"] for r in receiver.verified)
    assert set(arrived) == set(messages), "no webhook lost"
    invitations = {r.payload["data"]["attendeeInvitationId"] for r in receiver.verified}
    assert invitations == set(ids)
    return sum(n - 1 for n in arrived.values())


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


# --- (a) a worker SIGKILLed mid-batch -------------------------------------------------------

def test_worker_killed_mid_batch_loses_nothing(stack, receiver):
    """A worker is SIGKILLed while SendGrid holds its batch request open: the batch was
    accepted (the fake records a request before answering) but never recorded. The sweeper
    re-queues it after the lease and a new worker sends it again: those messages, and only
    those, are the counted duplicates. The deliveries whose tasks died with the worker's
    prefetch are recovered by the grace sweep."""
    started = time.monotonic()
    stack.hooks(receiver.url, ["comms.sent"], receiver)
    stack.fake.set_delay(1.5)  # every SendGrid answer takes 1.5 s: the kill lands in one
    ids = stack.send(30, "kill")
    first = stack.worker()
    wait_until(lambda: len(stack.fake.messages) >= 2, 30, "no second batch reached the fake")
    first.kill()
    killed_at = time.monotonic()
    accepted = set(fake_counts(stack.fake))
    at_kill = Counter(Delivery.objects.filter(id__in=ids).values_list("status", flat=True))
    window = {str(i) for i in Delivery.objects.filter(id__in=ids, status="sending")
              .values_list("id", flat=True)}
    assert window and window <= accepted, "the kill landed while SendGrid held the batch"
    stack.fake.set_delay(0)
    stack.worker()
    settled = settle(ids, hooks_expected=len(ids))
    twice = check_sent_once(stack.fake, ids, window)
    assert twice == window, "each message accepted but unrecorded was sent again, once"
    attempts = Counter(Delivery.objects.filter(id__in=ids).values_list("attempts", flat=True))
    hook_dupes = check_webhooks(receiver, ids)
    report("a-worker-sigkill", accepted=len(ids), batch=BATCH, provider_delay_s=1.5,
           at_kill=dict(at_kill), in_flight_at_kill=len(window), duplicates=len(twice),
           duplicate_rate=f"{len(twice) / len(ids):.1%}", lease_s=LEASE, grace_s=GRACE,
           recovered_s=round(time.monotonic() - killed_at, 1), sweeper_requeued=settled.requeued,
           attempts=dict(sorted(attempts.items())), webhooks=len(ids),
           webhook_duplicates=hook_dupes, total_s=round(time.monotonic() - started, 1))


# --- (b) Redis stopped for 10 s while the API keeps accepting --------------------------------

def test_redis_down_api_keeps_accepting_and_sweeper_sends_everything(stack, receiver):
    """Redis stops (``shutdown nosave``; it keeps nothing on disk) while a worker is busy and
    tasks wait in the queue, and stays down 10 s while the API keeps answering 200: the
    delivery row is the outbox, and the publish after commit fails fast
    (CELERY_TASK_PUBLISH_RETRY_POLICY) without failing the request. Redis restarts empty:
    every task published before the stop is gone. The worker reconnects by itself and the
    sweepers re-enqueue every queued delivery and pending webhook: all sent once."""
    started = time.monotonic()
    stack.hooks(receiver.url, ["comms.sent"], receiver)
    stack.fake.set_delay(2.0)
    # One task at a time, so the tasks behind the busy one wait in Redis, not in the worker.
    worker = stack.worker(CELERY_WORKER_PREFETCH_MULTIPLIER="1")
    t0 = time.perf_counter()
    before = stack.send(25, "before")
    up_ms = (time.perf_counter() - t0) * 1000 / len(before)
    wait_until(lambda: stack.fake.messages, 30, "the worker never reached SendGrid")
    down_latencies: list[float] = []
    during: list[str] = []
    with PublishFailures() as failed_publishes:
        try:
            redis_stop()
            stopped_at = time.monotonic()
            while time.monotonic() - stopped_at < 10:
                t0 = time.perf_counter()
                during.append(stack.send_one(f"during{len(during)}"))
                down_latencies.append(time.perf_counter() - t0)
                time.sleep(0.1)
        finally:
            redis_start()
    restarted_at = time.monotonic()
    queued = Counter(Delivery.objects.filter(id__in=before).values_list("status", flat=True))
    stack.fake.set_delay(0)
    ids = before + during
    settled = settle(ids, hooks_expected=len(ids), timeout=90)
    check_sent_once(stack.fake, ids)
    hook_dupes = check_webhooks(receiver, ids)
    assert len(during) >= 20 and max(down_latencies) < 2.0
    assert failed_publishes.count == len(during), "each publish failed, no request did"
    assert_survived(worker)
    report("b-redis-down-10s", accepted_before_stop=len(before),
           before_stop_statuses_at_restart=dict(queued), accepted_while_down=len(during),
           api_status_while_down=f"200 x {len(during)}",
           publishes_failed_and_logged=failed_publishes.count,
           api_mean_ms_while_up=round(up_ms, 1),
           api_p50_ms_while_down=round(statistics.median(down_latencies) * 1000, 1),
           api_max_ms_while_down=round(max(down_latencies) * 1000, 1),
           recovered_after_restart_s=round(time.monotonic() - restarted_at, 1),
           sweeper_requeued=settled.requeued, webhook_sweeper_requeued=settled.hooks_requeued,
           duplicates=0, webhooks=len(ids), webhook_duplicates=hook_dupes,
           total_s=round(time.monotonic() - started, 1))


def assert_survived(worker: Worker) -> float:
    """The same worker process is still running and consuming: it never gave up. Returns
    the (wall clock) time of its last connection to the broker."""
    log = worker.log.read_text(errors="replace")
    assert worker.proc.poll() is None and "Unrecoverable error" not in log, worker.tail()
    connected = [line for line in _json_lines(log)
                 if str(line.get("event", "")).startswith("Connected to ")]
    assert len(connected) >= 2, "it reconnected"
    return datetime.fromisoformat(connected[-1]["timestamp"].replace("Z", "+00:00")).timestamp()


def _json_lines(log: str) -> list[dict]:
    """The worker's log lines (one JSON object each, ``common.logs``); others skipped."""
    lines = []
    for text in log.splitlines():
        try:
            line = json.loads(text)
        except ValueError:
            continue
        if isinstance(line, dict):
            lines.append(line)
    return lines


# --- (b2) Redis stopped for 10 s under a prefork worker draining a backlog -------------------

def test_redis_down_under_a_draining_prefork_worker(stack):
    """The production shape of issue 15's outage: a backlog of sends, a prefork worker (two
    processes, default prefetch) draining it with tasks reserved and running, Redis stopped
    10 s and started again (empty). The same worker process reconnects by itself, the sweeper
    re-enqueues what the empty Redis forgot, and every send ends ``sent`` once."""
    started = time.monotonic()
    ids = stack.send(300, "drain")
    stack.fake.set_delay(0.3)  # a 10-message batch every 0.3 s per process: ~5 s of drain
    worker = stack.worker()
    wait_until(lambda: len(stack.fake.messages) >= 4, 30, "the drain never started")
    try:
        redis_stop()
        stopped_at = time.monotonic()
        at_stop = Counter(Delivery.objects.filter(id__in=ids).values_list("status", flat=True))
        time.sleep(10)
    finally:
        redis_start()
    restarted_at, restarted_wall = time.monotonic(), time.time()
    settled = settle(ids, hooks_expected=0, timeout=120)
    check_sent_once(stack.fake, ids)
    reconnected = assert_survived(worker)
    report("b2-redis-down-10s-prefork-drain", accepted=len(ids), pool="prefork -c 2",
           statuses_at_stop=dict(at_stop), down_s=round(restarted_at - stopped_at, 1),
           same_worker_pid=worker.proc.pid,
           reconnected_after_restart_s=round(reconnected - restarted_wall, 1),
           lost=0, duplicates=0,
           recovered_after_restart_s=round(time.monotonic() - restarted_at, 1),
           sweeper_requeued=settled.requeued, total_s=round(time.monotonic() - started, 1))


# --- (c) PostgreSQL restarted under a running worker ----------------------------------------

def test_postgres_restart_under_a_running_worker(stack, receiver):
    """PostgreSQL restarts (fast shutdown: every connection is cut) while the worker waits for
    SendGrid's answer to a batch. The worker cannot record that batch: its connection is gone.
    It keeps running, takes fresh connections for its next tasks, and the sweeper re-queues
    the unrecorded batch after the lease; the only duplicates are that batch's messages
    (accepted, never recorded). pytest's own connection is dropped and reopened too."""
    started = time.monotonic()
    stack.hooks(receiver.url, ["comms.sent"], receiver)
    stack.fake.set_delay(2.0)
    ids = stack.send(30, "pg")
    worker = stack.worker()
    wait_until(lambda: stack.fake.messages, 30, "the worker never reached SendGrid")
    window = set(fake_counts(stack.fake))  # accepted, answer pending: the batch at risk
    try:
        t0 = time.monotonic()
        postgres_ctl("restart")
        restart_s = round(time.monotonic() - t0, 1)
    finally:
        postgres_ensure_up()
        db_reconnect()
    restarted_at = time.monotonic()
    stack.fake.set_delay(0)
    settled = settle(ids, hooks_expected=len(ids), timeout=90)
    twice = check_sent_once(stack.fake, ids, window)
    hook_dupes = check_webhooks(receiver, ids)
    assert worker.proc.poll() is None, "the same worker carried on after the restart"
    failed_tasks = worker.log.read_text(errors="replace").count("raised unexpected: Operational")
    report("c-postgres-restart", accepted=len(ids), batch=BATCH, in_flight_at_restart=len(window),
           restart_s=restart_s, tasks_failed_on_dead_connections=failed_tasks,
           duplicates=len(twice),
           duplicate_rate=f"{len(twice) / len(ids):.1%}",
           recovered_after_restart_s=round(time.monotonic() - restarted_at, 1),
           sweeper_requeued=settled.requeued, webhook_sweeper_requeued=settled.hooks_requeued,
           webhooks=len(ids), webhook_duplicates=hook_dupes,
           total_s=round(time.monotonic() - started, 1))


# --- (d) the provider answers 500, then 429, for a while ------------------------------------

def test_provider_500_then_429_retries_with_backoff(stack, receiver):
    """SendGrid answers three 500s, then three 429s (with ``X-RateLimit-Reset``): every
    refused batch is retried with exponential backoff and jitter (the 429's reset time is a
    floor), and every message ends ``sent``, accepted exactly once."""
    started = time.monotonic()
    stack.hooks(receiver.url, ["comms.sent"], receiver)
    stack.fake.fail_next(3, 500)
    stack.fake.fail_next(3, 429)
    stack.worker()
    ids = stack.send(20, "retry")
    settled = settle(ids, hooks_expected=len(ids))
    check_sent_once(stack.fake, ids)
    hook_dupes = check_webhooks(receiver, ids)
    retries = list(DeliveryEvent.objects.filter(
        delivery_id__in=ids, name="comms.retry_scheduled").values_list("detail", flat=True))
    for detail in retries:
        ceiling = RETRY_BASE * 2 ** (detail["attempt"] - 1)
        assert ceiling / 2 - 0.01 <= detail["retryInSeconds"], detail
        limit = max(ceiling, 2.0) if "429" in detail["reason"] else ceiling
        assert detail["retryInSeconds"] <= limit + 0.01, detail
    attempts = Counter(Delivery.objects.filter(id__in=ids).values_list("attempts", flat=True))
    assert sum(n * (a - 1) for a, n in attempts.items()) == len(retries)
    delays = [d["retryInSeconds"] for d in retries]
    report("d-provider-500-429", accepted=len(ids), faults="3x500+3x429",
           provider_requests=stack.fake.attempts, accepted_requests=len(stack.fake.messages),
           retries_scheduled=len(retries),
           retries_after_500=sum("429" not in d["reason"] for d in retries),
           retries_after_429=sum("429" in d["reason"] for d in retries),
           retry_delay_s=f"{min(delays):.2f}..{max(delays):.2f}",
           attempts=dict(sorted(attempts.items())), duplicates=0,
           sweeper_requeued=settled.requeued, drained_s=settled.seconds, webhooks=len(ids),
           webhook_duplicates=hook_dupes, total_s=round(time.monotonic() - started, 1))


# --- (e) a webhook receiver down for an hour (simulated) ------------------------------------

def advance_clock(account_id: Any, delta: timedelta) -> None:
    """Move the webhook clock forward: every webhook timestamp of the account moves back."""
    Message.objects.filter(account_id=account_id).update(
        created_at=F("created_at") - delta, next_attempt_at=F("next_attempt_at") - delta,
        last_attempt_at=F("last_attempt_at") - delta)
    Attempt.objects.filter(message__account_id=account_id).update(
        created_at=F("created_at") - delta)
    Endpoint.objects.filter(account_id=account_id).update(
        failing_since=F("failing_since") - delta)


def attempts_done(messages: int, tries: int) -> bool:
    """All messages made ``tries`` attempts and none is in flight."""
    rows = Message.objects.values_list("attempts", "status")
    return len(rows) == messages and all(a >= tries and s != "sending" for a, s in rows)


def test_webhook_receiver_down_for_an_hour(stack):
    """The receiver's port refuses connections for one hour of simulated time, on the default
    retry schedule (0 s, 5 s, 5 min, 30 min, 2 h, … each less up to 20 %): the first two tries
    happen in real time, later ones after moving the clock (every webhook timestamp moves back,
    then the sweeper finds them due, as beat would). The receiver comes back at 1 h; each
    message is delivered exactly once, on its fifth try, and every try is logged."""
    started = time.monotonic()
    account_id = stack.keys.account.id
    port = free_port()
    secret = stack.hooks(f"http://127.0.0.1:{port}/hooks/herald",
                         ["comms.sent", "delivery.sent"], None)
    schedule = django_settings.WEBHOOKS_RETRY_SCHEDULE
    stack.worker()
    ids = stack.send(10, "hook")
    expected = 2 * len(ids)
    t0 = timezone.now()
    wait_until(lambda: attempts_done(expected, 2), 30, "the real-time tries did not happen",
               every=0.2)
    shifted, receiver, waves = timedelta(0), None, []
    try:
        while Message.objects.filter(status="pending").exists():
            latest = max(Message.objects.filter(status="pending")
                         .values_list("next_attempt_at", flat=True))
            jump = max(latest - timezone.now(), timedelta(0)) + timedelta(seconds=GRACE + 0.5)
            wave_at = (timezone.now() + shifted + jump - t0).total_seconds()
            if receiver is None and wave_at >= 3600:  # the receiver is back after an hour
                receiver = ReceiverOn(port).__enter__()
                receiver.secret = secret
            advance_clock(account_id, jump)
            shifted += jump
            tries = min(Message.objects.values_list("attempts", flat=True)) + 1
            messages_sweep()
            wait_until(lambda t=tries: attempts_done(expected, t), 30,
                       f"wave at {wave_at:.0f} s not attempted", every=0.2)
            waves.append(round(wave_at))
        assert receiver is not None
        messages = list(Message.objects.all())
        assert {m.status for m in messages} == {"succeeded"}
        arrived = Counter(r.headers["webhook-id"] for r in receiver.verified)
        assert arrived == dict.fromkeys([m.webhook_id for m in messages], 1), "exactly once"
        assert all(r.payload is not None for r in receiver.received)
        logged = [list(m.attempt_log.order_by("created_at", "id")
                       .values_list("succeeded", flat=True)) for m in messages]
        assert logged == [[False, False, False, False, True]] * expected, "every try logged"
        refused = Attempt.objects.filter(succeeded=False).exclude(error="").count()
        assert refused == 4 * expected  # each failed try says why (connection refused)
        endpoint = Endpoint.objects.get(account_id=account_id)
        assert endpoint.is_active and endpoint.failing_since is None
        check_sent_once(stack.fake, ids)
    finally:
        if receiver is not None:
            receiver.__exit__(None, None, None)
    report("e-webhook-receiver-down-1h", deliveries=len(ids), webhook_messages=expected,
           schedule_s=",".join(map(str, schedule[:5])),
           tries_at_simulated_s="0,~5," + ",".join(map(str, waves)),
           receiver_back_at_s=3600, delivered_on_try=5, delivered_at_simulated_s=waves[-1],
           attempts_logged=Attempt.objects.count(), webhook_duplicates=0,
           simulated_h=round((timezone.now() + shifted - t0).total_seconds() / 3600, 2),
           total_s=round(time.monotonic() - started, 1))
