"""Web servers for `make web`, compared: slow clients beside a fast one, and wrk's throughput.

    DATABASE_URL=postgres://…/herald_bench_web CELERY_BROKER_URL=redis://…/5 \\
      .venv/bin/python bench/web_servers.py [ROUNDS] [VARIANT …]

Variants: ``web`` (`make web`: gunicorn.conf.py's threaded workers), ``sync`` (gunicorn's
sync workers, the former `make web`), ``asgi`` (gunicorn's own ASGI worker on config.asgi),
``uvicorn`` (uvicorn --workers on config.asgi) and ``waitress`` (one process, 16 threads).
uvicorn and waitress are not Herald's dependencies: install them apart
(`pip install --target var/webpkgs uvicorn waitress`) and set BENCH_EXTRA_PATH=var/webpkgs.

Per variant and round: `bench/slowloris.py`'s fast-client latency beside BENCH_SLOW slow
clients per mode (headers, body), then `wrk -t2 -cBENCH_CONNECTIONS` on an authenticated
GET /v1/webhooks for BENCH_SECONDS, with the server processes' CPU per request (less
sensitive to a busy host than requests/s). Rate limits are off. Variants alternate per round.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.slowloris import measure

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv" / "bin"
PORT = int(os.environ.get("BENCH_PORT", "18555"))
SLOW = int(os.environ.get("BENCH_SLOW", "3"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
BIND = f"127.0.0.1:{PORT}"
VARIANTS = {
    "web": [str(VENV / "gunicorn"), "config.wsgi", "-b", BIND],
    "sync": [str(VENV / "gunicorn"), "config.wsgi", "-c", "/dev/null", "-b", BIND, "-w", "4"],
    "asgi": [str(VENV / "gunicorn"), "config.asgi", "-c", "/dev/null", "-b", BIND, "-w", "4",
             "-k", "asgi"],
    "uvicorn": [str(VENV / "python"), "-m", "uvicorn", "config.asgi:application", "--host",
                "127.0.0.1", "--port", str(PORT), "--workers", "4", "--no-access-log"],
    "waitress": [str(VENV / "python"), "-m", "waitress", f"--listen={BIND}", "--threads=16",
                 "config.wsgi:application"],
}
ENV = {**os.environ, "HERALD_RATE_LIMIT_LIVE": "0", "HERALD_RATE_LIMIT_TEST": "0",
       "LOG_LEVEL": "WARNING", "PYTHONPATH": os.environ.get("BENCH_EXTRA_PATH", "")}


def live_key() -> str:
    subprocess.run([str(VENV / "python"), "manage.py", "migrate", "--noinput", "-v", "0"],
                   cwd=ROOT, env=ENV, check=True)
    out = subprocess.run([str(VENV / "python"), "manage.py", "createaccount", "Web bench",
                          "--json"], cwd=ROOT, env=ENV, check=True, capture_output=True,
                         text=True).stdout
    return re.search(r'"liveKey": "([^"]+)"', out).group(1)


def cpu_seconds(pid: int) -> float:
    """CPU of a process and its descendants (gunicorn's workers)."""
    table = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True,
                           text=True).stdout.split()
    children: dict[int, list[int]] = {}
    for child, parent in zip(table[::2], table[1::2], strict=True):
        children.setdefault(int(parent), []).append(int(child))
    todo, total = [pid], 0.0
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def wait_up(key: str, server: subprocess.Popen) -> None:
    request = urllib.request.Request(f"http://{BIND}/v1/webhooks",
                                     headers={"Authorization": f"Bearer {key}"})
    for _ in range(120):
        if server.poll() is not None:
            raise SystemExit(f"the server exited: {server.args}")
        try:
            with urllib.request.urlopen(request, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the server did not answer")


def wrk(key: str, seconds: int) -> str:
    return subprocess.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency",
                           "-H", f"Authorization: Bearer {key}", f"http://{BIND}/v1/webhooks"],
                          capture_output=True, text=True, check=True).stdout


def run(variant: str, key: str) -> dict:
    server = subprocess.Popen(VARIANTS[variant], cwd=ROOT, env=ENV, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_up(key, server)
        slow = measure(f"http://{BIND}", key, slow=SLOW, seconds=8, timeout=30)
        wrk(key, 3)  # warm every worker
        before = cpu_seconds(server.pid)
        out = wrk(key, SECONDS)
        cpu = cpu_seconds(server.pid) - before
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return {"variant": variant, "slow_clients": slow["slow_clients"],
            "fast_max_s": slow["max_s"], "fast_over_1s": slow["over_1s"],
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1),
            "p99": re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1),
            "cpu_ms_per_request": round(1000 * cpu / max(requests, 1), 2),
            "non_2xx": int(m.group(1)) if (m := re.search(r"Non-2xx[^:]*: (\d+)", out)) else 0}


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    variants = sys.argv[2:] or list(VARIANTS)
    key = live_key()
    for _ in range(rounds):
        for variant in variants:
            print(json.dumps(run(variant, key)), flush=True)


if __name__ == "__main__":
    main()
