"""Micro benchmark of ``templates.rendering.render``: a typical ticket (subject, HTML and text
with firstName, event.name and a couple of filters) rendered N times (default 20,000) from the
compile cache, as the bulk-send path does; prints µs per render.

    .venv/bin/python bench/render.py [renders]
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

SUBJECT = "Your ticket for {{ event.name | title }}"
HTML = ("<p>Hi {{ firstName | default('there') }},</p><p>See you at <b>{{ event.name }}</b> on "
        "{{ event.startsAt }}.</p>{% if event.venue %}<p>{{ event.venue | upper }}</p>{% endif %}"
        "<p>Your ticket: {{ attendeeInvitationId }}</p>")
TEXT = ("Hi {{ firstName | default('there') }},\nSee you at {{ event.name }} on "
        "{{ event.startsAt }}.\n{% if event.venue %}{{ event.venue | upper }}\n{% endif %}"
        "Your ticket: {{ attendeeInvitationId }}")


def main(renders: int) -> None:
    import django

    django.setup()
    from templates.rendering import render

    def once(i: int) -> object:
        return render(cache_key=("bench", 1), subject=SUBJECT, html_body=HTML, text_body=TEXT,
                      context={"firstName": f"Jane {i}", "attendeeInvitationId": str(i),
                               "event": {"name": "Spring gala", "venue": "Town hall",
                                         "startsAt": "2025-05-01 19:00"}})

    for i in range(200):  # compile and warm up
        once(i)
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(renders):
        once(i)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"{renders} renders: {wall / renders * 1e6:.1f} µs/render wall, "
          f"{cpu / renders * 1e6:.1f} µs/render CPU")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
