"""The peer most Django shops build by hand (issue #20, item 7): one Celery task per email,
rendered with Django's templates and sent with ``EmailMultiAlternatives`` through
django-anymail's SendGrid backend. Run by `bench/anymail_peer.py` as
``celery -A bench.anymail_tasks worker --pool=prefork -c 2``.

Its Celery app is the plain one such a project writes (a broker URL, results ignored),
with the prefetch multiplier Herald's workers use (16) so both drain a backlog of short
tasks alike. The templates are compiled once per process, as Django's cached loader does;
the task gets the recipient's context as arguments, so it reads no database row — the most
favourable version of this peer.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.anymail_settings")

import django  # noqa: E402
from django.apps import apps  # noqa: E402

if not apps.ready:  # a worker's import; a test imports it with Django set up already
    django.setup()

from celery import Celery  # noqa: E402
from django.core.mail import EmailMultiAlternatives  # noqa: E402
from django.template import Context, Template  # noqa: E402

from bench.peer import FROM, HTML, SUBJECT, TEXT  # noqa: E402

app = Celery("anymail_peer", broker=os.environ.get("CELERY_BROKER_URL"))
app.conf.update(task_ignore_result=True, worker_prefetch_multiplier=16,
                worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)

_SUBJECT, _TEXT, _HTML = Template(SUBJECT), Template(TEXT), Template(HTML)


@app.task(name="anymail_peer.send_ticket")
def send_ticket(recipient: str, name: str) -> None:
    """One email: render, then one SendGrid request (``send()`` opens and closes the
    backend's connection, as a task per email does)."""
    context = Context({"name": name})
    message = EmailMultiAlternatives(_SUBJECT.render(context), _TEXT.render(context),
                                     f"Herald <{FROM}>", [recipient])
    message.attach_alternative(_HTML.render(context), "text/html")
    message.send()
