"""`make bench`: Herald on the production shape (gunicorn + Celery worker + PostgreSQL + Redis)
against the fake SendGrid; prints one table and writes it to docs/PERFORMANCE.md.

Scenarios
- api: POST /checkin/v1/api/guest with commsTemplateId (atomic create + send), wrk with
  32 connections; the worker is stopped so the figure is the API alone.
- pipeline: the deliveries the api scenario queued, drained by a Celery worker through the
  real `sendgrid` client into the fake server: deliveries/s from queued to accepted, timed
  from when the worker consumes (and, beside it, with the worker's start-up).
- callbacks: signed 1,000-event SendGrid batches of those deliveries, posted by 4 client
  threads as a provider posts concurrently → applied by the worker.
- webhooks: one more event per delivery, fanned out as signed POSTs to `bench/receiver.py`.
- bulk: event staff send a template to an event's BENCH_BULK_GUESTS (20,000) guests through
  the admin (login, choose, confirm); a worker started with HERALD_DISPATCH_BATCH_SIZE=1000
  (BENCH_BULK_BATCH) queues them and sends each 1,000 as one request of personalizations:
  emails/s from the confirm click to the last one accepted ('sent').
- csv: `bench/csv_import.py` on its own database once the servers are stopped: a
  BENCH_CSV_ROWS-row (100,000) CSV validated and imported, rows/s.
- scheduled: `bench/scheduled.py` once the servers are stopped, on its own database and
  Redis db 13: 10,000 emails scheduled 70-90 s ahead through `messages_queue` with a worker
  (prefork -c 2) and beat running; the worker's CPU over 60 s while they wait beside the same
  window with none, then each one's lateness once due (issue 19).
- peer: `bench/peer.py` once the rest is stopped: the same emails (BENCH_PEER_EMAILS, 10,000;
  0 skips it) sent by django-post-office and by Herald through SMTP, the race to Postfix's
  smtp-sink (installed with Debian's postfix package when missing, the daemon never run),
  then the same to aiosmtpd for the older row's ratio beside it.
- anymail: `bench/anymail_peer.py`: the same number of emails as one Celery task each through
  django-anymail's SendGrid backend vs Herald's batched SendGrid path, both into the fake
  SendGrid with `celery worker --pool=prefork -c 2`.

BENCH_SCENARIOS (comma-separated, default all) picks scenarios; pipeline, callbacks and
webhooks use the deliveries of the ones before them, so each brings those along. Only a run
of every scenario rewrites docs/PERFORMANCE.md; a partial one prints its rows. Other knobs:
BENCH_SECONDS (wrk, 20), BENCH_CONNECTIONS (32), BENCH_WEB_WORKERS (one per core, as make web),
BENCH_WORKER_CONCURRENCY (4), BENCH_PORT (8765). The table's footer gives a CPU yardstick
(a fixed pure-Python loop's CPU seconds): figures from machines of different speed compare
only beside it.
"""

import http.cookiejar
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv" / "bin"
PORT = int(os.environ.get("BENCH_PORT", "8765"))
DURATION = os.environ.get("BENCH_SECONDS", "20")
CONNECTIONS = os.environ.get("BENCH_CONNECTIONS", "32")
WEB_WORKERS = os.environ.get("BENCH_WEB_WORKERS", str(os.cpu_count() or 2))  # as gunicorn.conf.py
WORKER_CONCURRENCY = os.environ.get("BENCH_WORKER_CONCURRENCY", "4")
PEER_EMAILS = int(os.environ.get("BENCH_PEER_EMAILS", "10000"))
BULK_GUESTS = int(os.environ.get("BENCH_BULK_GUESTS", "20000"))
BULK_BATCH = os.environ.get("BENCH_BULK_BATCH", "1000")
CSV_ROWS = int(os.environ.get("BENCH_CSV_ROWS", "100000"))
ALL = ("api", "pipeline", "callbacks", "webhooks", "bulk", "csv", "scheduled", "peer",
       "anymail")
SCENARIOS = {s.strip() for s in os.environ.get("BENCH_SCENARIOS", ",".join(ALL)).split(",")}
if unknown := SCENARIOS - set(ALL):
    raise SystemExit(f"BENCH_SCENARIOS: unknown {', '.join(sorted(unknown))}; known: {ALL}")
for later, earlier in (("webhooks", "callbacks"), ("callbacks", "pipeline"), ("pipeline", "api")):
    if later in SCENARIOS:
        SCENARIOS.add(earlier)
DB = "herald_bench"
ENV = {
    **os.environ,
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB}",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/14",
    "HERALD_EMAIL_PROVIDER": "sendgrid",
    "SENDGRID_API_KEY": "SG.bench",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "LOG_LEVEL": "WARNING",
    "WEBHOOKS_ALLOW_PRIVATE_URLS": "true",
    "HERALD_API_KEY_CACHE_SECONDS": "30",
    # The limiter still counts every request in Redis (its cost is measured), but one bench
    # key sends far more than a customer's 100 requests/s.
    "HERALD_RATE_LIMIT_LIVE": "1000000",
    "HERALD_DAILY_QUOTA_LIVE": "0",
}
sys.path.insert(0, str(ROOT))
from bench.procs import wait_http, worker_ready  # noqa: E402
from tests.fakes.sendgrid_signing import SendGridSigner  # noqa: E402

SIGNER = SendGridSigner()
ENV["SENDGRID_WEBHOOK_PUBLIC_KEY"] = SIGNER.public_key
procs: list[subprocess.Popen] = []


def sh(*args: str, **kwargs) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True, env=ENV,
                          cwd=ROOT, **kwargs).stdout


def start(*args: str, env: dict | None = None, stderr=subprocess.DEVNULL) -> subprocess.Popen:
    proc = subprocess.Popen(args, env=env or ENV, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=stderr, text=True, start_new_session=True)
    procs.append(proc)
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def peak_rss_mb(proc: subprocess.Popen) -> float:
    """Largest VmHWM (peak resident set) of the process and its children, in MB."""
    pids = _tree(proc.pid)
    peak = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            continue
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        if match:
            peak = max(peak, int(match.group(1)))
    return peak / 1024


def _tree(pid: int) -> list[str]:
    out = subprocess.run(["pgrep", "-g", str(os.getpgid(pid))], capture_output=True,
                         text=True).stdout.split()
    return out or [str(pid)]


def api(method: str, path: str, keys: dict, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{PORT}{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {keys['liveKey']}",
                 "Ocp-Apim-Subscription-Key": keys["subscriptionKey"],
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def count(sql: str) -> int:
    """One psql query (cheap: the poll must not steal CPU from the worker it measures)."""
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", DB, "-tAc", sql],
                         check=True, capture_output=True, text=True).stdout
    return int(out.strip())


def prepare() -> dict:
    if "api" in SCENARIOS and not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc",
                    f"DROP DATABASE IF EXISTS {DB}"], check=True)
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc",
                    f"CREATE DATABASE {DB}"], check=True)
    subprocess.run(["redis-cli", "-n", "14", "flushdb"], check=True, capture_output=True)
    sh(str(VENV / "python"), "manage.py", "migrate", "-v", "0")
    return json.loads(sh(str(VENV / "python"), "manage.py", "createaccount", "Bench", "--json"))


def run_wrk(keys: dict, event_id: str, template_id: str) -> dict:
    env = {**ENV, "HERALD_KEY": keys["liveKey"], "HERALD_SUB": keys["subscriptionKey"],
           "HERALD_EVENT": event_id, "HERALD_TEMPLATE": template_id}
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION}s", "--latency", "-s",
         str(ROOT / "bench" / "guest.lua"), f"http://127.0.0.1:{PORT}/checkin/v1/api/guest"],
        check=True, capture_output=True, text=True, env=env).stdout
    def latency(pct: str) -> float:
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": latency("50"), "p99": latency("99"),
            "errors": int(non2xx.group(1)) if non2xx else 0, "raw": out}


def yardstick() -> float:
    """CPU seconds of a fixed pure-Python loop (best of three), printed with the table: the
    machines this bench ran on differed by 2-3x in speed, so figures compare only beside it."""
    best = math.inf
    for _ in range(3):
        started, total = time.process_time(), 0
        for i in range(5_000_000):
            total += i
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    results: dict = {"yardstick": yardstick()}
    if SCENARIOS & {"api", "bulk"}:
        run_servers(results)
    for proc in procs:
        stop(proc)
    if "csv" in SCENARIOS:
        results["csv"] = run_csv()
    if "scheduled" in SCENARIOS:
        results["scheduled"] = run_scheduled()
    if "peer" in SCENARIOS:
        results["peer"] = run_peer("smtp-sink")
        results["peer_aiosmtpd"] = run_peer("aiosmtpd")
    if "anymail" in SCENARIOS:
        results["anymail"] = run_anymail()
    report(results)


def run_servers(results: dict) -> None:
    """The scenarios against gunicorn, a Celery worker and the fake SendGrid."""
    keys = prepare()
    fake = start(str(VENV / "python"), "bench/fake_sendgrid_server.py", "SG.bench")
    ENV["SENDGRID_API_HOST"] = fake.stdout.readline().strip()
    web = start(str(VENV / "gunicorn"), "config.wsgi", "-b", f"127.0.0.1:{PORT}",
                "-w", WEB_WORKERS, "--log-level", "warning")
    wait_http(f"http://127.0.0.1:{PORT}/api/schema/")
    if "api" in SCENARIOS:
        event_id = api("POST", "/checkin/v1/api/event", keys, {"name": "Bench"})["id"]
        template_id = api("POST", "/comms/v1/api/comms/template", keys, {
            "name": "Ticket", "subject": "Your ticket for {{ event.name }}",
            "htmlBody": "<p>Hi {{ firstName }}, see you at {{ event.name }}.</p>",
            "textBody": "Hi {{ firstName }}, see you at {{ event.name }}."})["id"]
        results["api"] = run_wrk(keys, event_id, template_id)
        results["web_rss"] = peak_rss_mb(web)
    if "pipeline" in SCENARIOS:
        # Pipeline: what the API queued, drained by a worker started now.
        # Timed from the worker's launch, and from when it consumes (its start-up, ~1-3 s,
        # is not sending: with the few thousand deliveries a slow API run queues, it would
        # weigh more than the sending).
        queued = count("select count(*) from comms_delivery where status='queued'")
        started = time.monotonic()
        worker = start_worker(ready=True)
        ready = time.monotonic()
        sent_before = count("select count(*) from comms_delivery where status='sent'")
        done = wait_for("select count(*) from comms_delivery where status='sent'", queued)
        finished = time.monotonic()
        results["pipeline"] = {"done": done, "queued": queued, "start": ready - started,
                               "seconds": finished - ready, "sent_before": sent_before}
    if "callbacks" in SCENARIOS:
        # Callback ingestion: signed 1,000-event SendGrid batches through gunicorn to the worker.
        results["callbacks"] = run_callbacks()
    if "webhooks" in SCENARIOS:
        # Webhook fan-out: an endpoint at a local receiver, then one more event per delivery.
        receiver = start(str(VENV / "python"), "bench/receiver.py")
        receiver_url = receiver.stdout.readline().strip()
        api_v004("POST", "/v1/webhooks", keys, {"url": receiver_url + "/hook",
                                                "enabled_events": ["comms.clicked"]})
        results["webhooks"] = run_webhooks()
    if "pipeline" in SCENARIOS:
        results["worker_rss"] = peak_rss_mb(worker)
        stop(worker)
    if "bulk" in SCENARIOS:
        results["bulk"] = run_bulk()
        results["web_rss"] = peak_rss_mb(web)


def start_worker(env: dict | None = None, ready: bool = False) -> subprocess.Popen:
    """A worker on every queue; ``ready``: returns once it consumes (start-up not timed)."""
    if ready:
        proc = worker_ready("-c", WORKER_CONCURRENCY, env=env or ENV)
        procs.append(proc)
        return proc
    return start(str(VENV / "celery"), "-A", "config", "worker", "-l", "warning",
                 "-c", WORKER_CONCURRENCY, "--without-gossip", "--without-mingle", env=env)


def run_bulk() -> dict:
    """Event staff send a template to every guest of an event through the admin; a worker
    with HERALD_DISPATCH_BATCH_SIZE=BULK_BATCH queues and sends them."""
    made = json.loads(sh(str(VENV / "python"), "bench/bulk_send.py", "setup",
                         str(BULK_GUESTS)))
    worker = start_worker({**ENV, "HERALD_DISPATCH_BATCH_SIZE": BULK_BATCH}, ready=True)
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def post(path: str, **form: str) -> str:
        token = next(c.value for c in jar if c.name == "csrftoken")
        data = urllib.parse.urlencode({"csrfmiddlewaretoken": token, **form}).encode()
        with browser.open(f"http://127.0.0.1:{PORT}{path}", data=data, timeout=60) as page:
            return page.read().decode()

    browser.open(f"http://127.0.0.1:{PORT}/admin/login/", timeout=10).read()
    post("/admin/login/?next=/admin/", username=made["username"], password=made["password"])
    send = f"/admin/guests/event/{made['event']}/send/"
    choice = {"template": made["template"], "audience": "all", "mode": "live"}
    confirm = re.search(r'name="token" value="([^"]+)"', post(send, **choice)).group(1)
    template = f"template_id = '{made['template']}'"
    cpu = cpu_seconds(worker)
    started = time.monotonic()
    post(send, **choice, token=confirm, _confirm="Confirm")
    wait_for(f"select count(*) from comms_delivery where {template}"
             " and status not in ('queued', 'sending')", BULK_GUESTS)
    seconds = time.monotonic() - started
    cpu = cpu_seconds(worker) - cpu
    sent = count(f"select count(*) from comms_delivery where {template} and status = 'sent'")
    requests = count(f"select count(distinct provider_message_id) from comms_delivery"
                     f" where {template} and status = 'sent'")
    queued = float(sh("psql", "-h", "127.0.0.1", "-U", "postgres", "-d", DB, "-tAc",
                      "select extract(epoch from max(created_at) - min(created_at))"
                      f" from comms_delivery where {template}"))
    rss = peak_rss_mb(worker)
    stop(worker)
    return {"sent": sent, "seconds": seconds, "worker_cpu": cpu, "requests": requests,
            "queued": queued, "rss": rss, "load": os.getloadavg()[0]}


def cpu_seconds(proc: subprocess.Popen) -> float:
    """User + system CPU seconds of a process group so far (Linux /proc)."""
    total = 0
    for pid in _tree(proc.pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def run_csv() -> dict:
    """bench/csv_import.py on its own fresh PostgreSQL database, with nothing else running."""
    db = "herald_bench_import"
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc",
                    f"DROP DATABASE IF EXISTS {db}"], check=True)
    env = {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db}"}
    out = subprocess.run([str(VENV / "python"), "bench/csv_import.py", str(CSV_ROWS), "--json"],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    try:
        return json.loads(out.stdout.splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"problem": out.stderr[-300:] or f"bench/csv_import.py exited {out.returncode}"}


def run_scheduled() -> dict:
    """bench/scheduled.py (its own database, Redis db, worker and beat), nothing else running."""
    out = subprocess.run([str(VENV / "python"), "bench/scheduled.py", "--json"],
                         capture_output=True, text=True, env=dict(os.environ), cwd=ROOT)
    try:
        return json.loads(out.stdout.splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"problem": out.stderr[-300:] or f"bench/scheduled.py exited {out.returncode}"}


def wait_for(sql: str, target: int, timeout: float = 600) -> int:
    started, done = time.monotonic(), 0
    while done < target and time.monotonic() - started < timeout:
        time.sleep(0.25)
        done = count(sql)
    return done


def _sent_deliveries() -> list[tuple[str, str, str]]:
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", DB, "-tAF,", "-c",
         "select id, provider_message_id, recipient from comms_delivery"
         " where status in ('sent','delivered','opened','clicked')"],
        check=True, capture_output=True, text=True).stdout
    return [tuple(line.split(",")) for line in out.split()]


def _signed_batches(kind: str, deliveries: list, batch: int = 1000) -> list[tuple[bytes, dict]]:
    """SendGrid event batches of ``kind``, signed as SendGrid signs them (built before the
    clock starts: the provider's cost is not Herald's)."""
    from tests.fakes.sendgrid_signing import dumps, sendgrid_event

    out = []
    for start_at in range(0, len(deliveries), batch):
        body = dumps([sendgrid_event(kind, delivery_id=d, message_id=m, email=r,
                                     event_id=f"{kind}-{d}")
                      for d, m, r in deliveries[start_at:start_at + batch]])
        headers = {key.removeprefix("HTTP_").replace("_", "-"): value
                   for key, value in SIGNER.headers(body).items()}
        out.append((body.encode(), headers))
    return out


def _post_batches(batches: list[tuple[bytes, dict]], clients: int = 4) -> int:
    """Post the batches from ``clients`` threads, as a provider posts concurrently; returns
    the number of events posted."""
    def post(item: tuple[bytes, dict]) -> int:
        body, headers = item
        request = urllib.request.Request(
            f"http://127.0.0.1:{PORT}/callbacks/sendgrid", data=body, method="POST",
            headers={"Content-Type": "application/json", **headers})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
        return body.count(b'"sg_event_id"')

    with ThreadPoolExecutor(clients) as pool:
        return sum(pool.map(post, batches))


def _post_events(kind: str, deliveries: list) -> int:
    return _post_batches(_signed_batches(kind, deliveries))


def run_callbacks() -> tuple[int, float]:
    deliveries = _sent_deliveries()
    batches = _signed_batches("delivered", deliveries) + _signed_batches("open", deliveries)
    started = time.monotonic()
    posted = _post_batches(batches)
    wait_for("select count(*) from comms_callbackbatch where processed_at is not null",
             count("select count(*) from comms_callbackbatch"))
    return posted, time.monotonic() - started


def run_webhooks() -> tuple[int, float]:
    deliveries = _sent_deliveries()
    _post_events("click", deliveries)
    wait_for("select count(*) from comms_callbackbatch where processed_at is not null",
             count("select count(*) from comms_callbackbatch"))
    target = count("select count(*) from webhooks_message")
    wait_for("select count(*) from webhooks_message where status='succeeded'", target)
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", DB, "-tAc",
         "select count(*), extract(epoch from max(updated_at) - min(created_at))"
         " from webhooks_message where status='succeeded'"],
        check=True, capture_output=True, text=True).stdout.strip().split("|")
    return int(out[0]), float(out[1] or 0)


def api_v004(method: str, path: str, keys: dict, body: dict) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{PORT}{path}", method=method, data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {keys['liveKey']}",
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def smtp_sink_ensure() -> None:
    """Postfix's smtp-sink, the race's receiving server: Debian's postfix package installed
    when missing, as wrk is needed (only the binary is used, the postfix daemon never runs)."""
    if shutil.which("smtp-sink") or os.access("/usr/sbin/smtp-sink", os.X_OK):
        return
    if not shutil.which("apt-get"):
        raise SystemExit("smtp-sink is needed: install Postfix (Debian: apt-get install postfix)")
    done = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "postfix"],
                          capture_output=True, text=True,
                          env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if done.returncode:
        raise SystemExit("smtp-sink is needed: DEBIAN_FRONTEND=noninteractive apt-get install -y "
                         f"postfix failed:\n{done.stderr[-1000:]}")


def run_peer(sink: str) -> dict | None:
    """bench/peer.py on PostgreSQL (its own databases), with nothing else running."""
    if not PEER_EMAILS:
        return None
    if sink == "smtp-sink":
        smtp_sink_ensure()
    env = {**os.environ, "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/herald_bench_peer",
           "BENCH_WORKER_CONCURRENCY": WORKER_CONCURRENCY}
    out = subprocess.run([str(VENV / "python"), "bench/peer.py", "--emails", str(PEER_EMAILS),
                          "--sink", sink, "--json"], capture_output=True, text=True, env=env,
                         cwd=ROOT)
    try:
        return json.loads(out.stdout)
    except json.JSONDecodeError:
        return {"problems": [out.stderr[-500:] or f"bench/peer.py exited {out.returncode}"]}


def run_anymail() -> dict | None:
    """bench/anymail_peer.py (its own database, the fake SendGrid in its process)."""
    if not PEER_EMAILS:
        return None
    env = {**os.environ, "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/herald_bench_peer"}
    out = subprocess.run([str(VENV / "python"), "bench/anymail_peer.py", "--emails",
                          str(PEER_EMAILS), "--json"], capture_output=True, text=True, env=env,
                         cwd=ROOT)
    try:
        return json.loads(out.stdout)
    except json.JSONDecodeError:
        return {"problems": [out.stderr[-500:] or f"bench/anymail_peer.py exited "
                                                  f"{out.returncode}"]}


def _peer_row(peer: dict | None, sink: str = "smtp-sink") -> tuple[str, str, str] | None:
    if peer is None:
        return None
    if sink == "smtp-sink":
        name = ("Peer race: same emails via SMTP to Postfix smtp-sink (post_office "
                "send_queued_mail vs Celery worker)")
        target = "Herald ≥ 3x django-post-office"
    else:
        name = "Peer: the same to aiosmtpd (Python server; its CPU weighs on both senders)"
        target = "— (beside the race)"
    if "results" not in peer:
        return name, "failed: " + " ".join(peer["problems"])[:200].replace("|", "/"), target
    po, herald = peer["results"]
    ratio = herald["rate"] / po["rate"] if po["rate"] else 0.0
    measured = (f"Herald {herald['rate']:.0f} emails/s vs post_office {po['rate']:.0f} emails/s"
                f" = {ratio:.2f}x ({herald['emails']} each; SMTP "
                f"connections {herald['connections']} vs {po['connections']}; sender CPU "
                f"{herald['sender_cpu'] * 1000 / herald['emails']:.1f} vs "
                f"{po['sender_cpu'] * 1000 / po['emails']:.1f} ms/email)")
    if peer["problems"]:
        measured += f"; {len(peer['problems'])} side(s) missing or duplicating emails"
    return name, measured, target


def _anymail_row(result: dict | None) -> tuple[str, str, str] | None:
    if result is None:
        return None
    name = ("Peer: a Celery task per email through django-anymail's SendGrid backend vs "
            "Herald's batched SendGrid path (fake SendGrid, prefork -c 2 each)")
    target = "— (reported)"
    if "results" not in result:
        return name, "failed: " + " ".join(result["problems"])[:200].replace("|", "/"), target
    anymail, herald = result["results"]
    ratio = herald["rate"] / anymail["rate"] if anymail["rate"] else 0.0
    measured = (f"Herald {herald['rate']:.0f} emails/s vs task per email "
                f"{anymail['rate']:.0f} emails/s = {ratio:.1f}x ({herald['emails']} each; "
                f"SendGrid requests {herald['connections']} vs {anymail['connections']})")
    if result["problems"]:
        measured += f"; {len(result['problems'])} side(s) missing or duplicating emails"
    return name, measured, target


def _csv_row(csv: dict) -> tuple[str, str, str]:
    name = "CSV import (rows/s): validate + import of a new guest CSV on PostgreSQL"
    target = "100,000 rows < 30 s"
    if "problem" in csv:
        return name, "failed: " + csv["problem"][:200].replace("|", "/").replace("\n", " "), target
    rows, validate, imported = csv["rows"], csv["validate"], csv["import"]
    return name, (f"{rows / (validate + imported):,.0f} rows/s ({rows:,} rows in "
                  f"{validate + imported:.1f} s: validate {rows / validate:,.0f}/s, import "
                  f"{rows / imported:,.0f}/s; the same file again {csv['again']:.1f} s; "
                  f"load average {csv['load']:.1f})"), target


def verdict(met: bool | None) -> str:
    """The table's last column: whether the figure meets its target (issue 20's targets)."""
    return "—" if met is None else ("met" if met else "**missed**")


def report(results: dict) -> None:
    rows = []
    met: list[bool | None] = []
    if api_result := results.get("api"):
        rows.append(("API atomic create+send (32 connections)",
                     f"{api_result['rps']:.0f} req/s, p50 {api_result['p50']:.1f} ms, p99 "
                     f"{api_result['p99']:.1f} ms ({api_result['errors']} non-2xx)",
                     "≥ 800 req/s, p99 ≤ 100 ms"))
        met.append(api_result["rps"] >= 800 and api_result["p99"] <= 100
                   and not api_result["errors"])
    if "pipeline" in results:
        pipe = results["pipeline"]
        sending = pipe["done"] - pipe["sent_before"]
        rows.append(("Pipeline queued → accepted by SendGrid (batched)",
                     f"{sending / pipe['seconds']:.0f} emails/s ({sending} in "
                     f"{pipe['seconds']:.1f} s once the worker consumed, of {pipe['queued']} "
                     f"queued; with its {pipe['start']:.1f} s start-up "
                     f"{pipe['done'] / (pipe['seconds'] + pipe['start']):.0f}/s)",
                     "≥ 3,000 emails/s"))
        met.append(sending / pipe["seconds"] >= 3000)
    if "callbacks" in results:
        events, callback_seconds = results["callbacks"]
        rows.append(("Callback ingestion (signed 1,000-event batches → applied)",
                     f"{events / callback_seconds:.0f} events/s ({events} in "
                     f"{callback_seconds:.1f} s)", "≥ 10,000 events/s"))
        met.append(events / callback_seconds >= 10000)
    if "webhooks" in results:
        hooks, hook_seconds = results["webhooks"]
        rows.append(("Webhook fan-out (signed POSTs to a local receiver)",
                     f"{hooks / hook_seconds if hook_seconds else 0:.0f} deliveries/s ({hooks} "
                     f"in {hook_seconds:.1f} s)", "≥ 2,500 deliveries/s"))
        met.append(bool(hook_seconds) and hooks / hook_seconds >= 2500)
    if bulk := results.get("bulk"):
        rows.append((f"Pipeline, bulk emails/s with batched personalizations (admin send to "
                     f"{BULK_GUESTS:,} guests, up to {int(BULK_BATCH):,} per request)",
                     f"{bulk['sent'] / bulk['seconds']:.0f} emails/s ({bulk['sent']}/"
                     f"{BULK_GUESTS} sent in {bulk['seconds']:.1f} s from the confirm click, "
                     f"all queued within {bulk['queued']:.1f} s; {bulk['requests']} SendGrid "
                     f"requests; worker CPU {bulk['worker_cpu']:.1f} s; load average "
                     f"{bulk['load']:.1f})", "≥ 6,000 emails/s"))
        met.append(bulk["sent"] == BULK_GUESTS and bulk["sent"] / bulk["seconds"] >= 6000)
    if csv := results.get("csv"):
        rows.append(_csv_row(csv))
        met.append("problem" not in csv and csv["validate"] + csv["import"] < 30)
    if scheduled := results.get("scheduled"):
        from bench.scheduled import row

        rows.append(row(scheduled) if "problem" not in scheduled else (
            "Scheduled sends (bench/scheduled.py)", "failed: " + scheduled["problem"][:200]
            .replace("|", "/").replace("\n", " "), "all sent within 10 s of their time"))
        met.append("problem" not in scheduled and scheduled["max"] is not None
                   and scheduled["max"] <= 10)
    if "web_rss" in results:
        workers = [f"Celery worker {results['worker_rss']:.0f} MB"] if "worker_rss" in results \
            else []
        workers += [f"bulk worker {bulk['rss']:.0f} MB"] if bulk else []
        rows.append(("Peak RSS", f"web worker {results['web_rss']:.0f} MB, "
                     f"{', '.join(workers)} (largest process)", "worker ≤ 300 MB"))
        met.append(max(results.get("worker_rss", 0), bulk["rss"] if bulk else 0) <= 300)
    if peer_row := _peer_row(results.get("peer")):
        rows.append(peer_row)
        peer = results["peer"]
        met.append("results" in peer and not peer["problems"] and peer["results"][0]["rate"]
                   and peer["results"][1]["rate"] / peer["results"][0]["rate"] >= 3)
    if peer_row := _peer_row(results.get("peer_aiosmtpd"), "aiosmtpd"):
        rows.append(peer_row)
        met.append(None)
    if anymail_row := _anymail_row(results.get("anymail")):
        rows.append(anymail_row)
        met.append(None)
    table = ["| scenario | measured | target | met |", "| --- | --- | --- | --- |"]
    table += [f"| {a} | {b} | {c} | {verdict(ok)} |" for (a, b, c), ok in zip(rows, met,
                                                                               strict=True)]
    threads = os.environ.get("WEB_THREADS", "gunicorn.conf.py's")
    setup = (f"CPU yardstick {results['yardstick']:.2f} s, gunicorn {WEB_WORKERS} gthread "
             f"workers x {threads} threads, Celery prefork -c {WORKER_CONCURRENCY}, "
             f"PostgreSQL 15, Redis 7, wrk -t2 -c{CONNECTIONS} -d{DURATION}s, "
             f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    text = "\n".join(table)
    print(text)
    print(setup)
    if not SCENARIOS >= set(ALL):
        print("(BENCH_SCENARIOS: a partial run; docs/PERFORMANCE.md left as it was)")
        return
    path = ROOT / "docs" / "PERFORMANCE.md"
    doc = path.read_text() if path.exists() else "# Performance\n"
    block = (f"<!-- bench:start -->\nLast `make bench` ({setup}):\n\n{text}\n"
             "<!-- bench:end -->")
    path.write_text(with_history(doc, block))


HISTORY = "## Earlier `make bench` runs (newest first)"


def with_history(doc: str, block: str) -> str:
    """``doc`` with ``block`` as its last run; the run it replaces goes to the top of the
    history below it, so PERFORMANCE.md keeps every table (issue 20 item 8)."""
    previous = re.search(r"<!-- bench:start -->\n(.*?)<!-- bench:end -->", doc, flags=re.S)
    if previous is None:
        return doc.rstrip() + "\n\n" + block + "\n\n" + HISTORY + "\n"
    doc = doc[:previous.start()] + block + doc[previous.end():]
    if HISTORY not in doc:
        doc = doc.rstrip() + "\n\n" + HISTORY + "\n"
    head, tail = doc.split(HISTORY, 1)
    earlier = previous.group(1).strip().replace("Last `make bench`", "`make bench`", 1)
    return head + HISTORY + "\n\n" + earlier + "\n" + tail


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in procs:
            if p.poll() is None:
                stop(p)
        sys.stdout.flush()
