"""Create the demo account, admin user, event and template once; print how to use them.

Keys are stored hashed, so the demo's raw keys are kept in ``var/demo.json`` (a local,
development-only file) to print them again on every ``make run``.
"""

import json
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.services import account_create, membership_add
from guests.services import event_create
from templates.services import template_create

DEMO_FILE = settings.VAR_DIR / "demo.json"

TICKET_HTML = """<h1>Your ticket for {{ event.name }}</h1>
<p>Hi {{ firstName }}, you're on the list for <strong>{{ event.name }}</strong>.</p>
<p>Ticket reference: {{ attendeeId }}</p>"""
TICKET_TEXT = """Hi {{ firstName }},

you're on the list for {{ event.name }}.
Ticket reference: {{ attendeeId }}"""


class Command(BaseCommand):
    help = "Create the demo data if none exists and print the admin URL, login and API keys."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", default="8000")

    def handle(self, *args, **options) -> None:
        if not DEMO_FILE.exists():
            DEMO_FILE.parent.mkdir(parents=True, exist_ok=True)
            DEMO_FILE.write_text(json.dumps(self._create(), indent=2))
            DEMO_FILE.chmod(0o600)
        demo = json.loads(DEMO_FILE.read_text())
        base = f"http://127.0.0.1:{options['port']}"
        self.stdout.write(self.style.SUCCESS("Herald is ready."))
        lines = [
            ("Admin", f"{base}/admin/  (login {demo['username']} / {demo['password']})"),
            ("API docs", f"{base}/api/docs/"),
            ("Account id", demo["accountId"]),
            ("Live key", demo["liveKey"]),
            ("Test key", demo["testKey"]),
            ("Admin key", demo["adminKey"]),
            ("Subscription key", demo["subscriptionKey"]),
            ("Demo event id", demo["eventId"]),
            ("Demo template id", demo["templateId"]),
        ]
        for label, value in lines:
            self.stdout.write(f"  {label:17} {value}")

    @transaction.atomic
    def _create(self) -> dict[str, str]:
        keys = account_create(name="Demo")
        password = secrets.token_urlsafe(12)
        if get_user_model().objects.filter(username="admin").exists():
            password = "(unchanged: the existing admin user's password)"
        membership_add(account=keys.account, username="admin", password=password,
                       is_superuser=True)
        event = event_create(account=keys.account, name="Herald Demo Night", venue="Main Hall")
        template = template_create(
            account=keys.account, name="Ticket", subject="Your ticket for {{ event.name }}",
            html_body=TICKET_HTML, text_body=TICKET_TEXT,
        )
        return {**keys.as_json(), "username": "admin", "password": password,
                "eventId": str(event.id), "templateId": str(template.id)}
