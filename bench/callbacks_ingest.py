"""Callback ingestion on the production shape: signed SendGrid Event Webhook batches posted
concurrently to /callbacks/sendgrid through gunicorn, stored raw, applied by a Celery worker
(``-Q lifecycle``) on PostgreSQL and Redis.

    .venv/bin/python bench/callbacks_ingest.py
    BENCH_CB_DELIVERIES=20000 BENCH_CB_CLIENTS=4 BENCH_CB_WEB_WORKERS=4 \\
    BENCH_CB_CONCURRENCY=4 BENCH_CB_ENDPOINT=1 .venv/bin/python bench/callbacks_ingest.py

D sent deliveries are inserted with one SQL statement; then a ``delivered`` and an ``open``
event per delivery (2·D events) are signed as SendGrid does, in batches of 1,000, and posted
by C client threads. Prints events/s from the first post to the last batch applied, the
posting alone (web side), and the CPU each side used. BENCH_CB_ENDPOINT=1 gives the account
a webhook endpoint subscribed to every ``comms.*`` event, so each applied event also writes
its customer webhook message (not delivered: no ``webhooks`` worker runs).
"""

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv" / "bin"
DB = "herald_bench_cb"
PORT = int(os.environ.get("BENCH_CB_PORT", "8766"))
DELIVERIES = int(os.environ.get("BENCH_CB_DELIVERIES", "10000"))
BATCH = int(os.environ.get("BENCH_CB_BATCH", "1000"))
CLIENTS = int(os.environ.get("BENCH_CB_CLIENTS", "4"))
WEB_WORKERS = os.environ.get("BENCH_CB_WEB_WORKERS", "4")
CONCURRENCY = os.environ.get("BENCH_CB_CONCURRENCY", "4")
ENDPOINT = os.environ.get("BENCH_CB_ENDPOINT", "0") == "1"
sys.path.insert(0, str(ROOT))
from bench.procs import (  # noqa: E402
    cpu_own,
    cpu_with_children,
    database_migrated,
    wait_http,
    worker_ready,
)
from tests.fakes.sendgrid_signing import SendGridSigner, dumps, sendgrid_event  # noqa: E402

SIGNER = SendGridSigner()
ENV = {
    **os.environ,
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB}",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/13",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "SENDGRID_WEBHOOK_PUBLIC_KEY": SIGNER.public_key,
    "WEBHOOKS_ALLOW_PRIVATE_URLS": "true",
    "LOG_LEVEL": "WARNING",
}


# --- setup ----------------------------------------------------------------------------------

def psql(sql: str) -> str:
    return subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", DB, "-tAc", sql],
                          check=True, capture_output=True, text=True).stdout.strip()


def prepare_database() -> None:
    database_migrated(DB, ENV)
    psql("truncate comms_callbackbatch, comms_deliveryevent, comms_delivery,"
         " webhooks_message cascade")
    subprocess.run(["redis-cli", "-n", "13", "flushdb"], check=True, capture_output=True)


def django_setup() -> None:
    os.environ.update(ENV)
    import django

    django.setup()


def deliveries_create(count: int) -> list[tuple[str, str, str]]:
    """``count`` sent email deliveries of a new account: (id, provider message id, recipient)."""
    from accounts.services import account_create

    account = account_create(name="Bench callbacks").account
    if ENDPOINT:
        from webhooks.catalogue import COMMS_EVENTS
        from webhooks.services import endpoint_create

        endpoint_create(account=account, url="http://127.0.0.1:9/hook",
                        enabled_events=sorted(COMMS_EVENTS))
    psql(
        "insert into comms_delivery (id, account_id, channel, mode, recipient, event_name,"
        " status, provider, provider_message_id, attempts, subject, html_body, text_body,"
        " failure_type, failure_reason, bounce_type, bounce_subtype, sent_at, created_at,"
        " updated_at) select gen_random_uuid(), '" + str(account.id) + "', 'email', 'live',"
        " 'guest' || n || '@example.com', '', 'sent', 'sendgrid', 'msg' || n, 1, '', '', '',"
        " '', '', '', '', now(), now(), now()"
        f" from generate_series(1, {count}) n")
    rows = psql("select id || ',' || provider_message_id || ',' || recipient"
                f" from comms_delivery where account_id = '{account.id}'")
    return [tuple(line.split(",")) for line in rows.split()]


def bodies(deliveries: list[tuple[str, str, str]]) -> list[str]:
    out = []
    for kind in ("delivered", "open"):
        for start in range(0, len(deliveries), BATCH):
            out.append(dumps([
                sendgrid_event(kind, delivery_id=d, message_id=m, email=r,
                               event_id=f"{kind}-{d}")
                for d, m, r in deliveries[start:start + BATCH]]))
    return out


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def start_worker() -> subprocess.Popen:
    return worker_ready("-Q", "lifecycle", "-c", CONCURRENCY, env=ENV)


def postgres_cpu_seconds() -> float:
    """CPU of every PostgreSQL process so far, and of the exited ones (the postmaster's
    children's time): all databases, so other work on the machine counts too."""
    return sum(cpu_own(proc.name, reaped=True) for proc in Path("/proc").iterdir()
               if proc.name.isdigit() and _comm(proc) == "postgres")


def _comm(proc: Path) -> str:
    try:
        return (proc / "comm").read_text().strip()
    except OSError:
        return ""


# --- the run --------------------------------------------------------------------------------

def post(body: str) -> None:
    headers = {key.removeprefix("HTTP_").replace("_", "-"): value
               for key, value in SIGNER.headers(body).items()}
    request = urllib.request.Request(
        f"http://127.0.0.1:{PORT}/callbacks/sendgrid", data=body.encode(), method="POST",
        headers={"Content-Type": "application/json", **headers})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200, response.status
        response.read()


def post_all(todo: list[str]) -> float:
    """Post every body from CLIENTS threads; returns when the last answer came."""
    work: queue.Queue[str] = queue.Queue()
    for body in todo:
        work.put(body)
    errors: list[BaseException] = []

    def client() -> None:
        while True:
            try:
                body = work.get_nowait()
            except queue.Empty:
                return
            try:
                post(body)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"{len(errors)} posts failed, first: {errors[0]!r}")
    return time.monotonic()


def run(web: subprocess.Popen, worker: subprocess.Popen, todo: list[str], events: int) -> None:
    cpu = cpu_with_children(web.pid), cpu_with_children(worker.pid), postgres_cpu_seconds()
    started = time.monotonic()
    posted_at = post_all(todo)
    while (done := int(psql("select count(*) from comms_callbackbatch"
                            " where processed_at is not null"))) < len(todo):
        if time.monotonic() - started > 600:
            break
        time.sleep(0.1)
    seconds = time.monotonic() - started
    web_cpu = cpu_with_children(web.pid) - cpu[0]
    worker_cpu = cpu_with_children(worker.pid) - cpu[1]
    db_cpu = postgres_cpu_seconds() - cpu[2]
    applied = int(psql("select coalesce(sum(events_applied), 0) from comms_callbackbatch"))
    opened = int(psql("select count(*) from comms_delivery where status = 'opened'"
                      " and delivered_at is not null"))
    messages = int(psql("select count(*) from webhooks_message"))
    load = os.getloadavg()
    print(f"callbacks: {events} events in {len(todo)} batches of {BATCH} applied in "
          f"{seconds:.2f} s = {events / seconds:.0f} events/s "
          f"({done}/{len(todo)} batches processed, {applied} events applied, {opened} "
          f"deliveries opened+delivered, {messages} webhook messages)\n"
          f"  web: all posted in {posted_at - started:.2f} s = "
          f"{events / (posted_at - started):.0f} events/s ({CLIENTS} clients, gunicorn -w "
          f"{WEB_WORKERS}); CPU web {web_cpu:.1f} s, worker {worker_cpu:.1f} s "
          f"(-c {CONCURRENCY}), PostgreSQL {db_cpu:.1f} s (all databases); "
          f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)


def main() -> None:
    prepare_database()
    django_setup()
    deliveries = deliveries_create(DELIVERIES)
    todo = bodies(deliveries)
    web = start(str(VENV / "gunicorn"), "config.wsgi", "-b", f"127.0.0.1:{PORT}",
                "-w", WEB_WORKERS, "--log-level", "warning")
    worker = None
    try:
        wait_http(f"http://127.0.0.1:{PORT}/api/schema/")
        worker = start_worker()
        run(web, worker, todo, 2 * len(deliveries))
    finally:
        for proc in (worker, web):
            if proc is not None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        subprocess.run(["redis-cli", "-n", "13", "flushdb"], capture_output=True)


if __name__ == "__main__":
    main()
