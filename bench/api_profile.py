"""Where the time of one atomic create + send goes, in-process (no HTTP server, no wrk).

    .venv/bin/python bench/api_profile.py [requests] [--profile] [--client]

Runs `POST /checkin/v1/api/guest` with a template through Herald's real WSGI application
(``config.wsgi.application``: Django's WSGIHandler, every middleware, the request signals that
hand the database connection back to the pool after each request, as gunicorn calls it)
against PostgreSQL (database herald_bench_api, migrated on first use) and Redis (broker db 11,
the rate limiter and the dispatch kick marker), with no worker: sends stay queued. Logging is
production's (the JSON formatter, the delivery's "queued" line), written to /dev/null.
``--client`` uses Django's test client instead (it keeps the connection across requests).

Prints the mean wall and CPU microseconds per request and the SQL statements and Redis round
trips per request; ``--profile`` adds cProfile's top functions (``BENCH_SORT=tottime`` for
the flat profile, ``BENCH_TIMER=cpu`` for CPU time, ``BENCH_TOP`` lines). CPU per request is
the figure to compare on a busy host: other processes stretch the wall time, not the CPU this
process spends.
Set HERALD_DISPATCH_KICK_REDIS_URL= (empty) to compare with one publish per request.
"""

import cProfile
import io
import json
import logging
import os
import pstats
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


def main() -> None:
    db = os.environ["DATABASE_URL"].rsplit("/", 1)[1]
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", db], capture_output=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], check=True, cwd=ROOT)
    from config.wsgi import application  # django.setup(), LOGGING included

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

    for i in range(50):  # warm: connections, caches, imports
        once(i)
    counts = Counts()
    counts.install()
    # BENCH_TIMER=cpu: the profile in this process's CPU time (waits on PostgreSQL and Redis
    # drop out), else in wall time.
    timer = time.process_time if os.environ.get("BENCH_TIMER") == "cpu" else time.perf_counter
    profiler = cProfile.Profile(timer) if "--profile" in sys.argv else None
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    for i in range(n):
        once(i)
    if profiler:
        profiler.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    kick = os.environ.get("HERALD_DISPATCH_KICK_REDIS_URL", "(broker)") or "(none)"
    print(f"{n} requests ({'test client' if '--client' in sys.argv else 'WSGI'}): "
          f"{1e6 * wall / n:.0f} µs wall, {1e6 * cpu / n:.0f} µs CPU per request; "
          f"{counts.sql / n:.2f} SQL statements, {counts.redis / n:.2f} Redis round trips "
          f"per request; kick marker: {kick}")
    if profiler:
        order = os.environ.get("BENCH_SORT", "cumulative")  # or tottime
        pstats.Stats(profiler).sort_stats(order).print_stats(int(os.environ.get("BENCH_TOP",
                                                                                "30")))


if __name__ == "__main__":
    main()
