"""Settings of the peer in `bench/peer.py`: Herald's settings plus django-post-office, which
sends through Django's SMTP backend to the bench's SMTP server (smtp-sink or aiosmtpd;
EMAIL_HOST/EMAIL_PORT from the environment, as for Herald), on a database of its own
(DATABASE_URL's, which peer.py sets: ``herald_bench_peer`` unless PEER_DATABASE), on Herald's
PostgreSQL server.
"""

import os

from config.settings import *  # noqa: F403
from config.settings import DATABASES

INSTALLED_APPS = [*INSTALLED_APPS, "post_office"]  # noqa: F405

EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
DEFAULT_FROM_EMAIL = "Herald <tickets@herald.localhost>"

# Without Herald's psycopg pool: send_queued_mail forks its worker processes, and a pool
# inherited across fork breaks ("can't change 'autocommit' now"); plain connections, as
# post_office documents, each process opening its own.
options = {k: v for k, v in DATABASES["default"].get("OPTIONS", {}).items() if k != "pool"}
DATABASES = {"default": {**DATABASES["default"], "OPTIONS": options, "CONN_MAX_AGE": 0}}

# post_office's throughput knobs (its README: "Batch Size", "Threads"); peer.py passes the
# values it runs with. LOG_LEVEL 2 (its default) writes one Log row per sent email, as Herald
# writes one comms.sent DeliveryEvent per delivery.
POST_OFFICE = {
    "BATCH_SIZE": int(os.environ.get("PEER_PO_BATCH_SIZE", "1000")),
    "THREADS_PER_PROCESS": int(os.environ.get("PEER_PO_THREADS", "5")),
    "LOG_LEVEL": 2,
    "BATCH_DELIVERY_TIMEOUT": 600,
}
