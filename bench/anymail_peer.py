"""Issue #20's second peer: the same emails sent by the Celery task per email most Django
shops write by hand (`bench/anymail_tasks.py`: django-anymail's SendGrid backend) and by
Herald's batched SendGrid path, both into the fake SendGrid, with the same worker shape;
timed until the fake has them all; prints a table and the ratio.

    .venv/bin/python bench/anymail_peer.py [--emails 10000] [--json]

Each side, all of it inside the timed window (worker launch → last email accepted by the fake,
so both pay their start-up), with ``celery worker --pool=prefork -c 2`` (PEER_SENDGRID_WORKERS):
- the peer: n ``anymail_peer.send_ticket`` tasks published before the clock starts, one
  SendGrid request per email;
- Herald: n queued Deliveries (`bench/peer.py`'s ``herald_queue``: one template, a ``name``
  per recipient, send tasks on commit) on a database of its own (PEER_DATABASE + ``_sendgrid``,
  dropped and rebuilt), sent by ``celery -A config worker`` with HERALD_EMAIL_PROVIDER=sendgrid:
  one request of up to HERALD_DISPATCH_BATCH_SIZE personalizations per batch (the default
  100 unless the environment sets it).

The fake runs in this process (a thread per request) and counts accepted recipients; its
CPU is this process's. Broker: PEER_BROKER (redis://127.0.0.1:6379/13), flushed before each
side. Exits 1 if either side lost or duplicated an email.
"""

import argparse
import collections
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import peer  # noqa: E402
from tests.fakes.sendgrid_api import FakeSendGrid  # noqa: E402

VENV = ROOT / ".venv" / "bin"
BROKER = peer.BROKER
DB = os.environ.get("PEER_DATABASE", "herald_bench_peer") + "_sendgrid"
WORKERS = os.environ.get("PEER_SENDGRID_WORKERS", "2")
API_KEY = "SG.bench"


class Counts:
    """What the fake accepted, in the shape `bench/peer.py`'s helpers read from an SMTP
    server: ``messages`` (emails, one per personalization's recipient), ``connections``
    (here: accepted requests), ``recipients``, first/last times, the fake's CPU."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.messages = self.connections = 0
        self.recipients: collections.Counter[str] = collections.Counter()
        self.first = self.last = 0.0

    def record(self, body: dict) -> None:
        emails = [to["email"] for p in body["personalizations"] for to in p["to"]]
        with self.lock:
            self.recipients.update(emails)
            self.connections += 1
            self.messages += len(emails)
            self.last = time.monotonic()
            self.first = self.first or self.last

    def cpu(self) -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime


class CountingSendGrid(FakeSendGrid):
    """The tests' fake SendGrid, counting what it accepts as it accepts it."""

    def __init__(self, counts: Counts) -> None:
        super().__init__(api_key=API_KEY)
        self.counts = counts

    def _handle_mail_send(self, raw: bytes, headers):
        status, body, extra = super()._handle_mail_send(raw, headers)
        if status == 202:
            self.counts.record(json.loads(raw))
        return status, body, extra


def env_for(fake_url: str, settings: str) -> dict[str, str]:
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/herald")
    return {**os.environ, "DATABASE_URL": urlunsplit(urlsplit(url)._replace(path=f"/{DB}")),
            "DJANGO_SETTINGS_MODULE": settings, "CELERY_BROKER_URL": BROKER,
            "HERALD_EMAIL_PROVIDER": "sendgrid", "SENDGRID_API_KEY": API_KEY,
            "SENDGRID_API_HOST": fake_url, "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}


def flush_broker() -> None:
    subprocess.run(["redis-cli", "-n", BROKER.rsplit("/", 1)[1], "flushdb"], check=True,
                   capture_output=True)


def worker(app: str) -> tuple[str, ...]:
    return (str(VENV / "celery"), "-A", app, "worker", "--pool=prefork", "-c", WORKERS,
            "-l", "warning", "--without-gossip", "--without-mingle")


def bench_anymail(n: int, counts: Counts, fake_url: str) -> dict:
    env = env_for(fake_url, "bench.anymail_settings")
    flush_broker()
    peer.run(env, str(VENV / "python"), __file__, "_anymail_queue", str(n))
    timing = peer.timed_send(counts, n, env, "bench_peer_anymail.log",
                             *worker("bench.anymail_tasks"))
    return peer._result("Celery task per email + anymail", n, counts, timing, {})


def bench_herald(n: int, counts: Counts, fake_url: str) -> dict:
    env = env_for(fake_url, "config.settings")
    peer.recreate(env["DATABASE_URL"])
    flush_broker()
    python = str(VENV / "python")
    peer.run(env, python, "manage.py", "migrate", "-v", "0")
    peer.run(env, python, str(ROOT / "bench" / "peer.py"), "_herald_queue", str(n))
    timing = peer.timed_send(counts, n, env, "bench_peer_herald_sendgrid.log",
                             *worker("config"))
    stored = json.loads(peer.run(env, python, str(ROOT / "bench" / "peer.py"),
                                 "_herald_status"))
    return peer._result("Herald (batched)", n, counts, timing, stored)


def anymail_queue(n: int) -> None:
    """n tasks, one per email, published as the application would on its way."""
    from bench.anymail_tasks import send_ticket

    for i in range(n):
        send_ticket.delay(f"user{i}@example.com", f"User {i}")


def table(results: list[dict]) -> str:
    rows = ["| system | emails | seconds | emails/s | SendGrid requests | first→last email |"
            " CPU ms/email: sender, fake SendGrid |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        rows.append(f"| {r['system']} | {r['messages']:,}/{r['emails']:,} | {r['seconds']:.1f}"
                    f" | {r['rate']:.0f} | {r['connections']:,} | {r['first_to_last']:.1f} s | "
                    f"{r['sender_cpu'] * 1000 / r['emails']:.2f}, "
                    f"{r['server_cpu'] * 1000 / r['emails']:.2f} |")
    return "\n".join(rows) + "\n\n" + summary(results)


def summary(results: list[dict]) -> str:
    anymail, herald = results
    ratio = herald["rate"] / anymail["rate"] if anymail["rate"] else 0.0
    return (f"Herald / task per email: **{ratio:.1f}x**, both `celery worker --pool=prefork -c "
            f"{WORKERS}`, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the "
            "end (the machine is shared: other work skews both)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emails", type=int, default=10_000)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    peer.VAR.mkdir(exist_ok=True)
    if not shutil.which("redis-cli"):
        raise SystemExit(f"redis-cli is needed (the Celery broker is {BROKER})")
    counts = Counts()
    fake = CountingSendGrid(counts).start()
    try:
        results = [bench_anymail(args.emails, counts, fake.url),
                   bench_herald(args.emails, counts, fake.url)]
    finally:
        fake.stop()
    text = table(results)
    problems = peer.problems(results)
    if args.json:
        print(json.dumps({"table": text, "results": results, "problems": problems}))
    else:
        print(text)
        for problem in problems:
            print("FAILED:", problem, file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_anymail_queue":
        anymail_queue(int(sys.argv[2]))
    else:
        main()
