"""Where the time of one atomic create + send goes, in-process (no HTTP server, no wrk).

    .venv/bin/python bench/api_profile.py [requests] [--profile] [--client]
    .venv/bin/python bench/api_profile.py --shapes 4x32,4x8,2x16 [rounds]

Runs `POST /checkin/v1/api/guest` with a template through Herald's real WSGI application
(``config.wsgi.application``: Django's WSGIHandler, every middleware, the request signals that
hand the database connection back to the pool after each request, as gunicorn calls it)
against PostgreSQL (database herald_bench_api, migrated on first use) and Redis (broker db 11,
the rate limiter and the dispatch kick marker), with no worker: sends stay queued. Logging is
production's (the JSON formatter, the delivery's "queued" line), written to /dev/null.
``--client`` uses Django's test client instead (it keeps the connection across requests).

Prints the mean wall and CPU microseconds per request (and the CPU of the database's
PostgreSQL backends, from /proc) and the SQL statements and Redis round trips per request;
``--profile`` adds cProfile's top functions (``BENCH_SORT=tottime`` for the flat profile,
``BENCH_TIMER=cpu`` for CPU time, ``BENCH_TOP`` lines; ``BENCH_SERVER_BINDING=1`` and
``BENCH_HEALTH_CHECKS=0`` try database settings, see ``_try_database_options``). CPU per
request is the figure to compare on a busy host: other processes stretch the wall time, not
the CPU this process spends. ``--shapes``: gunicorn's workers x threads compared under wrk
(``shapes``).
Set HERALD_DISPATCH_KICK_REDIS_URL= (empty) to compare with one publish per request.
"""

import cProfile
import io
import json
import logging
import os
import pstats
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB = "herald_bench_api"
os.environ.setdefault("DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{DB}")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/11")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")
# As `make bench` (bench/run.py): the limiter still counts every request in Redis.
os.environ.setdefault("HERALD_RATE_LIMIT_LIVE", "1000000")
os.environ.setdefault("HERALD_DAILY_QUOTA_LIVE", "0")
os.environ.setdefault("HERALD_API_KEY_CACHE_SECONDS", "30")
os.environ.setdefault("LOG_LEVEL", "WARNING")
sys.path.insert(0, str(ROOT))


class Counts:
    """SQL statements and Redis round trips (a pipeline is one) made while counting."""

    def __init__(self) -> None:
        self.sql = 0
        self.redis = 0

    def install(self) -> None:
        from django.db import connection
        from redis.connection import AbstractConnection

        def sql(execute, statement, params, many, context):
            self.sql += 1
            return execute(statement, params, many, context)

        connection.execute_wrappers.append(sql)
        send = AbstractConnection.send_packed_command

        def send_packed_command(conn, command, check_health=True):
            self.redis += 1
            return send(conn, command, check_health)

        AbstractConnection.send_packed_command = send_packed_command


def _try_database_options() -> None:
    """Settings to try before they are proposed (before the first connection opens the
    pool): BENCH_SERVER_BINDING=1 binds parameters server-side (psycopg's own cursor instead
    of Django's client-side quoting); BENCH_HEALTH_CHECKS=0 skips the pool's check query at
    each checkout."""
    from django.db import connection

    if os.environ.get("BENCH_SERVER_BINDING") == "1":
        connection.settings_dict.setdefault("OPTIONS", {})["server_side_binding"] = True
    if os.environ.get("BENCH_HEALTH_CHECKS") == "0":
        connection.settings_dict["CONN_HEALTH_CHECKS"] = False


def main() -> None:
    db = os.environ["DATABASE_URL"].rsplit("/", 1)[1]
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", db], capture_output=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], check=True, cwd=ROOT)
    from config.wsgi import application  # django.setup(), LOGGING included

    _try_database_options()

    for handler in logging.getLogger().handlers:  # formatted as in production, not printed
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))
    from django.test import Client

    from accounts.services import account_create
    from guests.services import event_create
    from templates.services import template_create

    n = int(next((a for a in sys.argv[1:] if a.isdigit()), "500"))
    keys = account_create(name=f"bench {uuid.uuid4()}")
    event = event_create(account=keys.account, name="Bench")
    template = template_create(account=keys.account, name="Ticket", subject="Hi {{ firstName }}",
                               text_body="Hi {{ firstName }}, see you at {{ event.name }}.")
    from django.db import connection

    connection.close()  # back to the pool, as after a request
    headers = {"HTTP_AUTHORIZATION": f"Bearer {keys.live_key}",
               "HTTP_OCP_APIM_SUBSCRIPTION_KEY": keys.subscription_key}

    def body(i: int) -> bytes:
        return json.dumps({
            "id": str(uuid.uuid4()), "firstName": "Jane", "lastName": "Smith",
            "email": f"jane+{i}@example.com", "eventId": str(event.id),
            "commsTemplateId": str(template.id), "correlationId": f"order-{i}"}).encode()

    if "--client" in sys.argv:
        client = Client(**headers)

        def once(i: int) -> None:
            response = client.post("/checkin/v1/api/guest", content_type="application/json",
                                   data=body(i))
            assert response.status_code == 200, response.content
    else:
        def once(i: int) -> None:
            data = body(i)
            environ = {
                "REQUEST_METHOD": "POST", "PATH_INFO": "/checkin/v1/api/guest",
                "SCRIPT_NAME": "", "QUERY_STRING": "", "SERVER_NAME": "testserver",
                "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
                "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(data)),
                "HTTP_HOST": "testserver", "wsgi.input": io.BytesIO(data),
                "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
                "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
                **headers}
            status = []
            response = application(environ, lambda s, h, exc_info=None: status.append(s))
            content = b"".join(response)
            response.close()  # request_finished: the connection goes back to the pool
            assert status[0].startswith("200"), content

    if "--shapes" in sys.argv:
        connection.close()
        shapes(keys, str(event.id), str(template.id))
        return
    for i in range(50):  # warm: connections, caches, imports
        once(i)
    counts = Counts()
    counts.install()
    # BENCH_TIMER=cpu: the profile in this process's CPU time (waits on PostgreSQL and Redis
    # drop out), else in wall time.
    timer = time.process_time if os.environ.get("BENCH_TIMER") == "cpu" else time.perf_counter
    profiler = cProfile.Profile(timer) if "--profile" in sys.argv else None
    pg = _postgres_cpu()
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    for i in range(n):
        once(i)
    if profiler:
        profiler.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    pg = sum(v - pg.get(pid, 0.0) for pid, v in _postgres_cpu().items())
    kick = os.environ.get("HERALD_DISPATCH_KICK_REDIS_URL", "(broker)") or "(none)"
    print(f"{n} requests ({'test client' if '--client' in sys.argv else 'WSGI'}): "
          f"{1e6 * wall / n:.0f} µs wall, {1e6 * cpu / n:.0f} µs CPU per request "
          f"(PostgreSQL's backends {1e6 * pg / n:.0f} µs); "
          f"{counts.sql / n:.2f} SQL statements, {counts.redis / n:.2f} Redis round trips "
          f"per request; kick marker: {kick}")
    if profiler:
        order = os.environ.get("BENCH_SORT", "cumulative")  # or tottime
        pstats.Stats(profiler).sort_stats(order).print_stats(int(os.environ.get("BENCH_TOP",
                                                                                "30")))


def shapes(keys, event_id: str, template_id: str) -> None:
    """``--shapes 4x32,4x8,2x16 [rounds]``: gunicorn (gunicorn.conf.py, these workers x
    threads) under wrk -t2 -c32 (BENCH_SECONDS, 10) on this script's database and Redis, the
    shapes alternated for ``rounds`` (2) rounds; per run requests/s, p50/p99 and the CPU ms
    per request of the server (master and workers) and of the database's PostgreSQL backends,
    from /proc: the steadier figures on a shared host."""
    from bench.procs import cpu_with_children, wait_http

    arg = sys.argv[sys.argv.index("--shapes") + 1]
    rounds = int(next((a for a in sys.argv[sys.argv.index("--shapes") + 2:] if a.isdigit()), 2))
    port, seconds = os.environ.get("BENCH_PORT", "8766"), os.environ.get("BENCH_SECONDS", "10")
    env = {**os.environ, "DJANGO_ALLOWED_HOSTS": "127.0.0.1", "HERALD_KEY": keys.live_key,
           "HERALD_SUB": keys.subscription_key, "HERALD_EVENT": event_id,
           "HERALD_TEMPLATE": template_id}
    url = f"http://127.0.0.1:{port}/checkin/v1/api/guest"
    wrk = ["wrk", "-t2", "-c32", "--latency", "-s", str(ROOT / "bench" / "guest.lua"), url]
    for _ in range(rounds):
        for shape in arg.split(","):
            workers, threads = shape.split("x")
            web = subprocess.Popen(
                [str(ROOT / ".venv" / "bin" / "gunicorn"), "config.wsgi", "-b",
                 f"127.0.0.1:{port}", "-w", workers, "--threads", threads, "--log-level",
                 "warning"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            try:
                wait_http(f"http://127.0.0.1:{port}/healthz")
                subprocess.run([*wrk[:3], "-d2s", *wrk[3:]], env=env, check=True,
                               capture_output=True)  # warm every worker
                cpu, pg = cpu_with_children(web.pid), _postgres_cpu()
                out = subprocess.run([*wrk[:3], f"-d{seconds}s", *wrk[3:]], env=env,
                                     check=True, capture_output=True, text=True).stdout
                cpu = cpu_with_children(web.pid) - cpu
                pg = sum(v - pg.get(pid, 0.0) for pid, v in _postgres_cpu().items())
            finally:
                web.terminate()
                web.wait()
            done = int(re.search(r"(\d+) requests in", out).group(1))
            bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
            print(f"{shape}: {rps:.0f}"
                  f" req/s, p50 {_latency(out, '50'):.1f} ms, p99 {_latency(out, '99'):.1f} ms,"
                  f" CPU ms per request: server {1000 * cpu / done:.2f},"
                  f" PostgreSQL {1000 * pg / done:.2f};"
                  f" {bad.group(1) if bad else 0} non-2xx; load {os.getloadavg()[0]:.1f}",
                  flush=True)


def _postgres_cpu() -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving this script's database (by pid)."""
    from bench.procs import cpu_own

    db = os.environ["DATABASE_URL"].rsplit("/", 1)[1]
    found = {}
    for stat in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = stat.read_bytes().replace(b"\0", b" ").split()
        except OSError:
            continue
        if words[:1] == [b"postgres:"] and db.encode() in words:
            found[int(stat.parent.name)] = cpu_own(stat.parent.name)
    return found


def _latency(out: str, pct: str) -> float:
    value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]


if __name__ == "__main__":
    main()
