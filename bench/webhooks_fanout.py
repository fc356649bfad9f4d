"""Webhook fan-out on the production shape: a real Celery worker (``-Q webhooks``) on
PostgreSQL and Redis POSTs signed messages to a local receiver answering in 1 ms.

    .venv/bin/python bench/webhooks_fanout.py            # both runs
    .venv/bin/python bench/webhooks_fanout.py profile    # in-process: CPU per delivery, cProfile
    BENCH_WH_MESSAGES=5000 BENCH_WH_CONCURRENCY=4 BENCH_WH_POOL=prefork ...
    BENCH_WH_DB=herald_bench_wh BENCH_WH_REDIS_DB=11     # the database and Redis db it uses
    BENCH_WH_RECEIVER=stdlib                             # http.server as the receiver

Run 1 ("fan-out"): one endpoint, K messages, deliveries/s from the first publish to the last
success, and the worker's CPU per delivery. Run 2 ("hang"): the same plus a second endpoint
whose receiver hangs (longer than the 15 s timeout); prints the healthy endpoint's rate
during the first 15 s of the hang. Messages are bulk-inserted and their
``webhooks.deliver_message`` tasks published as ``webhooks_emit`` does on commit.
"profile" runs the delivery tasks' function in this process, one batch after another (no
Celery worker), and prints its CPU per delivery and cProfile's top functions
(BENCH_WH_PROFILE_TOP, 25).
"""

import os
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.procs import cpu_with_children, database_migrated, worker_ready  # noqa: E402

VENV = ROOT / ".venv" / "bin"
DB = os.environ.get("BENCH_WH_DB", "herald_bench_wh")
REDIS_DB = os.environ.get("BENCH_WH_REDIS_DB", "11")
MESSAGES = int(os.environ.get("BENCH_WH_MESSAGES", "5000"))
HUNG_MESSAGES = int(os.environ.get("BENCH_WH_HUNG_MESSAGES", "200"))
CONCURRENCY = os.environ.get("BENCH_WH_CONCURRENCY", "4")
POOL = os.environ.get("BENCH_WH_POOL", "prefork")
ANSWER_SECONDS = float(os.environ.get("BENCH_WH_ANSWER_SECONDS", "0.001"))
# bench/receiver.py (7 µs of CPU per request alone), or "stdlib": http.server (67 µs alone,
# 130-160 µs per delivery here), the receiver of the figures before 2026-12-07.
RECEIVER = os.environ.get("BENCH_WH_RECEIVER", "lean")
HANG_SECONDS = 15.0
ENV = {
    **os.environ,
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB}",
    "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
    "WEBHOOKS_ALLOW_PRIVATE_URLS": "true",
    "LOG_LEVEL": "WARNING",
}


# --- the receiver (its own process, so it does not share the bench's GIL) -------------------
# bench/receiver.py by default; this one with BENCH_WH_RECEIVER=stdlib.

def serve(delay: float) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(600 if self.path.startswith("/hang") else delay)
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


# --- setup ----------------------------------------------------------------------------------

def prepare_database() -> None:
    database_migrated(DB, ENV)
    subprocess.run(["redis-cli", "-n", REDIS_DB, "flushdb"], check=True, capture_output=True)


def django_setup() -> None:
    os.environ.update(ENV)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def start_worker() -> subprocess.Popen:
    return worker_ready("-Q", "webhooks", "-c", CONCURRENCY, f"--pool={POOL}", env=ENV)


def messages_create(endpoint, count: int) -> list[str]:
    from django.utils import timezone

    from webhooks import catalogue
    from webhooks.models import Message
    from webhooks.services import _new_webhook_id

    now = timezone.now()
    rows = [Message(webhook_id=_new_webhook_id(), account_id=endpoint.account_id,
                    endpoint=endpoint, event_type=catalogue.TEST_EVENT, next_attempt_at=now,
                    payload=catalogue.test_payload(endpoint_id=str(endpoint.id), now=now))
            for _ in range(count)]
    Message.objects.bulk_create(rows, batch_size=1000)
    return [m.webhook_id for m in rows]


def endpoint_make(name: str, url: str):
    from accounts.services import account_create
    from webhooks.services import endpoint_create

    keys = account_create(name=name)
    return endpoint_create(account=keys.account, url=url)[0]


def succeeded(endpoint) -> int:
    from webhooks.models import Message

    return Message.objects.filter(endpoint=endpoint, status="succeeded").count()


# --- the runs -------------------------------------------------------------------------------

def publish(endpoint, webhook_ids: list[str]) -> None:
    """The tasks ``webhooks_emit`` publishes on commit (before the batched delivery: one per
    message; since: one per WEBHOOKS_BATCH_SIZE messages of an endpoint)."""
    from webhooks import services

    if hasattr(services, "messages_enqueue"):
        services.messages_enqueue(messages=[(i, endpoint.id) for i in webhook_ids])
        return
    from webhooks.tasks import deliver_message

    for webhook_id in webhook_ids:
        deliver_message.apply_async(args=[webhook_id])


def warm_up(url: str) -> None:
    """BENCH_WH_WARMUP messages (400: a batch per pool process) delivered before the timed
    run, so it measures warm processes (their first task opens a database connection and
    fills Django's caches, ~0.05 ms per delivery of a 5,000-message run), as a worker
    that has run for a while is; 0 measures from cold, as before 2026-12-07."""
    count = int(os.environ.get("BENCH_WH_WARMUP", "400"))
    if count <= 0:
        return
    endpoint = endpoint_make("Bench warm-up", url + "/hook")
    publish(endpoint, messages_create(endpoint, count))
    deadline = time.monotonic() + 60
    while succeeded(endpoint) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def run_fanout(url: str, worker: subprocess.Popen, receiver: subprocess.Popen) -> None:
    warm_up(url)
    endpoint = endpoint_make("Bench fan-out", url + "/hook")
    ids = messages_create(endpoint, MESSAGES)
    cpu = cpu_with_children(worker.pid), cpu_with_children(receiver.pid)
    started = time.monotonic()
    publish(endpoint, ids)
    while (done := succeeded(endpoint)) < MESSAGES and time.monotonic() - started < 600:
        time.sleep(0.05)
    seconds = time.monotonic() - started
    worker_cpu = cpu_with_children(worker.pid) - cpu[0]
    receiver_cpu = cpu_with_children(receiver.pid) - cpu[1]
    print(f"fan-out: {done}/{MESSAGES} delivered in {seconds:.1f} s = "
          f"{done / seconds:.0f} deliveries/s (worker {POOL} -c {CONCURRENCY}; CPU: worker "
          f"{worker_cpu / seconds:.0%}, receiver ({RECEIVER}) {receiver_cpu / seconds:.0%} of one"
          f" core; per delivery: worker {worker_cpu * 1000 / max(done, 1):.3f} ms, receiver "
          f"{receiver_cpu * 1000 / max(done, 1):.3f} ms)", flush=True)


def run_hang(url: str, worker: subprocess.Popen, receiver: subprocess.Popen) -> None:
    warm_up(url)
    healthy = endpoint_make("Bench healthy", url + "/hook")
    hung = endpoint_make("Bench hung", url + "/hang")
    hung_ids = messages_create(hung, HUNG_MESSAGES)
    ids = messages_create(healthy, MESSAGES)
    started = time.monotonic()
    publish(hung, hung_ids)  # the hung endpoint's tasks first: they reach the workers first
    publish(healthy, ids)
    samples = []
    while (done := succeeded(healthy)) < MESSAGES and time.monotonic() - started < 120:
        samples.append((time.monotonic() - started, done))
        time.sleep(0.1)
    seconds = time.monotonic() - started
    window = min(seconds, HANG_SECONDS)
    in_hang = done if seconds <= HANG_SECONDS else max(
        (n for t, n in samples if t <= HANG_SECONDS), default=0)
    print(f"hang: healthy endpoint {in_hang} delivered in the first {window:.1f} s of the hang "
          f"= {in_hang / window:.0f} deliveries/s; all {done}/{MESSAGES} in {seconds:.1f} s "
          f"({HUNG_MESSAGES} messages to an endpoint hanging > 15 s)", flush=True)


def run_profile(url: str, worker: None, receiver: subprocess.Popen) -> None:
    """The delivery task's function in this process, batch after batch, under cProfile: the
    process's CPU per delivery (without the profiler, then with it) and where it goes."""
    import cProfile
    import pstats

    from webhooks import delivery
    from webhooks.models import Message

    def drain(endpoint) -> tuple[int, float, float]:
        cpu, wall = time.process_time(), time.monotonic()
        while head := Message.objects.filter(endpoint=endpoint, status="pending").order_by(
                "created_at").values_list("webhook_id", flat=True).first():
            delivery.message_deliver(webhook_id=head)
        return succeeded(endpoint), time.process_time() - cpu, time.monotonic() - wall

    from celery import current_app

    current_app.loader.import_default_modules()  # as a worker has (the first publish would)
    delivery.message_deliver(webhook_id="warm-up")  # first queries
    for label, profiler in (("plain", None), ("cProfile", cProfile.Profile())):
        endpoint = endpoint_make(f"Bench profile {label}", url + "/hook")
        messages_create(endpoint, MESSAGES)
        if profiler is not None:
            profiler.enable()
        done, cpu, wall = drain(endpoint)
        if profiler is not None:
            profiler.disable()
        print(f"profile ({label}): {done}/{MESSAGES} delivered in {wall:.2f} s, CPU "
              f"{cpu * 1000 / max(done, 1):.3f} ms per delivery "
              f"({done / wall:.0f} deliveries/s in one process)", flush=True)
    top = int(os.environ.get("BENCH_WH_PROFILE_TOP", "25"))
    stats = pstats.Stats(profiler).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "serve":
        serve(float(sys.argv[2]))
        return
    prepare_database()
    django_setup()
    command = ([__file__, "serve", str(ANSWER_SECONDS)] if RECEIVER == "stdlib"
               else [str(ROOT / "bench" / "receiver.py"), "0", str(ANSWER_SECONDS)])
    receiver = subprocess.Popen([sys.executable, *command], stdout=subprocess.PIPE, text=True,
                                start_new_session=True)
    assert receiver.stdout is not None
    url = receiver.stdout.readline().strip()
    runs = sys.argv[1:] or ["fanout", "hang"]
    try:
        for run in runs:
            if run == "profile":
                run_profile(url, None, receiver)
                continue
            worker = start_worker()
            try:
                {"fanout": run_fanout, "hang": run_hang}[run](url, worker, receiver)
            finally:
                os.killpg(worker.pid, 9)
                worker.wait()
                subprocess.run(["redis-cli", "-n", REDIS_DB, "flushdb"], capture_output=True)
    finally:
        receiver.terminate()


if __name__ == "__main__":
    main()
