"""Issue #10's peer, issue #20's fair race: the same emails sent by django-post-office and by
Herald through SMTP to one receiving server, timed until the server has them all; prints a
table and the ratio.

    .venv/bin/python bench/peer.py [--emails 10000] [--sink smtp-sink|aiosmtpd] [--json]
        [--rounds R]   # R races, the order alternating: the host's load drifts between sides
    .venv/bin/python bench/peer.py --herald-only [--sink …]   # Herald's side alone
    .venv/bin/python bench/peer.py profile [--batch 100]     # cProfile of one Herald batch
    .venv/bin/python bench/peer.py conversation [--batches 50]  # the SMTP conversation alone

The database server is DATABASE_URL's, or without it the checkout's embedded one (var/pg,
config/database.py); post_office on ``herald_bench_peer``, Herald on
``herald_bench_peer_herald``, both dropped and rebuilt on each run.

What each side does, all of it inside the timed window (process launch → last message at the
server, so interpreter and Django start-up count for both):
- post_office: ``manage.py send_queued_mail --processes P`` (BATCH_SIZE, THREADS_PER_PROCESS
  from bench/peer_settings.py) over emails queued with ``mail.send_many`` from one
  EmailTemplate with ``render_on_delivery=True``, so rendering happens while sending, as in
  Herald.
- Herald: a Celery worker (prefork, as `make bench` starts it, broker PEER_BROKER) draining
  queued Deliveries bulk created as emails/services.py does, with one send task per dispatch
  batch, HERALD_EMAIL_PROVIDER=smtp.

Knobs: PEER_DATABASE (herald_bench_peer; Herald's is its name + ``_herald``),
PEER_PO_PROCESSES (2), PEER_PO_BATCH_SIZE (1000), PEER_PO_THREADS (5),
BENCH_WORKER_CONCURRENCY (4), PEER_BROKER (redis://127.0.0.1:6379/13). Exits 1 if either
side lost or duplicated an email.

The receiving server (``--sink``): ``smtp-sink`` (the default) is Postfix's C test server
(Debian's postfix package, /usr/sbin/smtp-sink; only the binary, never the postfix daemon),
which advertises PIPELINING (neither sender uses it: both go through smtplib) and spends
0.1-0.3 ms of CPU per message, its dump file included, so the race measures the senders;
``aiosmtpd`` is the Python server of the first peer row (~1 ms of CPU per message on the
same cores, so that row measures the sink as much as the senders), kept to
report its ratio beside. smtp-sink counts messages and ended sessions on its stdout (``-c``,
one update per "." and per session end) and appends every transaction to a dump file
(``-D``) whose ``X-Rcpt-Args`` lines give the recipients, read once the run is over.
"""

import argparse
import collections
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv" / "bin"
VAR = ROOT / "var"
BROKER = os.environ.get("PEER_BROKER", "redis://127.0.0.1:6379/13")
PO_DB = os.environ.get("PEER_DATABASE", "herald_bench_peer")
HERALD_DB = f"{PO_DB}_herald"
PO_PROCESSES = os.environ.get("PEER_PO_PROCESSES", "2")
WORKER_CONCURRENCY = os.environ.get("BENCH_WORKER_CONCURRENCY", "4")
CHUNK = 1000
SUBJECT = "Your ticket, {{ name }}"
TEXT = "Hi {{ name }}, your ticket for the Spring Gala is attached. See you there."
HTML = "<p>Hi {{ name }},</p><p>your ticket for the <b>Spring Gala</b> is attached.</p>"
FROM = "tickets@herald.localhost"


# --- the SMTP servers -----------------------------------------------------------------------

class CountingHandler:
    """aiosmtpd's handler: counts connections (EHLO), messages and recipients, and throws the
    mail away. It runs in this process's thread, so its CPU is this process's."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.connections = self.messages = 0
        self.recipients: collections.Counter[str] = collections.Counter()
        self.first = self.last = 0.0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        self.connections += 1
        return responses

    async def handle_DATA(self, server, session, envelope):
        self.last = time.monotonic()
        self.first = self.first or self.last
        self.messages += 1
        self.recipients.update(envelope.rcpt_tos)
        return "250 OK"

    def cpu(self) -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime


class SmtpSink:
    """Postfix's ``smtp-sink`` in a process of its own: the same counts as
    ``CountingHandler`` (messages and first/last times from its ``-c`` counters, read as they
    come; connections as the sessions that ended; recipients from its ``-D`` dump), so the
    rest of the bench reads either server alike."""

    COUNTERS = re.compile(rb"sess=(\d+) quit=\d+ mesg=(\d+)")

    def __init__(self) -> None:
        binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        if not os.access(binary, os.X_OK):
            raise SystemExit("smtp-sink is needed: DEBIAN_FRONTEND=noninteractive apt-get "
                             "install -y postfix (only /usr/sbin/smtp-sink is used)")
        self.folder = Path(tempfile.mkdtemp(prefix="herald-smtp-sink-"))
        self.folder.chmod(0o777)  # written by "nobody" once smtp-sink drops root
        self.dump = self.folder / "dump"
        self.port = _free_port()
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(
            [binary, "-c", "-D", str(self.dump), *user, f"127.0.0.1:{self.port}", "1000"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self._sessions = self._messages = 0
        self.base_sessions = self.base_messages = 0
        self.first = self.last = 0.0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        _wait_port(self.port, self.proc)

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self.proc.stdout.fileno(), 65536):
            now = time.monotonic()
            buffer += chunk
            *done, buffer = re.split(rb"[\r\n]", buffer)
            for line in reversed(done):
                if match := self.COUNTERS.search(line):
                    sessions, messages = int(match.group(1)), int(match.group(2))
                    if messages != self._messages:
                        self.last = now
                        self.first = self.first or now
                    self._sessions, self._messages = sessions, messages
                    break

    def reset(self) -> None:
        self.base_sessions, self.base_messages = self._sessions, self._messages
        self.first = self.last = 0.0
        self.dump.write_bytes(b"")  # smtp-sink appends: each run reads only its own
        self.dump.chmod(0o666)  # smtp-sink, as "nobody", exits if it cannot append

    @property
    def messages(self) -> int:
        return self._messages - self.base_messages

    @property
    def connections(self) -> int:
        return self._sessions - self.base_sessions

    @property
    def recipients(self) -> collections.Counter[str]:
        found: collections.Counter[str] = collections.Counter()
        with open(self.dump, "rb") as dump:
            for line in dump:
                if line.startswith(b"X-Rcpt-Args: <"):
                    found[line[14:].split(b">", 1)[0].decode()] += 1
        return found

    def cpu(self) -> float:
        sys.path.insert(0, str(ROOT))
        from bench.procs import cpu_own

        return cpu_own(self.proc.pid)

    def stop(self) -> None:
        stop(self.proc)
        shutil.rmtree(self.folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"smtp-sink exited {proc.returncode}: "
                             f"{proc.stdout.read().decode(errors='replace')[-500:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"smtp-sink did not listen on {port}")


def smtp_start() -> tuple[object, CountingHandler]:
    from aiosmtpd.controller import Controller

    handler = CountingHandler()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port,
                            server_hostname="bench.localhost", ready_timeout=10)
    controller.start()
    return controller, handler


def _bound_port(controller) -> int:
    return controller.port


def smtp_serve() -> None:
    """The counting server alone (for the profile, so that it does not share the profiled
    process): prints its port, and its counts once stdin closes."""
    controller, handler = smtp_start()
    print(controller.port, flush=True)
    sys.stdin.read()
    controller.stop()
    print(json.dumps({"connections": handler.connections, "messages": handler.messages}))


# --- processes and databases ----------------------------------------------------------------

def databases() -> tuple[str, str, str]:
    """(server kind, post_office DATABASE_URL, Herald DATABASE_URL), on Herald's server."""
    url, kind = os.environ.get("DATABASE_URL", ""), "PostgreSQL"
    if not url:
        sys.path.insert(0, str(ROOT))
        from config import database

        url, kind = database.url(), "PostgreSQL (embedded)"
    parts = urlsplit(url)
    return (kind, urlunsplit(parts._replace(path=f"/{PO_DB}")),
            urlunsplit(parts._replace(path=f"/{HERALD_DB}")))


def recreate(url: str) -> None:
    sys.path.insert(0, str(ROOT))
    from config import database

    database.database_ensure(url, fresh=True)


def env_for(database_url: str, smtp_port: int, settings: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": settings,
            "CELERY_BROKER_URL": BROKER, "HERALD_EMAIL_PROVIDER": "smtp",
            "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp_port), "EMAIL_TIMEOUT": "15",
            "EMAIL_USE_TLS": "false", "EMAIL_USE_SSL": "false", "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT)}


def run(env: dict, *args: str) -> str:
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def start(env: dict, log: str, *args: str) -> subprocess.Popen:
    """A process group of its own; its output goes to var/<log> (a pipe nobody reads while
    it runs would fill up and block it)."""
    with open(VAR / log, "w") as out:
        return subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def wait_for_mail(handler, target: int, proc: subprocess.Popen,
                  timeout: float = 300, stall: float = 30) -> None:
    """Until the server has ``target`` messages, the sender died, or nothing came for
    ``stall`` seconds; then a second more, to catch duplicates sent late."""
    started = seen_at = time.monotonic()
    seen = 0
    while handler.messages < target and time.monotonic() - started < timeout:
        time.sleep(0.1)
        if handler.messages != seen:
            seen, seen_at = handler.messages, time.monotonic()
        if proc.poll() is not None and proc.returncode != 0:
            break
        if handler.messages and time.monotonic() - seen_at > stall:
            break
    time.sleep(1)


# --- the two sides --------------------------------------------------------------------------

def bench_post_office(n: int, url: str, handler, port: int) -> dict:
    env = env_for(url, port, "bench.peer_settings")
    recreate(url)
    python = str(VENV / "python")
    run(env, python, "manage.py", "migrate", "post_office", "-v", "0")
    run(env, python, __file__, "_po_queue", str(n))
    timing = timed_send(handler, n, env, "bench_peer_post_office.log", python, "manage.py",
                        "send_queued_mail", "--processes", PO_PROCESSES, "--lockfile",
                        str(VAR / "bench_peer_post_office"))
    stored = json.loads(run(env, python, __file__, "_po_status"))
    return _result("django-post-office", n, handler, timing, stored)


def bench_herald(n: int, url: str, handler, port: int) -> dict:
    env = env_for(url, port, "config.settings")
    recreate(url)
    subprocess.run(["redis-cli", "-n", BROKER.rsplit("/", 1)[1], "flushdb"], check=True,
                   capture_output=True)
    python = str(VENV / "python")
    run(env, python, "manage.py", "migrate", "-v", "0")
    run(env, python, __file__, "_herald_queue", str(n))
    timing = timed_send(handler, n, env, "bench_peer_herald.log", str(VENV / "celery"), "-A",
                        "config", "worker", "-l", "warning", "-c", WORKER_CONCURRENCY,
                        "--without-gossip", "--without-mingle")
    stored = json.loads(run(env, python, __file__, "_herald_status"))
    return _result("Herald", n, handler, timing, stored)


def timed_send(handler, n: int, env: dict, log: str, *args: str) -> dict:
    """Launch the sender, wait for the mail, stop it (a one-shot command is left to finish).
    CPU seconds: the sender's process tree (reaped children included) and the SMTP server's
    (aiosmtpd: this process, whose main thread sleeps meanwhile; smtp-sink: its process);
    not PostgreSQL's."""
    handler.reset()
    before, server_before = resource.getrusage(resource.RUSAGE_CHILDREN), handler.cpu()
    started = time.monotonic()
    proc = start(env, log, *args)
    try:
        wait_for_mail(handler, n, proc)
        if "worker" not in args:
            proc.wait(timeout=60)
    finally:
        stop(proc)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    sender = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"started": started, "sender_cpu": sender, "server_cpu": handler.cpu() - server_before,
            "log": log}


def _result(system: str, n: int, handler, timing: dict, stored: dict) -> dict:
    expected = {f"user{i}@example.com" for i in range(n)}
    recipients = handler.recipients
    missing = len(expected - set(recipients))
    duplicated = sum(1 for c in recipients.values() if c > 1)
    seconds = (handler.last or time.monotonic()) - timing["started"]
    return {
        "system": system, "emails": n, "messages": handler.messages,
        "recipients": sum(recipients.values()), "connections": handler.connections,
        "missing": missing, "duplicated": duplicated, "seconds": seconds,
        "rate": handler.messages / seconds if seconds else 0.0,
        "first_to_last": handler.last - handler.first if handler.first else 0.0,
        "sender_cpu": timing["sender_cpu"], "server_cpu": timing["server_cpu"],
        "stored": stored, "log": (VAR / timing["log"]).read_text()[-2000:],
    }


# --- in-process helpers (run as subprocesses, each with its own settings) -------------------

def _django() -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def po_queue(n: int) -> None:
    """n emails from one EmailTemplate, rendered on delivery, in send_many chunks."""
    _django()
    from post_office import mail
    from post_office.models import EmailTemplate

    template = EmailTemplate.objects.create(name="peer-ticket", subject=SUBJECT, content=TEXT,
                                            html_content=HTML)
    for first in range(0, n, CHUNK):
        mail.send_many([{"sender": f"Herald <{FROM}>", "recipients": [f"user{i}@example.com"],
                         "template": template, "context": {"name": f"User {i}"},
                         "render_on_delivery": True}
                        for i in range(first, min(first + CHUNK, n))])


def po_status() -> None:
    _django()
    from django.db.models import Count
    from post_office.models import Email

    print(json.dumps({str(row["status"]): row["n"] for row in
                      Email.objects.values("status").annotate(n=Count("id"))}))


def herald_queue(n: int) -> None:
    """n queued Deliveries from one MessageTemplate with a per-recipient ``name``, bulk created
    in chunks as emails/services.py does, with one send task per dispatcher batch on commit
    (each claims its row and the oldest due rows behind it)."""
    _django()
    from django.conf import settings
    from django.db import transaction

    from accounts.services import account_create
    from comms.models import Delivery
    from comms.queueing import enqueue
    from templates.services import template_create

    account = account_create(name="Peer bench").account
    template = template_create(account=account, name="Peer ticket", subject=SUBJECT,
                               html_body=HTML, text_body=TEXT)
    step = max(settings.HERALD_DISPATCH_BATCH_SIZE - 1, 1)
    for first in range(0, n, CHUNK):
        with transaction.atomic():
            rows = Delivery.objects.bulk_create([
                Delivery(account=account, template=template, recipient=f"user{i}@example.com",
                         context={"name": f"User {i}"})
                for i in range(first, min(first + CHUNK, n))])
            heads = [str(d.id) for d in rows[::step]]
            transaction.on_commit(lambda heads=heads: [enqueue(h) for h in heads])


def herald_status() -> None:
    _django()
    from django.db.models import Count

    from comms.models import Delivery

    print(json.dumps({row["status"]: row["n"] for row in
                      Delivery.objects.values("status").annotate(n=Count("id"))}))


def profile(batch: int) -> None:
    """One Herald dispatch batch (claim, render, SMTP, record) in-process, on Herald's database
    server (a database of its own), against the counting server in another
    process: a warm-up batch, a timed batch, then a batch under cProfile."""
    import cProfile
    import pstats

    server = subprocess.Popen([sys.executable, __file__, "_smtp_serve"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    port = int(server.stdout.readline())
    kind, _, url = databases()
    url = url.replace(HERALD_DB, HERALD_DB + "_profile")
    os.environ.update(env_for(url, port, "config.settings"))
    os.environ["HERALD_DISPATCH_BATCH_SIZE"] = str(batch)
    recreate(url)
    run(dict(os.environ), str(VENV / "python"), "manage.py", "migrate", "-v", "0")
    _django()
    from unittest import mock

    from comms import dispatch
    from comms.models import Delivery

    with mock.patch("comms.queueing.enqueue"):  # rows only: this calls dispatch itself
        herald_queue(3 * batch)

    cpu: list[float] = []

    def one_batch() -> float:
        head = (Delivery.objects.filter(status="queued").order_by("created_at")
                .values_list("id", flat=True).first())
        started, cpu_started = time.perf_counter(), time.process_time()
        dispatch.delivery_dispatch(delivery_id=str(head))
        cpu.append(time.process_time() - cpu_started)
        return time.perf_counter() - started

    warm_up, timed = one_batch(), one_batch()
    # BENCH_TIMER=cpu: cProfile in this process's CPU time (waits for the servers left out).
    timer = time.process_time if os.environ.get("BENCH_TIMER") == "cpu" else time.perf_counter
    profiler = cProfile.Profile(timer)
    profiled = profiler.runcall(one_batch)
    counts = json.loads(server.communicate("")[0])
    print(f"{kind}, batches of {batch}: warm-up {warm_up * 1000:.0f} ms, then "
          f"{timed * 1000:.0f} ms ({timed * 1000 / batch:.2f} ms/email, CPU "
          f"{cpu[1] * 1000 / batch:.2f} ms/email), under cProfile "
          f"{profiled * 1000:.0f} ms; {counts['messages']} messages over "
          f"{counts['connections']} SMTP connections")
    pstats.Stats(profiler).sort_stats(os.environ.get("BENCH_SORT", "cumulative")).print_stats(40)


def conversation(batches: int) -> None:
    """The SMTP provider's conversation alone into smtp-sink: ``batches`` sessions of 100
    messages through ``send_batch`` (no database), each way in its own process, three rounds:
    smtplib's ``sendmail`` (as before), Herald's commands one at a time (PIPELINING
    hidden) and pipelined. Prints CPU and wall µs per email."""
    for _ in range(3):
        for way in ("sendmail", "one-at-a-time", "pipelined"):
            print(run({**os.environ, "PYTHONPATH": str(ROOT)}, sys.executable, __file__,
                      "_conversation", way, str(batches)).strip(), flush=True)


def _conversation(way: str, batches: int) -> None:
    import smtplib

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    _django()
    from comms.providers import smtp
    from tests.fakes.smtp_server import message

    if way == "sendmail":
        smtp._deliver = lambda connection, out: connection.connection.sendmail(
            out.sender, [out.recipient], out.data)
    elif way == "one-at-a-time":
        offered = smtplib.SMTP.has_extn
        smtplib.SMTP.has_extn = lambda self, name: (name.lower() != "pipelining"
                                                    and offered(self, name))
    # smtp-sink without its counters and dump: SmtpSink's reader thread would be this
    # process's CPU too.
    port = _free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    sink = subprocess.Popen([shutil.which("smtp-sink") or "/usr/sbin/smtp-sink", *user,
                             f"127.0.0.1:{port}", "1000"], start_new_session=True)
    _wait_port(port, sink)
    provider = smtp.SmtpProvider(lambda: smtp.SmtpConfig(host="127.0.0.1", port=port))
    emails = [message(delivery_id=f"d-{i}", to_email=f"user{i}@example.com", text=TEXT * 3,
                      html=HTML * 3) for i in range(100)]
    try:
        provider.send_batch(emails)  # warm-up
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(batches):
            outcomes = provider.send_batch(emails)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        stop(sink)
    assert all(type(o).__name__ == "SendResult" for o in outcomes), outcomes[:1]
    n = 100 * batches
    print(f"{way}: {cpu / n * 1e6:.0f} µs CPU/email, {wall / n * 1e6:.0f} µs wall/email")


# --- report ---------------------------------------------------------------------------------

SINKS = {"smtp-sink": ("Postfix smtp-sink", "target ≥ 3x"),
         "aiosmtpd": ("aiosmtpd", "beside the smtp-sink race; the server's CPU dominates")}


def table(kind: str, results: list[dict], sink: str = "smtp-sink",
          runs: list[dict] | None = None) -> str:
    """The two sides' results (with ``runs``: every run, in order, then the ratio of the
    fastest of each)."""
    po, herald = results
    rows = ["| system | emails | seconds | emails/s | SMTP connections | first→last message |"
            " CPU ms/email: sender, SMTP server |" + (" load average |" if runs else ""),
            "| --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if runs else "")]
    for r in runs or results:
        rows.append(f"| {r['system']} | {r['messages']:,}/{r['emails']:,} | {r['seconds']:.1f}"
                    f" | {r['rate']:.0f} | {r['connections']:,} | {r['first_to_last']:.1f} s | "
                    f"{r['sender_cpu'] * 1000 / r['emails']:.1f}, "
                    f"{r['server_cpu'] * 1000 / r['emails']:.1f} |"
                    + (f" {r['load_before']:.1f} → {r['load_after']:.1f} |" if runs else ""))
    ratio = herald["rate"] / po["rate"] if po["rate"] else 0.0
    rows.append("")
    name, target = SINKS[sink]
    fastest = " (each side's fastest run)" if runs else ""
    rows.append(f"Herald / post_office: **{ratio:.2f}x**{fastest} ({target}), server {name}, "
                f"{kind}, "
                f"post_office `send_queued_mail --processes {PO_PROCESSES}`, Herald Celery "
                f"prefork -c {WORKER_CONCURRENCY}, {os.cpu_count()} cores, load average "
                f"{os.getloadavg()[0]:.1f} at the end (other work on the machine skews both)")
    return "\n".join(rows)


def problems(results: list[dict]) -> list[str]:
    out = []
    for r in results:
        if r["missing"] or r["duplicated"] or r["messages"] != r["emails"]:
            out.append(f"{r['system']}: {r['messages']} messages for {r['emails']} emails, "
                       f"{r['missing']} missing, {r['duplicated']} duplicated; stored "
                       f"{r['stored']}\n{r['log']}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emails", type=int, default=10_000)
    parser.add_argument("--sink", choices=sorted(SINKS), default="smtp-sink",
                        help="the receiving SMTP server (default smtp-sink)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--rounds", type=int, default=1,
                        help="race R times, the order alternating (post_office first, then "
                             "Herald first, ...); the ratio is of each side's fastest run, "
                             "every run listed with the load average around it")
    parser.add_argument("--herald-only", action="store_true",
                        help="Herald's side alone (to try its settings; prints its rate)")
    args = parser.parse_args()
    VAR.mkdir(exist_ok=True)
    if not shutil.which("redis-cli"):
        raise SystemExit(f"redis-cli is needed (the Celery broker is {BROKER})")
    kind, po_url, herald_url = databases()
    if args.herald_only:
        handler = server = SmtpSink() if args.sink == "smtp-sink" else None
        if server is None:
            server, handler = smtp_start()
        try:
            herald = bench_herald(args.emails, herald_url, handler, handler.port if args.sink
                                  == "smtp-sink" else _bound_port(server))
        finally:
            server.stop()
        herald.pop("log")
        print(json.dumps(herald))
        sys.exit(1 if problems([herald]) else 0)
    if args.sink == "smtp-sink":
        handler = server = SmtpSink()
        port = server.port
    else:
        server, handler = smtp_start()
        port = _bound_port(server)
    runs: list[dict] = []
    try:
        for round_ in range(args.rounds):
            sides = [lambda: bench_post_office(args.emails, po_url, handler, port),
                     lambda: bench_herald(args.emails, herald_url, handler, port)]
            for side in sides if round_ % 2 == 0 else sides[::-1]:
                load = os.getloadavg()[0]
                runs.append({**side(), "load_before": load, "load_after": os.getloadavg()[0]})
    finally:
        server.stop()
    results = [best(runs, "django-post-office"), best(runs, "Herald")]
    text = table(kind, results, args.sink, runs if args.rounds > 1 else None)
    if args.json:
        print(json.dumps({"kind": kind, "sink": args.sink, "table": text, "results": results,
                          "runs": runs, "problems": problems(runs)}))
    else:
        print(text)
        for problem in problems(runs):
            print("FAILED:", problem, file=sys.stderr)
    sys.exit(1 if problems(runs) else 0)


def best(runs: list[dict], system: str) -> dict:
    """A side's fastest run: the one least slowed by the host's other work."""
    return max((r for r in runs if r["system"] == system), key=lambda r: r["rate"])


if __name__ == "__main__":
    commands = {"_po_queue": lambda: po_queue(int(sys.argv[2])), "_po_status": po_status,
                "_herald_queue": lambda: herald_queue(int(sys.argv[2])),
                "_herald_status": herald_status, "_smtp_serve": smtp_serve,
                "_conversation": lambda: _conversation(sys.argv[2], int(sys.argv[3]))}
    if len(sys.argv) > 1 and sys.argv[1] in commands:
        commands[sys.argv[1]]()
    elif len(sys.argv) > 1 and sys.argv[1] == "conversation":
        conversation(int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--batches" else 50)
    elif len(sys.argv) > 1 and sys.argv[1] == "profile":
        profile(int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--batch" else 100)
    else:
        main()
