"""Scheduled sends (issue 19's performance line): 10,000 deliveries scheduled ahead cost the
worker no CPU while they wait, and each is sent within 10 s of its time once due.

    .venv/bin/python bench/scheduled.py [deliveries] [--json]

On its own fresh database (``BENCH_SCHED_DATABASE_URL``, default ``herald_bench_sched`` on
127.0.0.1) and Redis (``BENCH_SCHED_BROKER``, default db 13, flushed), in the production shape:
``celery -A config worker --pool=prefork -c 2`` and ``celery -A config beat`` (its
DatabaseScheduler, so the release tick every ``HERALD_SCHEDULE_TICK_SECONDS``), the tests' fake
SendGrid as its own process. This process queues the deliveries through
``comms.services.messages_queue`` with ``Message(send_at=…)`` (the front ends' path), their
times spread over ``BENCH_SCHED_SPREAD`` seconds (20; 0: all due at once) from
``BENCH_SCHED_LEAD`` seconds (70) ahead.

Figures:
- the worker's CPU (user + system of the worker and its pool processes, from /proc, exited
  children included) over ``BENCH_SCHED_WINDOW`` seconds (60) while the deliveries wait,
  beside the same window with no scheduled row, measured before queueing and again after they
  were all sent (two baselines: their difference is the noise);
- once due, each delivery's lateness (``sent_at`` minus its time): p50, p99, max, and when the
  last one was sent after the last one's time.

``--json``: a last line with the figures, for ``bench/run.py``'s table.
"""

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv" / "bin"
sys.path.insert(0, str(ROOT))
DELIVERIES = 10_000
LEAD = float(os.environ.get("BENCH_SCHED_LEAD", "70"))
SPREAD = float(os.environ.get("BENCH_SCHED_SPREAD", "20"))
# One sweep interval (HERALD_SWEEP_INTERVAL_SECONDS): each window then holds one round of
# beat's 60 s sweeps, whatever its phase (30 s windows held one round or none: +0.03 s).
WINDOW = float(os.environ.get("BENCH_SCHED_WINDOW", "60"))
WARM_UP = 8.0  # seconds before the first window (``warm_up``)
BROKER = os.environ.get("BENCH_SCHED_BROKER", "redis://127.0.0.1:6379/13")
DATABASE_URL = os.environ.get("BENCH_SCHED_DATABASE_URL",
                              "postgres://postgres@127.0.0.1:5432/herald_bench_sched")
ENV = {
    **os.environ,
    "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings"),
    "DATABASE_URL": DATABASE_URL,
    "CELERY_BROKER_URL": BROKER,
    "HERALD_DISPATCH_KICK_REDIS_URL": BROKER,
    "HERALD_EMAIL_PROVIDER": "sendgrid",
    "SENDGRID_API_KEY": "SG.bench",
    "LOG_LEVEL": "WARNING",
    "HERALD_DAILY_QUOTA_LIVE": "0",
}

from bench.procs import children, cpu_own, worker_ready  # noqa: E402

procs: list[subprocess.Popen] = []


def say(text: str) -> None:
    print(text, file=sys.stderr if "--json" in sys.argv else sys.stdout, flush=True)


def start(*args: str) -> subprocess.Popen:
    proc = subprocess.Popen(args, env=ENV, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    procs.append(proc)
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
    except ProcessLookupError:
        pass


def worker_cpu(worker: subprocess.Popen) -> float:
    """CPU seconds of the worker: its main process with the pool processes it has reaped,
    plus the live pool processes (a recycled one moves from the second sum to the first)."""
    return cpu_own(worker.pid, reaped=True) + sum(cpu_own(c) for c in children(worker.pid))


def window(worker: subprocess.Popen, beat: subprocess.Popen, seconds: float) -> dict:
    """The worker's (and beat's) CPU over ``seconds`` of wall time, this process asleep."""
    cpu, beat_cpu = worker_cpu(worker), cpu_own(beat.pid)
    started = time.monotonic()
    time.sleep(seconds)
    return {"seconds": time.monotonic() - started, "worker": worker_cpu(worker) - cpu,
            "beat": cpu_own(beat.pid) - beat_cpu}


def warm_up() -> None:
    """Every beat task run a few times before the first window, so each pool process has
    run each once (imports, first queries): otherwise the first sweep a process runs costs
    more in whichever window it falls."""
    from django.conf import settings

    from config.celery import app

    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        for _ in range(4):
            app.send_task(entry["task"])
    time.sleep(WARM_UP)


def prepare() -> None:
    from config import database

    database.database_ensure(DATABASE_URL, fresh=True)
    subprocess.run(["redis-cli", "-u", BROKER, "flushdb"], check=True, capture_output=True)
    subprocess.run([str(VENV / "python"), "manage.py", "migrate", "-v", "0"], cwd=ROOT,
                   env=ENV, check=True)


def queue(count: int, account_id, template_id) -> tuple[dict, float]:
    """``count`` scheduled emails through ``messages_queue`` (batches of 1,000, each in its
    transaction as a front end's); returns id → its time, and the seconds it took."""
    from django.db import transaction
    from django.utils import timezone

    from comms.messages import Message
    from comms.services import messages_queue

    started = time.monotonic()
    first = timezone.now() + timedelta(seconds=LEAD)
    due: dict = {}
    for start_at in range(0, count, 1000):
        messages = [Message(account_id=account_id, mode="live", recipient=f"g{i}@example.com",
                            template_id=template_id, to_name=f"Guest {i}",
                            context={"firstName": f"Guest{i}", "event": {"name": "Gala"}},
                            correlation_id=f"sched-{i}",
                            send_at=first + timedelta(seconds=SPREAD * i / count))
                    for i in range(start_at, min(start_at + 1000, count))]
        with transaction.atomic():
            ids = messages_queue(messages)
        due.update(zip(ids, (m.send_at for m in messages), strict=True))
    return due, time.monotonic() - started


def wait_sent(ids: list, timeout: float) -> None:
    from comms.models import Delivery

    deadline = time.monotonic() + timeout
    rows = Delivery.objects.filter(id__in=ids, sent_at__isnull=False)
    while time.monotonic() < deadline and rows.count() < len(ids):
        time.sleep(0.5)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def lateness(due: dict) -> dict:
    from comms.models import Delivery

    sent = dict(Delivery.objects.filter(id__in=list(due)).values_list("id", "sent_at"))
    statuses = list(Delivery.objects.filter(id__in=list(due)).values_list("status", flat=True))
    late = [(sent[pk] - at).total_seconds() for pk, at in due.items() if sent.get(pk)]
    done = [at for at in sent.values() if at]
    last: datetime = max(due.values())
    return {
        "sent": len(late), "statuses": {s: statuses.count(s) for s in set(statuses)},
        "p50": percentile(late, 0.5) if late else None,
        "p99": percentile(late, 0.99) if late else None,
        "max": max(late) if late else None, "min": min(late) if late else None,
        "last_after_last_due": (max(done) - last).total_seconds() if done else None,
        "first_to_last": (max(done) - min(due.values())).total_seconds() if done else None,
    }


def run(count: int) -> dict:
    os.environ.update(ENV)  # this process queues on the same database and broker
    prepare()
    import django

    django.setup()
    from accounts.services import account_create
    from templates.services import template_create

    account = account_create(name=f"Sched {uuid.uuid4().hex[:6]}").account
    template = template_create(account=account, name="Reminder",
                               subject="Tonight: {{ event.name }}",
                               html_body="<p>Hi {{ firstName }}, see you at {{ event.name }}.</p>",
                               text_body="Hi {{ firstName }}, see you at {{ event.name }}.")
    fake = start(str(VENV / "python"), "bench/fake_sendgrid_server.py", "SG.bench")
    ENV["SENDGRID_API_HOST"] = fake.stdout.readline().strip()
    worker = worker_ready("--pool=prefork", "-c", "2", env=ENV)
    procs.append(worker)
    beat = start(str(VENV / "celery"), "-A", "config", "beat", "-l", "warning",
                 "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler")
    warm_up()
    say(f"baseline window ({WINDOW:.0f} s, nothing scheduled)…")
    before = window(worker, beat, WINDOW)
    say(f"queueing {count:,} scheduled {LEAD:.0f} to {LEAD + SPREAD:.0f} s ahead…")
    due, queued = queue(count, account.id, template.id)
    margin = LEAD - queued - 2
    if margin < WINDOW:
        raise SystemExit(f"queueing took {queued:.1f} s: raise BENCH_SCHED_LEAD above "
                         f"{WINDOW + queued + 2:.0f} s or lower BENCH_SCHED_WINDOW")
    time.sleep(1)
    say(f"window with {count:,} scheduled…")
    waiting = window(worker, beat, WINDOW)
    until = (min(due.values()) - datetime.now(tz=min(due.values()).tzinfo)).total_seconds()
    say(f"waiting {until:.0f} s for them to fall due, then for the sends…")
    time.sleep(max(until, 0))
    cpu, started = (worker_cpu(worker), cpu_own(fake.pid)), time.monotonic()
    pool = {pid: cpu_own(pid) for pid in children(worker.pid)}
    wait_sent(list(due), timeout=SPREAD + 120)
    drain = {"worker": worker_cpu(worker) - cpu[0], "seconds": time.monotonic() - started,
             "sendgrid": cpu_own(fake.pid) - cpu[1],
             "pool": [round(cpu_own(pid) - used, 2) for pid, used in pool.items()]}
    figures = lateness(due)
    time.sleep(5)  # the last batch's webhooks and events settle
    say(f"second baseline window ({WINDOW:.0f} s, nothing scheduled)…")
    after = window(worker, beat, WINDOW)
    return {"deliveries": count, "queued_seconds": queued, "lead": LEAD, "spread": SPREAD,
            "window": WINDOW, "before": before, "waiting": waiting, "after": after,
            "drain": drain,
            **figures, "tick": float(os.environ.get("HERALD_SCHEDULE_TICK_SECONDS", "2")),
            "load": os.getloadavg()[0]}


def report(result: dict) -> str:
    base = (result["before"]["worker"], result["after"]["worker"])
    delta = result["waiting"]["worker"] - sum(base) / 2
    lines = [
        f"{result['deliveries']:,} emails scheduled {result['lead']:.0f}-"
        f"{result['lead'] + result['spread']:.0f} s ahead (queued in "
        f"{result['queued_seconds']:.1f} s), worker prefork -c 2 + beat, "
        f"tick {result['tick']:.0f} s; load average {result['load']:.1f}",
        f"worker CPU over {result['window']:.0f} s: {result['waiting']['worker']:.2f} s with "
        f"them waiting, {base[0]:.2f} s / {base[1]:.2f} s without (before / after): "
        f"difference {delta:+.2f} s (beat {result['waiting']['beat']:.2f} s vs "
        f"{result['before']['beat']:.2f} s)",
    ]
    drain = result["drain"]
    lines.append(f"worker CPU from the first one's time to the last sent: "
                 f"{drain['worker']:.2f} s over {drain['seconds']:.1f} s "
                 f"({drain['worker'] / max(result['sent'], 1) * 1000:.2f} ms per email; pool "
                 f"processes {' + '.join(f'{c:.2f}' for c in drain.get('pool', []))} s; "
                 f"meanwhile the fake SendGrid {drain['sendgrid']:.2f} s)")
    if result["max"] is None:
        lines.append(f"none sent: {result['statuses']}")
    else:
        lines.append(
            f"once due, {result['sent']:,} sent ({result['statuses']}): lateness p50 "
            f"{result['p50']:.2f} s, p99 {result['p99']:.2f} s, max {result['max']:.2f} s "
            f"(min {result['min']:.2f} s); the last sent {result['last_after_last_due']:.2f} s "
            f"after the last one's time, {result['first_to_last']:.1f} s after the first's")
    return "\n".join(lines)


def row(result: dict) -> tuple[str, str, str]:
    """``bench/run.py``'s table row: scenario, measured, target."""
    base = (result["before"]["worker"], result["after"]["worker"])
    name = (f"Scheduled sends: {result['deliveries']:,} emails due {result['lead']:.0f}-"
            f"{result['lead'] + result['spread']:.0f} s ahead (worker prefork -c 2 + beat, "
            f"tick {result['tick']:.0f} s)")
    target = "worker CPU while waiting ≈ without (noise); once due, all sent within 10 s"
    if result["max"] is None:
        return name, f"none sent: {result['statuses']}", target
    return name, (
        f"worker CPU over {result['window']:.0f} s: {result['waiting']['worker']:.2f} s "
        f"waiting vs {base[0]:.2f} / {base[1]:.2f} s with none; lateness p50 "
        f"{result['p50']:.1f} s, p99 {result['p99']:.1f} s, max {result['max']:.1f} s "
        f"({result['sent']:,} sent; load average {result['load']:.1f})"), target


def main() -> None:
    numbers = [arg for arg in sys.argv[1:] if not arg.startswith("--")]
    try:
        result = run(int(numbers[0]) if numbers else DELIVERIES)
    finally:
        for proc in procs:
            stop(proc)
    say(report(result))
    if "--json" in sys.argv:
        print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
