"""Fault tests: duplicates after a killed worker and after lost database connections (issue
15, item 14), in the production shape of ``tests/faults/test_faults.py`` (PostgreSQL, Redis, a
``celery -A config worker --pool=prefork -c 2`` subprocess, the official clients against the
local fakes).

Each test drains a bulk send and injects one fault mid-drain:

- a worker SIGKILLed (its whole process group) while SendGrid holds batches open: the batches
  were accepted but never recorded. SendGrid's Event Webhook reports them (``processed``,
  then ``delivered``, our delivery id in ``custom_args``): a poster here POSTs those signed
  events to Herald's callback URL (a live server) as SendGrid does, and the sweeper records
  their sends instead of sending them again (``comms.dispatch._reconcile``);
- the worker's database connections cut four times (``pg_terminate_backend``, only this test
  database's worker sessions): outcomes are recorded on fresh connections
  (``comms.outcomes.durable``);
- an SMTP drain with a SIGKILL, with ``HERALD_SEND_RECORD_EVERY=1``: SMTP reports nothing, so
  each message is recorded as soon as the server accepted it; at most one message per pool
  process can go twice (the default groups of 100: ``test_smtp_record_groups.py``).

Counted at the fakes: lost (a delivery never accepted) must be 0, duplicates are reported and
bounded. Figures: ``[fault …]`` lines (``pytest -s``), quoted in docs/RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import kombu.pools
import pytest
from aiosmtpd.controller import Controller
from django.db import connection

from common.inserts import rows_insert
from comms.callbacks.services import callback_batches_sweep
from comms.dispatch import deliveries_sweep
from comms.models import Delivery, DeliveryEvent
from guests.bulk import bulk_send_create, bulk_send_run
from guests.models import Attendee, Event
from tests.fakes.sendgrid_signing import SendGridSigner, dumps, sendgrid_event
from tests.fakes.smtp_server import Recorder, free_port
from tests.faults import test_faults as test_faults
from tests.faults.test_faults import LEASE, SWEEP_EVERY, Stack, report, wait_until

# The fault suite's stack (its Redis, the fake SendGrid, workers), as fixtures of this module.
fault_redis = test_faults.fault_redis
stack = test_faults.stack

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def broker_pools_fresh() -> None:
    """kombu keeps one connection pool per broker URL for the process, and an earlier stack's
    teardown closes it (``Celery.pool`` is that pool): forget them, so this stack's
    publishes open new ones."""
    kombu.pools.reset()

DRAIN = 2000  # sends per SendGrid drain
SMTP_DRAIN = 400
BATCH = 100  # HERALD_DISPATCH_BATCH_SIZE: production's default
CONCURRENCY = 2  # the worker's pool processes
RECONCILE = 5  # HERALD_RECONCILE_SECONDS: a lost send waits this long after its lease
WORKER_APP = "herald-fault-worker"  # application_name of the worker's database sessions
MAX_DUPLICATE_RATE = 0.01


# --- SendGrid's Event Webhook -------------------------------------------------------------

class EventPoster:
    """SendGrid's Event Webhook for the fake: every personalization the fake accepted is
    reported as signed events (with its ``custom_args``) POSTed in batches to Herald's
    callback URL every ``every`` seconds: ``processed`` at once, ``delivered`` a round later
    (a row whose worker died is then already ``delivered``, as with real SendGrid)."""

    def __init__(self, fake: Any, url: str, signer: SendGridSigner, every: float = 0.3) -> None:
        self.fake, self.url, self.signer, self.every = fake, url, signer, every
        self.posted = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> EventPoster:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        done, delivered = 0, 0
        while not self._stop.wait(self.every):
            messages = self.fake.messages
            events = [event for message in messages[delivered:done]
                      for event in self._events(message, "delivered")]
            events += [event for message in messages[done:]
                       for event in self._events(message, "processed")]
            delivered, done = done, len(messages)
            for start in range(0, len(events), 1000):
                self._post(events[start:start + 1000])

    def _events(self, message: Any, kind: str) -> Iterator[dict[str, Any]]:
        for personalization in message.body["personalizations"]:
            args = personalization.get("custom_args") or {}
            yield sendgrid_event(
                kind, delivery_id=args.get("herald_delivery_id"),
                message_id=message.message_id, email=personalization["to"][0]["email"],
                event_id=uuid.uuid4().hex, timestamp=int(message.received_at))

    def _post(self, events: list[dict[str, Any]]) -> None:
        body = dumps(events)
        headers = {"Content-Type": "application/json"}
        for name, value in self.signer.headers(body).items():  # HTTP_X_… → X-…
            headers[name.removeprefix("HTTP_").replace("_", "-")] = value
        request = urllib.request.Request(self.url, body.encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
            self.posted += len(events)
        except OSError as exc:  # SendGrid retries a failed post; so does this poster
            self.errors.append(repr(exc))
            time.sleep(self.every)
            self._post(events)


@pytest.fixture
def signer(settings) -> SendGridSigner:
    signer = SendGridSigner()
    settings.SENDGRID_WEBHOOK_PUBLIC_KEY = signer.public_key
    settings.HERALD_RECONCILE_SECONDS = RECONCILE
    return signer


# --- the drain --------------------------------------------------------------------------------

def drain_queue(stack: Stack, count: int) -> list[str]:
    """``count`` guests and a bulk send of the ticket to all of them (as the admin does):
    ``count`` queued deliveries, and the first kick published."""
    event = Event.objects.get(id=stack.event_id)
    rows_insert(Attendee, ("id", "first_name", "last_name", "email"),
                [(uuid.uuid4(), f"Guest{i}", "Drain", f"guest{i}@example.com")
                 for i in range(count)],
                constants={"account_id": event.account_id, "event_id": event.id})
    job, _ = bulk_send_create(event=event, template_id=stack.template_id, audience="all",
                              mode="live", token=uuid.uuid4(), user=None)
    bulk_send_run(job_id=job.id)
    ids = [str(i) for i in Delivery.objects.filter(attendee__event=event)
           .values_list("id", flat=True)]
    assert len(ids) == count
    return ids


def worker_env(stack: Stack, **extra: str) -> dict[str, str]:
    """The worker's environment: production's batch size, sessions named for the cut."""
    url = stack.env["DATABASE_URL"]
    return {"DATABASE_URL": f"{url}{'&' if '?' in url else '?'}application_name={WORKER_APP}",
            "HERALD_DISPATCH_BATCH_SIZE": str(BATCH),
            "HERALD_RECONCILE_SECONDS": str(RECONCILE), **extra}


class Beat:
    """What beat does every ``HERALD_SWEEP_INTERVAL_SECONDS``, here every second in a thread of
    its own, so it keeps running while a worker is killed and restarted: the deliveries sweep
    (lost tasks, expired claims, reconciliation) and the stored callbacks sweep."""

    def __init__(self) -> None:
        self.runs = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Beat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            while not self._stop.wait(SWEEP_EVERY):
                self.runs += 1
                try:
                    deliveries_sweep()
                    callback_batches_sweep()
                except Exception as exc:  # a failed beat run: the next one tries again
                    self.errors.append(repr(exc))
                    connection.close()
        finally:
            connection.close()


def settle(ids: list[str], timeout: float = 50.0) -> float:
    """Wait until every delivery's send is recorded; returns the seconds it took."""
    started = time.monotonic()
    while Delivery.objects.filter(id__in=ids, sent_at__isnull=True).exists():
        assert time.monotonic() - started < timeout, (
            f"not settled after {timeout} s: "
            f"{Counter(Delivery.objects.filter(id__in=ids).values_list('status', flat=True))}")
        time.sleep(0.1)
    return round(time.monotonic() - started, 1)


def outcome(counts: Counter[str], ids: list[str]) -> tuple[int, int]:
    """(lost, duplicates) as the provider saw them."""
    lost = sum(1 for i in ids if counts[i] == 0)
    return lost, sum(n - 1 for i, n in counts.items() if n > 1)


def check_recorded_once(ids: list[str]) -> None:
    """Every delivery ``sent`` (or ``delivered``, as SendGrid reported) with exactly one
    ``comms.sent`` event."""
    statuses = Counter(Delivery.objects.filter(id__in=ids).values_list("status", flat=True))
    assert set(statuses) <= {"sent", "delivered"} and sum(statuses.values()) == len(ids)
    events = Counter(str(d) for d in DeliveryEvent.objects.filter(
        delivery_id__in=ids, name="comms.sent").values_list("delivery_id", flat=True))
    assert events == dict.fromkeys(ids, 1)


def sendgrid_counts(fake: Any) -> Counter[str]:
    return Counter(r.custom_args.get("herald_delivery_id", "?") for r in fake.recipients())


def reconciled(ids: list[str]) -> int:
    return DeliveryEvent.objects.filter(delivery_id__in=ids, name="comms.sent",
                                        detail__reconciled=True).count()


# --- a SIGKILLed worker, SendGrid ------------------------------------------------------------

def test_sigkilled_worker_mid_drain_resends_almost_nothing(stack, signer, live_server):
    """A 2,000-send drain; the worker's process group is SIGKILLed while SendGrid holds its
    batches open (accepted, never recorded) and restarted. SendGrid's ``processed`` events
    reach Herald; the sweeper records those batches instead of sending them again."""
    started = time.monotonic()
    stack.fake.set_delay(0.3)
    env = worker_env(stack, SENDGRID_WEBHOOK_PUBLIC_KEY=signer.public_key)
    with EventPoster(stack.fake, f"{live_server.url}/callbacks/sendgrid", signer) as poster, \
            Beat():
        ids = drain_queue(stack, DRAIN)
        first = stack.worker(**env)
        wait_until(lambda: len(stack.fake.messages) >= 6, 40, "the drain did not start")
        first.kill()
        in_flight = Delivery.objects.filter(id__in=ids, status="sending").count()
        accepted_at_kill = len(stack.fake.recipients())
        stack.fake.set_delay(0)
        stack.worker(**env)
        recovered_s = settle(ids)
    counts = sendgrid_counts(stack.fake)
    lost, duplicates = outcome(counts, ids)
    check_recorded_once(ids)
    report("dup-a-sigkill-sendgrid", drain=DRAIN, batch=BATCH, concurrency=CONCURRENCY,
           accepted_at_kill=accepted_at_kill, sending_at_kill=in_flight,
           reconciled=reconciled(ids), lost=lost, duplicates=duplicates,
           duplicate_rate=f"{duplicates / DRAIN:.2%}", events_posted=poster.posted,
           delivered=Delivery.objects.filter(id__in=ids, status="delivered").count(),
           poster_errors=len(poster.errors), lease_s=LEASE, reconcile_s=RECONCILE,
           recovered_s=recovered_s, total_s=round(time.monotonic() - started, 1))
    assert in_flight > 0, "the kill landed while batches were in flight"
    assert lost == 0 and set(counts) == set(ids)
    assert duplicates <= MAX_DUPLICATE_RATE * DRAIN


# --- lost database connections, SendGrid -----------------------------------------------------

def worker_sessions_cut() -> int:
    """pg_terminate_backend of the worker's sessions of this test database, none other."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s"
            " AND pid <> pg_backend_pid()", [WORKER_APP])
        return cursor.fetchone()[0]


def test_worker_connections_cut_four_times_mid_drain_resend_almost_nothing(stack, signer,
                                                                          live_server):
    """A 2,000-send drain; four times, while SendGrid holds batches open, every database
    session of the worker is terminated. The outcomes SendGrid already gave are written on
    fresh connections; rows claimed before a cut go back to the queue at once."""
    started = time.monotonic()
    stack.fake.set_delay(0.3)
    env = worker_env(stack, SENDGRID_WEBHOOK_PUBLIC_KEY=signer.public_key)
    cuts: list[int] = []
    with EventPoster(stack.fake, f"{live_server.url}/callbacks/sendgrid", signer) as poster, \
            Beat():
        ids = drain_queue(stack, DRAIN)
        worker = stack.worker(**env)
        for at in (2, 6, 10, 14):
            wait_until(lambda at=at: len(stack.fake.messages) >= at, 40,
                       f"the drain did not reach {at} requests")
            cuts.append(worker_sessions_cut())
        stack.fake.set_delay(0)
        recovered_s = settle(ids)
    counts = sendgrid_counts(stack.fake)
    lost, duplicates = outcome(counts, ids)
    check_recorded_once(ids)
    retried = worker.log.read_text(errors="replace").count("retrying on a new one")
    report("dup-b-pg-terminate-sendgrid", drain=DRAIN, batch=BATCH, concurrency=CONCURRENCY,
           cuts=len(cuts), sessions_terminated=sum(cuts), writes_retried=retried,
           reconciled=reconciled(ids), lost=lost, duplicates=duplicates,
           duplicate_rate=f"{duplicates / DRAIN:.2%}", events_posted=poster.posted,
           settled_s=recovered_s, total_s=round(time.monotonic() - started, 1))
    assert all(cuts), "each cut terminated worker sessions"
    assert worker.proc.poll() is None, "the same worker carried on"
    assert lost == 0 and set(counts) == set(ids)
    assert duplicates <= MAX_DUPLICATE_RATE * DRAIN


# --- a SIGKILLed worker, SMTP ----------------------------------------------------------------

class SlowRecorder(Recorder):
    """The aiosmtpd recorder, taking a little time over each message as a real server does."""

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(0.005)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def smtp_server() -> Iterator[tuple[Recorder, int]]:
    recorder = SlowRecorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield recorder, controller.port
    controller.stop()


def test_sigkilled_worker_mid_smtp_drain_resends_at_most_one_per_process(stack, settings,
                                                                         smtp_server):
    """SMTP reports nothing to reconcile with; with HERALD_SEND_RECORD_EVERY=1 each message is
    recorded as soon as the server accepted it: a SIGKILL leaves at most the message in flight
    of each pool process unrecorded, and only those can go twice."""
    started = time.monotonic()
    recorder, port = smtp_server
    settings.HERALD_EMAIL_PROVIDER = "smtp"
    env = worker_env(stack, HERALD_EMAIL_PROVIDER="smtp", EMAIL_HOST="127.0.0.1",
                     EMAIL_PORT=str(port), EMAIL_USE_TLS="false", EMAIL_USE_SSL="false",
                     HERALD_SEND_RECORD_EVERY="1")
    with Beat():
        ids = drain_queue(stack, SMTP_DRAIN)
        first = stack.worker(**env)
        wait_until(lambda: len(recorder.messages) >= SMTP_DRAIN // 4, 40,
                   "the drain did not start")
        first.kill()
        accepted_at_kill = len(recorder.messages)
        in_flight = Delivery.objects.filter(id__in=ids, status="sending").count()
        stack.worker(**env)
        recovered_s = settle(ids)
    counts = Counter(m["X-Herald-Delivery-Id"] for m in recorder.messages)
    lost, duplicates = outcome(counts, ids)
    check_recorded_once(ids)
    report("dup-c-sigkill-smtp", drain=SMTP_DRAIN, batch=BATCH, concurrency=CONCURRENCY,
           accepted_at_kill=accepted_at_kill, sending_at_kill=in_flight, lost=lost,
           duplicates=duplicates, lease_s=LEASE, recovered_s=recovered_s,
           total_s=round(time.monotonic() - started, 1))
    assert lost == 0 and set(counts) == set(ids)
    assert duplicates <= CONCURRENCY
