"""Where the time of one atomic create + send goes, in-process (no HTTP server, no wrk).

    .venv/bin/python bench/api_profile.py [requests] [--profile]

Runs `POST /checkin/v1/api/guest` with a template through Django's test client against
PostgreSQL (database herald_bench_api, migrated on first use) and Redis (broker db 11, the
rate limiter and the dispatch kick marker), with no worker: sends stay queued. Prints the
mean wall and CPU milliseconds per request; ``--profile`` adds cProfile's top functions.
Set HERALD_DISPATCH_KICK_REDIS_URL= (empty) to compare with one publish per request.
"""

import cProfile
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
os.environ.setdefault("HERALD_RATE_LIMIT_LIVE", "1000000")
os.environ.setdefault("LOG_LEVEL", "WARNING")
sys.path.insert(0, str(ROOT))


def main() -> None:
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", DB], capture_output=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], check=True, cwd=ROOT)
    import django

    django.setup()
    from django.test import Client

    from accounts.services import account_create
    from guests.services import event_create
    from templates.services import template_create

    n = int(next((a for a in sys.argv[1:] if a.isdigit()), "500"))
    keys = account_create(name=f"bench {uuid.uuid4()}")
    event = event_create(account=keys.account, name="Bench")
    template = template_create(account=keys.account, name="Ticket", subject="Hi {{ firstName }}",
                               text_body="Hi {{ firstName }}, see you at {{ event.name }}.")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {keys.live_key}",
                    HTTP_OCP_APIM_SUBSCRIPTION_KEY=keys.subscription_key)

    def once(i: int) -> None:
        response = client.post("/checkin/v1/api/guest", content_type="application/json", data={
            "id": str(uuid.uuid4()), "firstName": "Jane", "lastName": "Smith",
            "email": f"jane+{i}@example.com", "eventId": str(event.id),
            "commsTemplateId": str(template.id), "correlationId": f"order-{i}"})
        assert response.status_code == 200, response.content

    for i in range(50):  # warm: connections, caches, imports
        once(i)
    profiler = cProfile.Profile() if "--profile" in sys.argv else None
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    for i in range(n):
        once(i)
    if profiler:
        profiler.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    kick = os.environ.get("HERALD_DISPATCH_KICK_REDIS_URL", "(broker)") or "(none)"
    print(f"{n} requests: {1000 * wall / n:.2f} ms wall, {1000 * cpu / n:.2f} ms CPU per "
          f"request; kick marker: {kick}")
    if profiler:
        order = os.environ.get("BENCH_SORT", "cumulative")  # or tottime
        pstats.Stats(profiler).sort_stats(order).print_stats(30)


if __name__ == "__main__":
    main()
