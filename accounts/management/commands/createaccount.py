import json

from django.core.management.base import BaseCommand

from accounts.services import account_create


class Command(BaseCommand):
    help = "Create an account with its API keys; the keys are printed now and never again."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("--json", action="store_true", help="Print the keys as JSON.")
        parser.add_argument(
            "--unverified", action="store_true", help="Not yet verified for sending."
        )

    def handle(self, *args, **options) -> None:
        keys = account_create(name=options["name"], verified_for_sending=not options["unverified"])
        data = keys.as_json()
        if options["json"]:
            self.stdout.write(json.dumps(data))
            return
        for label, value in data.items():
            self.stdout.write(f"{label:16} {value}")
