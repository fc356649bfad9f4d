"""`make bench`: Herald on the production shape (gunicorn + Celery worker + PostgreSQL + Redis)
against the fake SendGrid; prints one table and writes it to docs/PERFORMANCE.md.

Scenarios
- api: POST /checkin/v1/api/guest with commsTemplateId (atomic create + send), wrk with
  32 connections; the worker is stopped so the figure is the API alone.
- pipeline: the deliveries the api scenario queued, drained by a Celery worker through the
  real `sendgrid` client into the fake server: deliveries/s from queued to accepted.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv" / "bin"
PORT = int(os.environ.get("BENCH_PORT", "8765"))
DURATION = os.environ.get("BENCH_SECONDS", "20")
CONNECTIONS = os.environ.get("BENCH_CONNECTIONS", "32")
WEB_WORKERS = os.environ.get("BENCH_WEB_WORKERS", "4")
WORKER_CONCURRENCY = os.environ.get("BENCH_WORKER_CONCURRENCY", "4")
DB = "herald_bench"
ENV = {
    **os.environ,
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB}",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/14",
    "HERALD_EMAIL_PROVIDER": "sendgrid",
    "SENDGRID_API_KEY": "SG.bench",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "LOG_LEVEL": "WARNING",
}
procs: list[subprocess.Popen] = []


def sh(*args: str, **kwargs) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True, env=ENV,
                          cwd=ROOT, **kwargs).stdout


def start(*args: str) -> subprocess.Popen:
    proc = subprocess.Popen(args, env=ENV, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)
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


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def prepare() -> dict:
    if not shutil.which("wrk"):
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


def main() -> None:
    keys = prepare()
    fake = start(str(VENV / "python"), "bench/fake_sendgrid_server.py", "SG.bench")
    ENV["SENDGRID_API_HOST"] = fake.stdout.readline().strip()
    web = start(str(VENV / "gunicorn"), "config.wsgi", "-b", f"127.0.0.1:{PORT}",
                "-w", WEB_WORKERS, "--log-level", "warning")
    wait_http(f"http://127.0.0.1:{PORT}/api/schema/")
    event_id = api("POST", "/checkin/v1/api/event", keys, {"name": "Bench"})["id"]
    template_id = api("POST", "/comms/v1/api/comms/template", keys, {
        "name": "Ticket", "subject": "Your ticket for {{ event.name }}",
        "htmlBody": "<p>Hi {{ firstName }}, see you at {{ event.name }}.</p>",
        "textBody": "Hi {{ firstName }}, see you at {{ event.name }}."})["id"]
    result = run_wrk(keys, event_id, template_id)
    web_rss = peak_rss_mb(web)
    stop(web)
    queued = count("select count(*) from comms_delivery where status='queued'")
    started = time.monotonic()
    worker = start(str(VENV / "celery"), "-A", "config", "worker", "-l", "warning",
                   "-c", WORKER_CONCURRENCY, "--without-gossip", "--without-mingle")
    done = 0
    while done < queued and time.monotonic() - started < 600:
        time.sleep(0.5)
        done = count("select count(*) from comms_delivery where status='sent'")
    elapsed = time.monotonic() - started
    worker_rss = peak_rss_mb(worker)
    for proc in procs:
        stop(proc)
    report(result, queued, done, elapsed, web_rss, worker_rss)


def report(result: dict, queued: int, done: int, elapsed: float, web_rss: float,
           worker_rss: float) -> None:
    rows = [
        ("API atomic create+send", f"{result['rps']:.0f} req/s, p50 {result['p50']:.1f} ms, "
         f"p99 {result['p99']:.1f} ms ({result['errors']} non-2xx)", "≥ 800 req/s, p99 ≤ 100 ms"),
        ("Pipeline queued → accepted by SendGrid", f"{done / elapsed:.0f} emails/s "
         f"({done}/{queued} in {elapsed:.1f} s, incl. worker start)", "≥ 1,000 emails/s"),
        ("Peak RSS", f"web worker {web_rss:.0f} MB, Celery worker process {worker_rss:.0f} MB",
         "worker ≤ 300 MB"),
    ]
    table = ["| scenario | measured | target |", "| --- | --- | --- |"]
    table += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    setup = (f"gunicorn {WEB_WORKERS} sync workers, Celery prefork -c {WORKER_CONCURRENCY}, "
             f"PostgreSQL 15, Redis 7, wrk -t2 -c{CONNECTIONS} -d{DURATION}s, "
             f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    text = "\n".join(table)
    print(text)
    print(setup)
    path = ROOT / "docs" / "PERFORMANCE.md"
    doc = path.read_text() if path.exists() else "# Performance\n"
    block = (f"<!-- bench:start -->\nLast `make bench` ({setup}):\n\n{text}\n"
             "<!-- bench:end -->")
    if "<!-- bench:start -->" in doc:
        doc = re.sub(r"<!-- bench:start -->.*<!-- bench:end -->", block, doc, flags=re.S)
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    path.write_text(doc)


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in procs:
            if p.poll() is None:
                stop(p)
        sys.stdout.flush()
