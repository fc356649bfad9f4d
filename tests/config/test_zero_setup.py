"""`make run`'s zero-setup shape, end to end (issue 16, "Done when"): with neither DATABASE_URL
nor CELERY_BROKER_URL, the web server and the worker find the checkout's embedded PostgreSQL
(config/database.py) and share kombu's filesystem queue (var/queue), and a guest created
through the check-in API with its template (the atomic send) is sent by the worker through
the outbox provider.

CI sets DATABASE_URL and CELERY_BROKER_URL for the suite: the children run without them (nor
any Redis URL). They run in a copy of the checkout's code in a temporary directory (a fresh
clone, without .git, .venv, var/ or .env), so their var/ (embedded server, queue, secret key)
is the copy's own: the checkout's var/pg and var/queue, and any worker of the checkout reading
that queue, are left alone. The processes are the two `make run` starts (the worker with beat
on threads, runserver), after its `migrate`; the test stops them, then the server it made.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from config import database
from tests.fakes.smtp_server import free_port

ROOT = Path(__file__).resolve().parents[2]
NOT_IN_A_FRESH_CLONE = shutil.ignore_patterns(
    ".git", ".venv", "var", ".env", "tests", "staticfiles", "__pycache__", "*.pyc",
    ".pytest_cache", ".ruff_cache", ".hypothesis", "*.egg-info")
# What CI or a developer's shell may point at servers; a fresh machine has none of it.
SERVER_SETTINGS = ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "DJANGO_SETTINGS_MODULE",
                   "HERALD_DISPATCH_KICK_REDIS_URL", "HERALD_RATE_LIMIT_REDIS_URL")
SENT_WITHIN_SECONDS = 30


@pytest.fixture
def checkout() -> Iterator[Path]:
    """A copy of the checkout's code, as a fresh clone has it; its embedded server is stopped
    and the copy deleted at the end."""
    tmp = Path(tempfile.mkdtemp(prefix="herald-zero-setup-"))
    copy = tmp / "herald"
    shutil.copytree(ROOT, copy, ignore=NOT_IN_A_FRESH_CLONE)
    try:
        yield copy
    finally:
        database.stop(var_dir=copy / "var")
        shutil.rmtree(tmp, ignore_errors=True)


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in SERVER_SETTINGS} | {
        "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}


def _manage(copy: Path, *args: str) -> str:
    run = subprocess.run([sys.executable, "manage.py", *args], cwd=copy, env=_environ(),
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def _start(copy: Path, name: str, *command: str) -> subprocess.Popen:
    """A process in a session of its own (so its threads and children stop with it), its
    output in a file beside the copy (shown when the test fails)."""
    with open(copy.parent / f"{name}.log", "w") as log:  # the child keeps its own copy
        return subprocess.Popen([sys.executable, *command], cwd=copy, env=_environ(),
                                stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


class Client:
    def __init__(self, base: str, keys: dict) -> None:
        self.base = base
        self.headers = {"Authorization": f"Bearer {keys['liveKey']}",
                        "Ocp-Apim-Subscription-Key": keys["subscriptionKey"],
                        "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def wait_until_up(self, processes: list[subprocess.Popen], seconds: float = 30) -> None:
        deadline, last = time.monotonic() + seconds, None
        while time.monotonic() < deadline:
            assert all(p.poll() is None for p in processes), "a process exited"
            try:
                if self.call("GET", "/checkin/v1/api/event")[0] == 200:
                    return
            except OSError as exc:
                last = exc
            time.sleep(0.2)
        raise AssertionError(f"the web server did not answer: {last!r}")


def _logs(copy: Path) -> str:
    return "\n".join(f"--- {log.name}\n{log.read_text()[-2000:]}"
                     for log in sorted(copy.parent.glob("*.log")))


def test_make_runs_processes_send_a_guests_ticket_with_no_server_configured(checkout):
    started = time.monotonic()
    _manage(checkout, "migrate", "--noinput", "-v", "0")
    keys = json.loads(_manage(checkout, "createaccount", "Zero setup", "--json"))
    port = free_port()
    worker = _start(checkout, "worker", "-m", "celery", "-A", "config", "worker", "-B",
                    "--pool=threads", "-c", "4", "-l", "warning")
    web = _start(checkout, "web", "manage.py", "runserver", "--noreload", "--insecure",
                 f"127.0.0.1:{port}")
    try:
        api = Client(f"http://127.0.0.1:{port}", keys)
        api.wait_until_up([worker, web])
        status, event = api.call("POST", "/checkin/v1/api/event", {"name": "Launch night"})
        assert status == 201, event
        status, template = api.call("POST", "/comms/v1/api/comms/template", {
            "name": "Ticket", "subject": "Your ticket for {{event.name}}",
            "textBody": "Hi {{firstName}}, see you there."})
        assert status == 201, template
        status, guest = api.call("POST", "/checkin/v1/api/guest", {
            "id": str(uuid.uuid4()), "firstName": "Jane", "lastName": "Smith",
            "email": "jane@example.com", "eventId": event["id"],
            "commsTemplateId": template["id"], "correlationId": "order-2026-0042"})
        assert status == 200 and guest["attendeeInvitationId"], guest

        deadline, send = time.monotonic() + SENT_WITHIN_SECONDS, {}
        while time.monotonic() < deadline and send.get("status") != "sent":
            time.sleep(0.2)
            send = api.call("GET", f"/comms/v1/api/comms/send/{guest['attendeeInvitationId']}")[1]
        assert send.get("status") == "sent", (send, _logs(checkout))
        assert send["events"][0]["detail"]["provider"] == "outbox"
    finally:
        _stop(web)
        _stop(worker)
    print(f"zero-setup send: {time.monotonic() - started:.1f} s from migrate to sent")

    # The server they used is the copy's own embedded one, not CI's (nor any on port 5432).
    var = checkout / "var"
    conf = json.loads((var / "pg.json").read_text())
    assert conf["port"] != 5432
    with psycopg.connect(database.url(var_dir=var)) as conn:
        directory = conn.execute("SELECT current_setting('data_directory')").fetchone()[0]
        guests = conn.execute("SELECT count(*) FROM guests_attendee WHERE id = %s",
                              [guest["id"]]).fetchone()[0]
    assert Path(directory).resolve() == (var / "pg").resolve() and guests == 1
    # and the queue they shared is the copy's var/queue (kombu's filesystem transport)
    assert (var / "queue" / "in").is_dir()
