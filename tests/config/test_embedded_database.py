"""Without DATABASE_URL every process of a checkout uses one embedded PostgreSQL server
(config/database.py): made by the first, found by the others, outliving each of them.

These tests run servers of their own, in a temporary directory standing for the checkout's
``var/`` (the real ``var/pg`` is left alone), stopped at the end.
"""

import contextlib
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from config import database

ROOT = Path(__file__).resolve().parents[2]

# A process of its own that finds (or makes) the server and writes one row on it.
WRITER = """
import os, sys
from pathlib import Path
import psycopg
from config import database
url = database.url(var_dir=Path(sys.argv[1]))
with psycopg.connect(url) as conn:
    # CREATE TABLE IF NOT EXISTS races with itself in PostgreSQL: one creator at a time.
    conn.execute("SELECT pg_advisory_xact_lock(16)")
    conn.execute("CREATE TABLE IF NOT EXISTS seen (pid int, started timestamptz)")
    conn.execute("INSERT INTO seen SELECT %s, pg_postmaster_start_time()", [os.getpid()])
print(url)
"""

# The real settings in a process without DATABASE_URL, pointed at the test's var/ instead of
# the checkout's: a management command, then what its connection is connected to.
MANAGE = """
import sys
from pathlib import Path
import config.database
config.database.VAR_DIR = Path(sys.argv[1])
from django.core.management import execute_from_command_line
execute_from_command_line(["manage.py", "check", "--database", "default"])
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("SELECT current_setting('data_directory'), count(*) FROM seen")
    print(*cursor.fetchone())
"""


def _python(code: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | env
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def var_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="herald-pg-test-"))
    try:
        yield path
    finally:
        database.stop(var_dir=path)
        shutil.rmtree(path, ignore_errors=True)


def _rows(var_dir: Path) -> list[tuple]:
    with psycopg.connect(database.url(var_dir=var_dir)) as conn:
        return conn.execute("SELECT pid, started FROM seen").fetchall()


def test_processes_started_together_share_one_server_that_outlives_them(var_dir):
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda _: _python(WRITER, str(var_dir)), range(4)))
    assert all(run.returncode == 0 for run in runs), [run.stderr[-2000:] for run in runs]
    assert len({run.stdout for run in runs}) == 1  # one URL
    rows = _rows(var_dir)  # read after every writer has exited: the server still runs
    assert len(rows) == 4 and len({started for _, started in rows}) == 1  # one server start
    assert (var_dir / "pg.json").stat().st_mode & 0o077 == 0  # its password: owner only


def test_the_cluster_is_its_own_users_alone(var_dir):
    """PostgreSQL refuses root: as root (CI) the cluster and its server belong to a system
    user of their own, never a shared one such as ``nobody``, whose other processes could
    otherwise read every tenant's tables or signal the server; otherwise to the user."""
    data = var_dir / "pg"
    owner = data.stat()
    assert stat.S_IMODE(owner.st_mode) == 0o700
    postmaster = int((data / "postmaster.pid").read_text().split()[0])
    runs_as = subprocess.run(["ps", "-o", "user=", "-p", str(postmaster)], capture_output=True,
                             text=True, check=True).stdout.strip()
    if os.geteuid() == 0:
        user = pwd.getpwnam(database.SERVER_USER)
        assert (owner.st_uid, runs_as) == (user.pw_uid, database.SERVER_USER)
        assert user.pw_shell.endswith(("nologin", "false")) and user.pw_dir == "/nonexistent"
        listing = subprocess.run(["runuser", "-u", "nobody", "--", "ls", str(data)],
                                 capture_output=True, text=True, check=False)
        assert listing.returncode != 0 and "Permission denied" in listing.stderr
    else:
        assert owner.st_uid == os.getuid() and runs_as == pwd.getpwuid(os.getuid()).pw_name


def test_the_settings_without_database_url_use_that_server(var_dir):
    run = _python(MANAGE, str(var_dir), DJANGO_SETTINGS_MODULE="config.settings")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "System check identified no issues" in run.stdout
    directory, rows = run.stdout.strip().splitlines()[-1].split()
    assert Path(directory).resolve() == (var_dir / "pg").resolve() and rows == "4"


def test_a_stopped_server_starts_again_with_its_data_even_when_its_port_was_taken(var_dir):
    assert database.stop(var_dir=var_dir) and not database.stop(var_dir=var_dir)
    port = json.loads((var_dir / "pg.json").read_text())["port"]
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind((database.HOST, port))
        squatter.listen()
        url = database.url(var_dir=var_dir)
    assert f":{port}/" not in url
    assert len(_rows(var_dir)) == 4


def test_a_cluster_of_the_former_server_user_is_handed_over_at_its_next_start(var_dir,
                                                                              capsys):
    """Earlier versions ran the server as ``nobody`` under root: a checkout's var/pg made so
    is handed to the server's own user when it next starts, its data kept (``make run`` keeps
    working); as any other user the cluster stays its owner's."""
    assert database.stop(var_dir=var_dir)
    data = var_dir / "pg"
    if os.geteuid() == 0:
        nobody = pwd.getpwnam(database.FORMER_SERVER_USER)
        subprocess.run(["chown", "-R", f"{nobody.pw_uid}:{nobody.pw_gid}", str(data)],
                       check=True)
    assert len(_rows(var_dir)) == 4
    expected = pwd.getpwnam(database.SERVER_USER) if os.geteuid() == 0 else None
    assert _owners(data) == {expected.pw_uid if expected else os.getuid()}
    note = capsys.readouterr().err
    assert (f"belonged to {database.FORMER_SERVER_USER}" in note) == (expected is not None)


def _owners(top: Path) -> set[int]:
    """Whom the files under ``top`` belong to (those the running server removes meanwhile
    aside)."""
    owners = set()
    for path in [top, *top.rglob("*")]:
        with contextlib.suppress(FileNotFoundError):
            owners.add(path.lstat().st_uid)
    return owners


def test_settings_refuse_a_database_other_than_postgresql():
    run = _python("import django; django.setup()", DJANGO_SETTINGS_MODULE="config.settings",
                  DATABASE_URL="sqlite:///var/herald.sqlite3")
    assert run.returncode != 0
    assert "DATABASE_URL must be a PostgreSQL URL" in run.stderr
    assert "not sqlite://" in run.stderr
