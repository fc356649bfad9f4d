"""Process plumbing shared by the benchmarks: CPU seconds from /proc, waiting for a server."""

import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path


def cpu_own(pid: int | str, *, reaped: bool = False) -> float:
    """User + system CPU seconds of one process so far; ``reaped``: plus its exited
    children's (those it has waited for)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15 if reaped else 13]) / os.sysconf("SC_CLK_TCK")


def cpu_of(pids: Iterable[int | str]) -> float:
    return sum(cpu_own(pid) for pid in pids)


def children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(c) for c in found]


def cpu_with_children(pid: int) -> float:
    """A process and its live children (a prefork pool, gunicorn's workers)."""
    return cpu_of([pid, *children(pid)])


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


def database_migrated(db: str, env: dict[str, str]) -> None:
    """PostgreSQL database ``db`` created if missing, then migrated (``env`` names it)."""
    root = Path(__file__).resolve().parent.parent
    exists = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc",
         f"select 1 from pg_database where datname='{db}'"],
        capture_output=True, text=True, check=True).stdout.strip()
    if not exists:
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", db], check=True)
    subprocess.run([str(root / ".venv" / "bin" / "python"), "manage.py", "migrate", "-v", "0"],
                   cwd=root, env=env, check=True)


def worker_ready(*options: str, env: dict[str, str]) -> subprocess.Popen:
    """A Celery worker (``celery -A config worker`` plus ``options``), returned once it
    consumes, so its start-up is not timed; its output keeps being drained."""
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [str(root / ".venv" / "bin" / "celery"), "-A", "config", "worker", *options,
         "--without-gossip", "--without-mingle", "-l", "info"],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if " ready." in line:
            break
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc
