"""Guest CSV import and bulk send, timed through the services their Celery tasks run.

    .venv/bin/python bench/csv_import.py [rows] [--json]   # the embedded server (var/pg)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/herald_bench_import \
        .venv/bin/python bench/csv_import.py [rows]        # that server

Either way on a database of its own, ``herald_bench_import``, created if missing.

``--json``: a last line with the seconds of each step, for ``bench/run.py``'s table.

Generates a CSV of ``rows`` guests (default 100,000), then times, in this process (Celery
eager, as a worker would run the same functions):
- upload + validate (``guest_import_create`` → ``guest_import_validate``),
- import (``guest_import_confirm`` → ``guest_import_run``),
- the same file again (every id exists: all skipped),
- bulk send creation (``bulk_send_create`` → ``bulk_send_run``): queued deliveries/s, with
  the send tasks not enqueued (sending is the pipeline's benchmark, ``bench/run.py``).
"""

import json
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATABASE = "herald_bench_import"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")


def database_ensure() -> None:
    """DATABASE_URL's database created if missing; without DATABASE_URL, ``herald_bench_import``
    on the embedded server."""
    from config import database

    if os.environ.get("DATABASE_URL"):
        database.database_ensure(os.environ["DATABASE_URL"])
    else:
        os.environ["DATABASE_URL"] = database.url(DATABASE)


def csv_bytes(rows: int) -> bytes:
    lines = ["id,firstName,lastName,email,correlationId"]
    lines += [f"{uuid.uuid4()},Guest{i},Bench,guest{i}@example.com,order-{i}"
              for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def timed(label: str, rows: int, action) -> float:
    """Wall time (the figure), and this process's CPU time beside it: the machine is shared,
    so a wall time far above the CPU time means waiting (for the database, or for a core)."""
    started, cpu = time.perf_counter(), time.process_time()
    action()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"{label:<40} {rows:>8,} rows {seconds:7.2f} s {rows / seconds:>8,.0f} rows/s"
          f"  (cpu {cpu:.2f} s)", flush=True)
    return seconds


def main() -> None:
    numbers = [arg for arg in sys.argv[1:] if arg != "--json"]
    rows = int(numbers[0]) if numbers else 100_000
    database_ensure()
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    from accounts.services import account_create
    from config.celery import app
    from guests import bulk
    from guests.imports import guest_import_confirm, guest_import_create
    from guests.models import Attendee, GuestImport
    from guests.services import event_create
    from templates.services import template_create

    app.conf.task_always_eager = True
    bulk.enqueue = lambda *args, **kwargs: None  # creation only: no send tasks
    account = account_create(name=f"bench {uuid.uuid4().hex[:6]}").account
    event = event_create(account=account, name="Bench event")
    data = csv_bytes(rows)
    print(f"{connection.vendor}: {rows:,} rows, {len(data) / 1e6:.1f} MB CSV; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    def upload():
        holder.append(guest_import_create(event=event, user=None, filename="bench.csv",
                                          data=data))

    totals, steps = [], []
    for label in ("first import", "same file again (all skipped)"):
        holder: list[GuestImport] = []
        validate = timed(f"validate ({label})", rows, upload)
        guest_import = GuestImport.objects.get(pk=holder[0].pk)
        assert guest_import.status == "validated", guest_import.file_error
        run = timed(f"import ({label})", rows,
                    lambda gi=guest_import: guest_import_confirm(guest_import=gi))
        guest_import.refresh_from_db()
        assert guest_import.status == "done", guest_import.file_error
        print(f"  → imported {guest_import.imported:,}, skipped {guest_import.skipped:,};"
              f" validate + import {validate + run:.2f} s")
        totals.append(validate + run)
        steps += [validate, run]
    assert Attendee.objects.filter(event=event).count() == rows

    template = template_create(account=account, name="Bench ticket", subject="Hi {{ firstName }}",
                               text_body="See you at {{ event.name }}.")
    queued = timed("bulk send: deliveries queued", rows, lambda: bulk.bulk_send_create(
        event=event, template_id=template.pk, audience="all", mode="live",
        token=uuid.uuid4(), user=None))
    print(f"first import end to end: {totals[0]:.2f} s (budget 30 s)")
    if "--json" in sys.argv:
        print(json.dumps({"rows": rows, "validate": steps[0], "import": steps[1],
                          "again": totals[1], "queued": queued, "load": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
