"""Reading claimed deliveries as dispatch does, with Django's PostgreSQL backend and with
``common.postgresql`` (psycopg's C loader for timestamps), alternated in fresh processes.

    .venv/bin/python bench/row_load.py [rounds]

Needs the deliveries of ``bench/bulk_send.py profile`` in ``herald_bench_bulk`` (run that
first); prints the wall and CPU time per 1,000 rows for each backend.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
URL = "postgres://postgres@127.0.0.1:5432/herald_bench_bulk"
ENGINES = {"django": "django.db.backends.postgresql", "common.postgresql": "common.postgresql"}


def measure(engine: str, loads: int = 20) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.update(DJANGO_SETTINGS_MODULE="config.settings", DATABASE_URL=URL)
    import config.settings

    config.settings.DATABASES["default"]["ENGINE"] = engine
    import django

    django.setup()
    from comms.models import Delivery

    ids = list(Delivery.objects.values_list("id", flat=True)[:1000])

    def load() -> list:
        return list(Delivery.objects.prefetch_related("template")
                    .filter(id__in=ids).order_by("created_at"))

    for _ in range(3):
        load()
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(loads):
        load()
    print(f"{(time.perf_counter() - started) / loads * 1000:.1f} "
          f"{(time.process_time() - cpu) / loads * 1000:.1f}")


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in ENGINES}
    for _ in range(rounds):
        for name, engine in ENGINES.items():
            out = subprocess.run([sys.executable, __file__, "_measure", engine], check=True,
                                 capture_output=True, text=True).stdout.split()
            results[name].append((float(out[0]), float(out[1])))
    for name, runs in results.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(f"{name:18} per 1,000 rows: wall {min(walls):.0f}-{max(walls):.0f} ms, "
              f"CPU {min(cpus):.0f}-{max(cpus):.0f} ms ({rounds} runs)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["_measure"]:
        measure(sys.argv[2])
    else:
        main()
