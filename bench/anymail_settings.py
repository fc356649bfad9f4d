"""Settings of the hand-built peer in `bench/anymail_peer.py`: Herald's settings (so nothing
else differs) plus django-anymail, sending through its SendGrid backend to the bench's fake
SendGrid (SENDGRID_API_HOST, as Herald's adapter reads it). The peer's tasks touch no
database; its Celery app (`bench/anymail_tasks.py`) does not read Herald's CELERY_* settings.
"""

import os

from config.settings import *  # noqa: F403
from config.settings import DATABASES

INSTALLED_APPS = [*INSTALLED_APPS, "anymail"]  # noqa: F405

EMAIL_BACKEND = "anymail.backends.sendgrid.EmailBackend"
DEFAULT_FROM_EMAIL = "Herald <tickets@herald.localhost>"
ANYMAIL = {
    "SENDGRID_API_KEY": os.environ.get("SENDGRID_API_KEY", "SG.bench"),
    # anymail's default is "https://api.sendgrid.com/v3/"; the fake answers the same paths.
    "SENDGRID_API_URL": os.environ.get("SENDGRID_API_HOST", "http://127.0.0.1:1").rstrip("/")
    + "/v3/",
}

# No psycopg pool (Celery's Django fixup closes pools around prefork tasks); not used anyway.
options = {k: v for k, v in DATABASES["default"].get("OPTIONS", {}).items() if k != "pool"}
DATABASES = {"default": {**DATABASES["default"], "OPTIONS": options, "CONN_MAX_AGE": 0}}
