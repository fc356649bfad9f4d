"""The admin bulk send of `make bench` (``bench/run.py``), and its in-process profile.

    DATABASE_URL=… .venv/bin/python bench/bulk_send.py setup [guests]
        an account, a staff user, an event with ``guests`` guests (default 20,000) and a
        template; prints them as JSON for ``bench/run.py`` to drive the admin with.
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/herald_bench_bulk \
        .venv/bin/python bench/bulk_send.py profile [guests] [phases|cprofile|none]
        in this process on a fresh PostgreSQL database: ``bulk_send_run`` queues the
        deliveries, then ``delivery_dispatch`` sends them in batches of 1,000 to the fake
        SendGrid (its own process); prints the wall and CPU time of dispatch's steps, or
        cProfile's top functions.
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/herald_bench_bulk \
    CELERY_BROKER_URL=redis://127.0.0.1:6379/9 \
        .venv/bin/python bench/bulk_send.py worker [guests] [batch] [concurrency]
        the production shape on a fresh database: a ``celery -A config worker --pool=prefork
        -c concurrency`` (default 4, as ``make bench``) with ``HERALD_DISPATCH_BATCH_SIZE=batch``
        (default 1,000; 100 is the pipeline's default) runs the ``guests.bulk_send`` job and
        the send tasks it kicks; prints the wall time from the job's creation to the last
        delivery sent, the worker's CPU per email (main process and pool) and the load
        average. The broker's Redis database must be one of your own: its queues are used.
"""

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")
SUBJECT = "Your ticket for {{ event.name }}"
HTML = "<p>Hi {{ firstName }}, see you at {{ event.name }}.</p>"
TEXT = "Hi {{ firstName }}, see you at {{ event.name }}."
from bench.procs import cpu_of  # noqa: E402


def setup(guests: int) -> dict:
    """The event staff's account, login, event, guests and template."""
    from accounts.models import Membership
    from accounts.services import account_create, membership_add
    from common.inserts import rows_insert
    from guests.models import Attendee
    from guests.services import event_create
    from templates.services import template_create

    account = account_create(name=f"Bulk {uuid.uuid4().hex[:6]}").account
    username, password = f"staff-{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(16)
    membership_add(account=account, username=username, role=Membership.Role.STAFF,
                   password=password)
    event = event_create(account=account, name="Bench bulk")
    rows_insert(Attendee, ("id", "first_name", "last_name", "email", "correlation_id"),
                [(uuid.uuid4(), f"Guest{i}", "Bench", f"guest{i}@example.com", f"order-{i}")
                 for i in range(guests)],
                constants={"account_id": account.id, "event_id": event.id})
    template = template_create(account=account, name="Ticket", subject=SUBJECT,
                               html_body=HTML, text_body=TEXT)
    return {"username": username, "password": password, "event": str(event.id),
            "template": str(template.id), "guests": guests}


PHASES = ("delivery_dispatch", "_claim", "deliveries_send", "deliveries_prepare",
          "_suppressions", "content_for", "_senders", "_send_group", "_batch", "record",
          "mark_sent", "_update_sent", "webhooks_emit")


def timers(module: object, names: tuple[str, ...],
           spent: dict[str, list[float]]) -> dict[str, list[float]]:
    """Wrap ``module``'s functions (looked up at call time) to add up their wall and CPU."""

    def wrap(name: str, function):
        def timed(*args, **kwargs):
            started, cpu = time.perf_counter(), time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                total = spent.setdefault(name, [0.0, 0.0])
                total[0] += time.perf_counter() - started
                total[1] += time.process_time() - cpu
        return timed

    for name in names:
        if hasattr(module, name):  # (a step may have moved: it is then left out)
            setattr(module, name, wrap(name, getattr(module, name)))
    return spent


def profile(guests: int, profiler: str, fake_pid: int) -> None:
    """Queue and send ``guests`` deliveries in this process (no Celery): ``cprofile`` (the top
    functions), ``phases`` (wall and CPU of dispatch's steps, of PostgreSQL and of the fake
    SendGrid), ``none``."""
    import cProfile
    import pstats

    from django.conf import settings
    from django.db import connection

    from comms import dispatch
    from comms.models import Delivery
    from guests import bulk
    from guests.models import Event

    settings.HERALD_DISPATCH_BATCH_SIZE = int(os.environ.get("BENCH_BULK_BATCH", "1000"))
    made = setup(guests)
    bulk.enqueue = lambda *args, **kwargs: None  # no tasks: this process sends, below
    event = Event.objects.get(id=made["event"])
    started, cpu = time.perf_counter(), time.process_time()
    job, _ = bulk.bulk_send_create(event=event, template_id=made["template"], audience="all",
                                   mode="live", token=uuid.uuid4(), user=None)
    bulk.bulk_send_run(job_id=job.id)  # what the guests.bulk_send task runs
    print(f"queued {guests:,} deliveries in {time.perf_counter() - started:.2f} s (cpu "
          f"{time.process_time() - cpu:.2f} s)", flush=True)
    queued = Delivery.objects.filter(status="queued", next_attempt_at__isnull=True)
    prof = cProfile.Profile() if profiler == "cprofile" else None
    spent: dict[str, list[float]] = {}
    modules = (dispatch, sys.modules.get("comms.pipeline"), sys.modules.get("comms.outcomes"))
    for module in modules if profiler == "phases" else ():
        if module is not None:
            timers(module, PHASES, spent)
    with connection.cursor() as cursor:  # this process's PostgreSQL backend
        cursor.execute("select pg_backend_pid()")
        postgres = [str(cursor.fetchone()[0])]
    others = cpu_of(postgres), cpu_of([str(fake_pid)])
    started, cpu = time.perf_counter(), time.process_time()
    if prof:
        prof.enable()
    while queued.exists():  # what the chain of send tasks does, one batch after another
        dispatch.delivery_dispatch(delivery_id=None)
    if prof:
        prof.disable()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    others = cpu_of(postgres) - others[0], cpu_of([str(fake_pid)]) - others[1]
    sent = Delivery.objects.filter(template_id=made["template"], status="sent").count()
    print(f"sent {sent:,} in {seconds:.2f} s = {sent / seconds:,.0f} emails/s (cpu {cpu:.2f} s"
          f"{', under cProfile' if prof else ''}; {connection.vendor}; load average "
          f"{os.getloadavg()[0]:.1f})", flush=True)
    print(f"meanwhile CPU of PostgreSQL {others[0]:.2f} s, of the fake SendGrid "
          f"{others[1]:.2f} s", flush=True)
    for name, (wall, used) in spent.items():
        print(f"  {name:<20} wall {wall:6.2f} s  cpu {used:6.2f} s  "
              f"{used / sent * 1000:.3f} ms cpu/email")
    if prof:
        stats = pstats.Stats(prof)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(25)


def worker(guests: int, batch: int, concurrency: int) -> None:
    """The bulk send job and its deliveries run by a real prefork worker (``make bench``'s
    bulk row without the admin's HTTP)."""
    from django.db import connection

    from bench.procs import cpu_with_children, worker_ready
    from comms.models import Delivery
    from guests import bulk
    from guests.models import Event

    def sessions() -> int:  # PostgreSQL connections opened to this database so far
        time.sleep(1)  # (the statistics are flushed about once a second)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute("SELECT sessions FROM pg_stat_database"
                           " WHERE datname = current_database()")
            return cursor.fetchone()[0]

    made = setup(guests)
    event = Event.objects.get(id=made["event"])
    proc = worker_ready("--pool=prefork", "-c", str(concurrency),
                        env={**os.environ, "HERALD_DISPATCH_BATCH_SIZE": str(batch)})
    opened = sessions()
    try:
        deliveries = Delivery.objects.filter(template_id=made["template"])
        cpu, started = cpu_with_children(proc.pid), time.perf_counter()
        bulk.bulk_send_create(event=event, template_id=made["template"], audience="all",
                              mode="live", token=uuid.uuid4(), user=None)
        while deliveries.exclude(status__in=("queued", "sending")).count() < guests:
            if time.perf_counter() - started > 300:
                raise SystemExit("not all sent after 300 s")
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        cpu = cpu_with_children(proc.pid) - cpu
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    opened = sessions() - opened
    sent = deliveries.filter(status="sent").count()
    print(f"worker -c {concurrency}, batch {batch}: sent {sent:,} in {seconds:.2f} s = "
          f"{sent / seconds:,.0f} emails/s; worker CPU {cpu:.2f} s = "
          f"{cpu / sent * 1000:.3f} ms per email; {opened} PostgreSQL connections opened; "
          f"load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "setup"
    guests = int(sys.argv[2]) if len(sys.argv) > 2 else 20_000
    if command == "worker" and not os.environ.get("CELERY_BROKER_URL", "").startswith(
            "redis://"):
        raise SystemExit("worker: CELERY_BROKER_URL must name a Redis database of your own")
    if command in ("profile", "worker"):
        url = os.environ.setdefault(
            "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/herald_bench_bulk")
        for tool in ("dropdb", "createdb"):  # a fresh database: nothing else queued
            subprocess.run([tool, "-h", "127.0.0.1", "-U", "postgres",
                            url.rsplit("/", 1)[1]], capture_output=True)
        fake = subprocess.Popen([sys.executable, str(ROOT / "bench/fake_sendgrid_server.py"),
                                 "SG.bench"], stdout=subprocess.PIPE, text=True)
        os.environ.update(HERALD_EMAIL_PROVIDER="sendgrid", SENDGRID_API_KEY="SG.bench",
                          SENDGRID_API_HOST=fake.stdout.readline().strip())
        os.environ.setdefault("CELERY_BROKER_URL", "memory://")
    import django

    django.setup()
    if command not in ("profile", "worker"):
        print(json.dumps(setup(guests)))
        return
    from django.core.management import call_command

    try:
        call_command("migrate", verbosity=0)
        if command == "worker":
            worker(guests, int(sys.argv[3]) if len(sys.argv) > 3 else 1000,
                   int(sys.argv[4]) if len(sys.argv) > 4 else 4)
        else:
            profile(guests, sys.argv[3] if len(sys.argv) > 3 else "phases", fake.pid)
    finally:
        fake.terminate()


if __name__ == "__main__":
    main()
