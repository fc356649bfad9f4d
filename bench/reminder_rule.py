"""Adding a reminder rule to a big event: what the request costs, and what the job costs.

    .venv/bin/python bench/reminder_rule.py [guests] [--inline]

On its own database (``BENCH_REMINDER_DATABASE_URL``, default ``herald_bench_reminders`` on
127.0.0.1; migrated, then an account, an event with ``guests`` guests (50,000) and a template
made once and reused) and Redis db 12 (nothing consumes it: the job published by the request
is not run by a worker here). Prints, for ``reminders.reminder_rule_create`` (the REST POST's
and the admin's service): its wall time and this process's CPU time; then the job
(``reminder_rule_fill``, run here in-process as a worker would) the same way, and again (a
rerun: it must insert nothing); and the reminders made. Each run adds a new rule (a new
offset) to the same event, after the same call once on a one-guest event (rolled back) to warm
the process up. ``--inline``: every event counts as small (``HERALD_REMINDER_INLINE_GUESTS``
= 10**9), so the request makes them all itself, as before the job existed.
"""

import os
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", os.environ.get(
    "BENCH_REMINDER_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/herald_bench_reminders"))
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/12")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import Account  # noqa: E402
from accounts.services import account_create  # noqa: E402
from common import jobs  # noqa: E402
from comms.models import Delivery  # noqa: E402
from guests import reminders  # noqa: E402
from guests.models import Attendee, Event  # noqa: E402
from guests.services import event_create  # noqa: E402
from templates.models import MessageTemplate  # noqa: E402
from templates.services import template_create  # noqa: E402

NAME = "Reminder bench"


def setup(guests: int) -> tuple[Account, Event, MessageTemplate]:
    call_command("migrate", verbosity=0)
    account = Account.objects.filter(name=NAME).first() or account_create(name=NAME).account
    event = Event.objects.filter(account=account).first() or event_create(
        account=account, name="Big gala", starts_at=timezone.now() + timedelta(days=30),
        time_zone="Europe/Paris")
    have = Attendee.objects.filter(event=event).count()
    Attendee.objects.bulk_create([
        Attendee(id=uuid.uuid4(), account=account, event=event, first_name=f"G{n}",
                 last_name="Guest", email=f"g{n}@example.com") for n in range(have, guests)],
        batch_size=5000)
    template = MessageTemplate.objects.filter(account=account).first() or template_create(
        account=account, name="Reminder", subject="Soon: {{ event.name }}",
        text_body="Hi {{ firstName }}")
    return account, event, template


def warm_up(account: Account, template: MessageTemplate) -> None:
    """The same call once on a one-guest event, rolled back: the process's first queries and
    imports are not the request's."""
    with transaction.atomic():
        small = event_create(account=account, name="Warm-up",
                             starts_at=timezone.now() + timedelta(days=30))
        Attendee.objects.create(id=uuid.uuid4(), account=account, event=small, email="w@x.org")
        reminders.reminder_rule_create(account=account, event_id=small.id,
                                       template_id=template.id, offset_minutes=-60)
        transaction.set_rollback(True)
    # And one publish of the job (for a rule that does not exist: a no-op if ever run), so
    # Celery's one-time loading of the tasks' modules is not counted in the request either:
    # a web process has done it long before.
    jobs.publish(reminders.FILL_TASK, str(uuid.uuid4()))


def timed(label: str, call) -> object:
    wall, cpu = time.perf_counter(), time.process_time()
    result = call()
    print(f"{label}: {time.perf_counter() - wall:.3f} s wall, "
          f"{time.process_time() - cpu:.3f} s CPU (this process)")
    return result


def main() -> None:
    args = [arg for arg in sys.argv[1:] if arg != "--inline"]
    guests = int(args[0]) if args else 50_000
    if "--inline" in sys.argv:
        settings.HERALD_REMINDER_INLINE_GUESTS = 10**9
    account, event, template = setup(guests)
    offset = -60 - event.reminders.count()
    print(f"guests: {Attendee.objects.filter(event=event).count()}; load: {os.getloadavg()}")

    def request():
        with transaction.atomic():  # the request's (its on-commit publish runs after it)
            return reminders.reminder_rule_create(account=account, event_id=event.id,
                                                  template_id=template.id,
                                                  offset_minutes=offset)

    warm_up(account, template)
    rule = timed("request (reminder_rule_create)", request)
    made = Delivery.objects.filter(refs__reminderRuleId=str(rule.id))
    print(f"reminders after the request: {made.count()}")
    fill = getattr(reminders, "reminder_rule_fill", None)
    if fill is not None:
        timed("job (reminder_rule_fill)", lambda: fill(rule_id=rule.id))
        print(f"reminders after the job: {made.count()}")
        timed("job rerun", lambda: fill(rule_id=rule.id))
        print(f"reminders after the rerun: {made.count()}")
    print(f"load: {os.getloadavg()}")


if __name__ == "__main__":
    main()
