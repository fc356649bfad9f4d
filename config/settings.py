"""Herald settings: every value comes from the environment (see the README's table)."""

import ipaddress
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from common import logs as common_logs
from config import database as embedded_database

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
def _secret_key() -> str:
    """DJANGO_SECRET_KEY, or a random key generated once and kept in var/secret_key (0600),
    so a zero-setup install never runs with a key anyone can read in this repository."""
    if value := env.str("DJANGO_SECRET_KEY", default=""):
        return value
    path = VAR_DIR / "secret_key"
    if not path.exists():
        import secrets

        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
# HTTPS (README's table): off by default, so `make run` serves plain HTTP on 127.0.0.1.
# DJANGO_HTTPS=true turns on secure cookies, the redirect to HTTPS and a year of HSTS
# (subdomains and preload included: the site must then stay HTTPS-only); each can be set on
# its own. Behind a TLS-terminating proxy, DJANGO_SECURE_PROXY_SSL_HEADER names
# the header it sets ("X-Forwarded-Proto" or "X-Forwarded-Proto: https"; the proxy must
# overwrite any client-sent one).
HTTPS = env.bool("DJANGO_HTTPS", default=False)
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=HTTPS)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=HTTPS)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=HTTPS)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=HTTPS)
if _proxy_ssl := env.str("DJANGO_SECURE_PROXY_SSL_HEADER", default=""):
    _name, _, _value = _proxy_ssl.partition(":")
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _name.strip().upper().replace("-", "_"),
                               _value.strip() or "https")

INSTALLED_APPS = [
    # django-unfold: the admin's theme (sidebar navigation, tabs, responsive tables); before
    # django.contrib.admin so its templates win.
    "unfold",
    "unfold.contrib.filters",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "axes",
    "common",
    "accounts",
    "guests",
    "contacts",
    "templates",
    "domains",
    "comms",
    "emails",
    "multichannel",
    "notifications",
    "webhooks",
]

MIDDLEWARE = [
    "config.middleware.RequestIdMiddleware",  # first: every response, errors too, has its id
    # django-prometheus: requests by view, method and status, and their latency (/metrics).
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # /healthz and /readyz answered before any host check, HTTPS redirect or session: a
    # probe comes by the pod's address over plain HTTP (config/health.py)
    "config.middleware.HealthMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.ChunkedBodyMiddleware",  # a body without Content-Length is read too
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Requests by view and status: nearest the view, after Axes has answered a lockout.
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out login into its page
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
APPEND_SLASH = False
# Big enough for a SendGrid event batch (≤ 768 KB) and a large template; bigger is refused.
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "config" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- the admin (django-unfold) --------------------------------------------------------------
# The sidebar follows the staff's work (Events, Support, Settings; internals for superusers) and
# the home page shows their events, today's sends and what needs attention: config/admin_home.py.
# Dates and times in the admin: config/formats/en/formats.py ("6 Dec 2026, 23:42").
FORMAT_MODULE_PATH = ["config.formats"]
# Unfold's login form carries no "next" field: a login at /admin/login/ lands on the home page.
LOGIN_REDIRECT_URL = "admin:index"
UNFOLD = {
    "SITE_TITLE": "Herald",
    "SITE_HEADER": "Herald",
    "SITE_SYMBOL": "campaign",
    "SITE_URL": None,  # no "View site": Herald's only site is this admin and the APIs
    "SHOW_VIEW_ON_SITE": False,
    "SHOW_HISTORY": True,
    "DASHBOARD_CALLBACK": "config.admin_home.dashboard",
    "SIDEBAR": {
        "show_search": False,
        "show_all_applications": False,
        "navigation": "config.admin_home.navigation",
    },
}

# --- database -----------------------------------------------------------------------------
# PostgreSQL only. Without DATABASE_URL: this checkout's own server (config/database.py), its
# data in var/pg, started by the first process that needs it and shared by every later one.
database_url = env.str("DATABASE_URL", default="") or embedded_database.url()
DATABASES = {"default": env.db_url_config(database_url)}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured(
        f"DATABASE_URL must be a PostgreSQL URL (postgres://user:password@host:port/name), "
        f"not {database_url.split(':', 1)[0]}://: Herald runs on PostgreSQL only. Unset it to "
        f"use the embedded server in var/pg.")
if env.bool("DATABASE_POOL", default=True):
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=8),
        "timeout": 10,
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # The pool checks a connection before handing it out: one a PostgreSQL restart cut is
    # replaced instead of failing the task that gets it.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Django's backend with psycopg's C loader for timestamps (common/postgresql/base.py).
DATABASES["default"]["ENGINE"] = "common.postgresql"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- admin logins: failed attempts limited per user and per client address (django-axes)
# Counted in the database (shared by every gunicorn process); a locked login answers 429 with
# the admin's "Login locked" page, even with the right password, until the cool-off ends or
# an owner unlocks it (README, "Admin logins").
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out login
    "django.contrib.auth.backends.ModelBackend",
]
# axes' database handler, whose reset on success keeps the address's count (accounts/admin.py).
AXES_HANDLER = "accounts.admin.LoginAttemptsHandler"
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15)) or None
# Each entry is counted on its own; "username+ip_address" counts the pair together.
AXES_LOCKOUT_PARAMETERS = [
    entry.split("+") if "+" in entry else entry
    for entry in env.list("AXES_LOCKOUT_PARAMETERS", default=["username", "ip_address"])]
AXES_RESET_ON_SUCCESS = True  # a successful login forgets that user's earlier failures
# An attempt during the lock is refused and not counted: the lock ends AXES_COOLOFF_MINUTES
# after the failure that set it (else anyone could keep an owner locked out for ever).
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "accounts.admin.login_locked_response"
# The client address as the API's guard reads it (HERALD_TRUSTED_PROXIES, below).
AXES_CLIENT_IP_CALLABLE = "api.guard.client_address"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]

# One formatter for every line (common.logs): JSON objects (HERALD_LOG_FORMAT=json, the default
# unless DJANGO_DEBUG) or plain text (text: `make run`), each with the request id, and the
# account and delivery id where known; secret-named fields and URL tokens masked.
HERALD_LOG_FORMAT = env.str("HERALD_LOG_FORMAT", default="text" if DEBUG else "json")
if HERALD_LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"HERALD_LOG_FORMAT is json or text, not {HERALD_LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Every record says which request it belongs to (X-Request-Id; "-" outside a request).
    "filters": {"request_id": {"()": "common.request_id.RequestIdFilter"}},
    "formatters": {"herald": {"()": "common.logs.formatter", "style": HERALD_LOG_FORMAT}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["request_id"],
                             "formatter": "herald"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # django-axes logs every login at INFO; failures and lockouts are WARNINGs.
    "loggers": {"axes": {"level": env.str("AXES_LOG_LEVEL", default="WARNING")},
                # one line per delivery state change (common.logs.delivery_states)
                "herald.deliveries": {
                    "level": env.str("HERALD_DELIVERY_LOG_LEVEL", default="INFO")}},
}
common_logs.configure()

# --- cache: Django's (nothing of Herald's own counts in it; see the rate limits below)
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}
# The brute-force guard (api/guard.py): failed authentications per presented key and per
# client address, in the rate limits' counters (HERALD_RATE_LIMIT_REDIS_URL: Redis, shared by
# every process, whenever the broker is Redis). Failing requests beyond the limit get 429.
HERALD_AUTH_FAILURE_LIMIT = env.int("HERALD_AUTH_FAILURE_LIMIT", default=20)
HERALD_AUTH_FAILURE_WINDOW_SECONDS = env.int("HERALD_AUTH_FAILURE_WINDOW_SECONDS", default=300)
# Reverse proxies (CIDRs) whose X-Forwarded-For names the client: read from the right, the
# first address that is not one of these is the client. Empty: the peer is the client.
# Checked here, so a mistyped network stops the start with its value named instead of failing
# every failed authentication and admin login later.
HERALD_TRUSTED_PROXIES = [str(ipaddress.ip_network(cidr.strip(), strict=False))
                          for cidr in env.list("HERALD_TRUSTED_PROXIES", default=[])
                          if cidr.strip()]

# --- /metrics (ops/metrics.py) ------------------------------------------------------------
# Answered to a request with ``Authorization: Bearer <HERALD_METRICS_TOKEN>`` or from one of
# HERALD_METRICS_ALLOW's networks (the client as HERALD_TRUSTED_PROXIES read it); anyone else
# gets the 404 of an unknown path. Workers' counters reach the web through
# PROMETHEUS_MULTIPROC_DIR (an environment variable, read by prometheus-client itself).
HERALD_METRICS_TOKEN = env.str("HERALD_METRICS_TOKEN", default="")
HERALD_METRICS_ALLOW = [str(ipaddress.ip_network(cidr.strip(), strict=False))
                        for cidr in env.list("HERALD_METRICS_ALLOW",
                                             default=["127.0.0.1/32", "::1/128"])
                        if cidr.strip()]

# --- REST API -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "api.schema.AutoSchema",  # names that cannot collide
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "api.views.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Herald API",
    "DESCRIPTION": "Check-in & comms, multi-channel dispatch, email history, event notifications.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # One name per choice set that several serializers use (else drf-spectacular makes up
    # hashed names and warns, in `check --deploy` too).
    "ENUM_NAME_OVERRIDES": {"EventChannelEnum": "templates.events.EVENT_CHANNELS",
                            "DeliveryStatusEnum": "comms.models.Status",
                            "EmailTypeEnum": "emails.messages.TYPES",
                            "EmailStateEnum": "emails.selectors.STATES",
                            "ChannelEnum": "comms.providers.registry.CHANNELS"},
    # The shared API layer (rate limits, idempotency keys) on every operation: api/schema.py
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "api.schema.document_api_layer"],
}

# --- Celery -------------------------------------------------------------------------------
# Zero-setup default: kombu's filesystem transport, a durable queue in var/queue shared by
# the web and worker processes without any server. Production: redis:// or amqp://.
QUEUE_DIR = VAR_DIR / "queue"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("in", "processed", "control"):
        (QUEUE_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(QUEUE_DIR / "in"),
        "data_folder_out": str(QUEUE_DIR / "in"),
        "processed_folder": str(QUEUE_DIR / "processed"),
        "store_processed": False,
        "control_folder": str(QUEUE_DIR / "control"),
    }
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_ACKS_LATE = True
# /readyz's deadline for its database, broker and migrations checks together (2 s at most).
HERALD_READINESS_TIMEOUT_SECONDS = env.float("HERALD_READINESS_TIMEOUT_SECONDS", default=2.0)
# The worker logs through LOGGING (common.logs: JSON lines with the task's request id), not
# Celery's own root handler.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_WORKER_PREFETCH_MULTIPLIER", default=16)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# One queue per kind of work, so no kind waits behind another's backlog (a burst of sends
# does not delay callbacks; a slow webhook receiver does not delay sends). A worker started
# without -Q consumes them all; run dedicated workers with -Q send / -Q webhooks to scale.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = {name: {} for name in ("celery", "send", "lifecycle", "webhooks")}
CELERY_TASK_ROUTES = {
    "comms.send_delivery": {"queue": "send"},
    "comms.apply_provider_event": {"queue": "lifecycle"},
    "comms.apply_sandbox_event": {"queue": "lifecycle"},  # its former name (queued messages)
    "comms.process_callback_batch": {"queue": "lifecycle"},
    "webhooks.deliver_message": {"queue": "webhooks"},
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A Redis broker goes through kombu's Redis transport with one fix (config/celery.py,
# RedisChannel): without it a prefork worker exits when Redis goes away instead of
# reconnecting. rediss:// keeps verifying the server's certificate.
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT = "config.celery:RedisTransport"
if CELERY_BROKER_URL.startswith("rediss://"):
    import ssl

    CELERY_BROKER_USE_SSL = {"ssl_cert_reqs": ssl.CERT_REQUIRED}

# --- Herald -------------------------------------------------------------------------------
HERALD_API_KEY_CACHE_SECONDS = env.float("HERALD_API_KEY_CACHE_SECONDS", default=5.0)
HERALD_EMAIL_PROVIDER = env.str("HERALD_EMAIL_PROVIDER", default="outbox")
HERALD_DEFAULT_FROM_EMAIL = env.str("HERALD_DEFAULT_FROM_EMAIL", default="tickets@herald.localhost")
HERALD_DEFAULT_FROM_NAME = env.str("HERALD_DEFAULT_FROM_NAME", default="Herald")
# The host of the links Herald puts in messages (one-click unsubscribe, preferences): where
# recipients reach this server.
HERALD_PUBLIC_BASE_URL = env.str("HERALD_PUBLIC_BASE_URL",
                                 default="http://127.0.0.1:8000").rstrip("/")
# A mailbox the operator reads for unsubscribes by email (List-Unsubscribe's mailto:); empty:
# the header carries the one-click link only (Herald reads no inbound mail).
HERALD_UNSUBSCRIBE_MAILTO = env.str("HERALD_UNSUBSCRIBE_MAILTO", default="")
# How long an unsubscribe / preferences link keeps working after its email was sent.
HERALD_UNSUBSCRIBE_LINK_DAYS = env.int("HERALD_UNSUBSCRIBE_LINK_DAYS", default=365)
# Due deliveries one send task claims and sends together (one SendGrid request per batch).
HERALD_DISPATCH_BATCH_SIZE = env.int("HERALD_DISPATCH_BATCH_SIZE", default=100)
# Where senders learn that a send task is already pending (comms/queueing.py), so they publish
# none; empty: one task per send. Default: the broker when it is Redis.
HERALD_DISPATCH_KICK_REDIS_URL = env.str("HERALD_DISPATCH_KICK_REDIS_URL", default=(
    CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else ""))
HERALD_SEND_MAX_ATTEMPTS = env.int("HERALD_SEND_MAX_ATTEMPTS", default=6)
HERALD_RETRY_BASE_SECONDS = env.float("HERALD_RETRY_BASE_SECONDS", default=10.0)
HERALD_RETRY_MAX_SECONDS = env.float("HERALD_RETRY_MAX_SECONDS", default=3600.0)
HERALD_SENDING_LEASE_SECONDS = env.int("HERALD_SENDING_LEASE_SECONDS", default=300)
# SMTP's outcomes are recorded a group at a time (comms.pipeline._one_by_one): after this
# many accepted messages or this long after the group's first send, whichever comes first. A
# worker killed mid-batch leaves at most one group unrecorded (sent again after the lease).
HERALD_SEND_RECORD_EVERY = env.int("HERALD_SEND_RECORD_EVERY", default=100)
HERALD_SEND_RECORD_MS = env.int("HERALD_SEND_RECORD_MS", default=1000)
# A claim past its lease whose provider reports what it accepted (SendGrid, SES with their
# event webhooks set up) waits this much longer for that report before it is sent again.
HERALD_RECONCILE_SECONDS = env.int("HERALD_RECONCILE_SECONDS", default=120)
HERALD_SWEEP_INTERVAL_SECONDS = env.int("HERALD_SWEEP_INTERVAL_SECONDS", default=60)
HERALD_SANDBOX_DELAY_SECONDS = env.float("HERALD_SANDBOX_DELAY_SECONDS", default=2.0)
HERALD_MAX_RENDERED_CHARS = env.int("HERALD_MAX_RENDERED_CHARS", default=1_000_000)
# An email's attachments (a ticket's QR code and invite) together, before encoding: a message
# over it fails before any provider is called (providers' own limits: comms.providers).
HERALD_MAX_ATTACHMENT_BYTES = env.int("HERALD_MAX_ATTACHMENT_BYTES", default=10 * 2**20)
HERALD_PROVIDER_TIMEOUT_SECONDS = env.float("HERALD_PROVIDER_TIMEOUT_SECONDS", default=15.0)
# Lets an integration's `api_base`/`endpoint_url` (and an FCM key file's token_uri) point a
# channel provider at another host, private addresses included (tests' fake servers,
# development). Off in production: an account owner could otherwise make workers call
# internal addresses; key files may then name only Google's endpoints.
HERALD_PROVIDER_API_BASE_OVERRIDE = env.bool("HERALD_PROVIDER_API_BASE_OVERRIDE",
                                             default=False)
SENDGRID_API_KEY = env.str("SENDGRID_API_KEY", default="")
SENDGRID_API_HOST = env.str("SENDGRID_API_HOST", default="https://api.sendgrid.com")
# The Event Webhook's verification key (base64 DER, as SendGrid's settings page shows it).
SENDGRID_WEBHOOK_PUBLIC_KEY = env.str("SENDGRID_WEBHOOK_PUBLIC_KEY", default="")
SENDGRID_WEBHOOK_MAX_AGE_SECONDS = env.int("SENDGRID_WEBHOOK_MAX_AGE_SECONDS", default=600)
HERALD_SWEEP_GRACE_SECONDS = env.int("HERALD_SWEEP_GRACE_SECONDS", default=120)
CELERY_BEAT_SCHEDULE = {
    "comms.deliveries_sweep": {
        "task": "comms.deliveries_sweep",
        "schedule": float(HERALD_SWEEP_INTERVAL_SECONDS),
    },
}
# Scheduled sends (sendAt): beat releases the due ones this often (one indexed UPDATE that
# finds nothing costs nothing; a due send leaves within about this plus the queue's drain).
HERALD_SCHEDULE_TICK_SECONDS = env.float("HERALD_SCHEDULE_TICK_SECONDS", default=2.0)
# Event reminders (guests.reminders): one whose time has passed when its guest is added (or
# its event moved) is still sent if at most this late, else never.
HERALD_REMINDER_GRACE_MINUTES = env.int("HERALD_REMINDER_GRACE_MINUTES", default=30)
# Up to this many guests, a new (or moved) reminder rule's reminders are made inside the
# request; a bigger event's by the job guests.reminder_rule_fill after the commit.
HERALD_REMINDER_INLINE_GUESTS = env.int("HERALD_REMINDER_INLINE_GUESTS", default=500)
CELERY_BEAT_SCHEDULE["comms.scheduled_release"] = {
    "task": "comms.scheduled_release",
    "schedule": HERALD_SCHEDULE_TICK_SECONDS,
    "options": {"expires": max(HERALD_SCHEDULE_TICK_SECONDS * 5, 10.0)},
}
# A broker outage must not hang the API: the row is the outbox and the sweeper re-enqueues.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}

# --- SES / SMTP ---------------------------------------------------------------------------
# Amazon SES (HERALD_EMAIL_PROVIDER=ses). Credentials come from boto3's usual chain
# (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, a profile, an instance role).
HERALD_SES_REGION = env.str("HERALD_SES_REGION", default="us-east-1")
# The configuration set whose event destination publishes to SNS ("" sends without one).
HERALD_SES_CONFIGURATION_SET = env.str("HERALD_SES_CONFIGURATION_SET", default="")
# Another endpoint than AWS's (moto's server in tests and demos).
HERALD_SES_ENDPOINT_URL = env.str("HERALD_SES_ENDPOINT_URL", default="")
# SNS topics /callbacks/ses accepts (subscriptions and notifications); empty: none.
HERALD_SES_SNS_TOPIC_ARNS = env.list("HERALD_SES_SNS_TOPIC_ARNS", default=[])
# SMTP (HERALD_EMAIL_PROVIDER=smtp), through Django's SMTP backend.
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=15.0)

# --- webhooks -----------------------------------------------------------------------------
# Customer webhooks (webhooks/): Standard Webhooks signing, retry schedule, SSRF guard.
WEBHOOKS_ALLOW_PRIVATE_URLS = env.bool("WEBHOOKS_ALLOW_PRIVATE_URLS", default=False)
WEBHOOKS_TIMEOUT_SECONDS = env.float("WEBHOOKS_TIMEOUT_SECONDS", default=15.0)
WEBHOOKS_RESPONSE_MAX_BYTES = env.int("WEBHOOKS_RESPONSE_MAX_BYTES", default=1024)
# Delay before each try (first = 0 s); one try per entry, so 8 tries over ~28 h.
WEBHOOKS_RETRY_SCHEDULE = env.list(
    "WEBHOOKS_RETRY_SCHEDULE", cast=int, default=[0, 5, 300, 1800, 7200, 18000, 36000, 36000]
)
WEBHOOKS_RETRY_JITTER = env.float("WEBHOOKS_RETRY_JITTER", default=0.2)
WEBHOOKS_DISABLE_AFTER_DAYS = env.int("WEBHOOKS_DISABLE_AFTER_DAYS", default=5)
WEBHOOKS_SECRET_OVERLAP_HOURS = env.int("WEBHOOKS_SECRET_OVERLAP_HOURS", default=24)
# Key that encrypts stored signing secrets; empty → derived from DJANGO_SECRET_KEY.
WEBHOOKS_ENCRYPTION_KEY = env.str("WEBHOOKS_ENCRYPTION_KEY", default="")  # older name
# Encrypts secrets at rest (webhook secrets, integration credentials); SECRET_KEY if unset.
HERALD_ENCRYPTION_KEY = env.str("HERALD_ENCRYPTION_KEY", default="")
# Batched delivery: messages of one endpoint per task, the time a batch may take before it
# hands the rest to a follow-up task, how long a batch may be in flight before other batches
# keep off its endpoint, and the delay before released messages are due again.
WEBHOOKS_BATCH_SIZE = env.int("WEBHOOKS_BATCH_SIZE", default=100)
WEBHOOKS_BATCH_SECONDS = env.float("WEBHOOKS_BATCH_SECONDS", default=2.0)
# A task goes on with its endpoint's next batches after full, wholly received ones for this
# long (a Celery task costs as much as 10-30 POSTs); with a backlog it POSTs this many batches
# of one endpoint at once, each in order on its own connection.
WEBHOOKS_TASK_SECONDS = env.float("WEBHOOKS_TASK_SECONDS", default=1.0)
WEBHOOKS_PARALLEL_BATCHES = env.int("WEBHOOKS_PARALLEL_BATCHES", default=4)
WEBHOOKS_SLOW_BATCH_SECONDS = env.float("WEBHOOKS_SLOW_BATCH_SECONDS", default=3.0)
WEBHOOKS_RELEASE_DELAY_SECONDS = env.float("WEBHOOKS_RELEASE_DELAY_SECONDS", default=1.0)
WEBHOOKS_SWEEP_INTERVAL_SECONDS = env.int("WEBHOOKS_SWEEP_INTERVAL_SECONDS", default=60)
WEBHOOKS_SWEEP_GRACE_SECONDS = env.int("WEBHOOKS_SWEEP_GRACE_SECONDS", default=120)
CELERY_BEAT_SCHEDULE["webhooks.messages_sweep"] = {
    "task": "webhooks.messages_sweep",
    "schedule": float(WEBHOOKS_SWEEP_INTERVAL_SECONDS),
}

# --- domains ------------------------------------------------------------------------------
# Sender domain authentication (domains/, spec 001).
# "sendgrid", "ses" or "dev"; empty: the email provider's when it is sendgrid or ses, else the
# "dev" stand-in (plausible records, valid on validation) so the flow works locally.
HERALD_DOMAIN_PROVIDER = env.str("HERALD_DOMAIN_PROVIDER", default="")
# Herald's own per-record DNS check: resolvers to ask (empty: the system's), port, timeout.
HERALD_DOMAIN_DNS_NAMESERVERS = env.list("HERALD_DOMAIN_DNS_NAMESERVERS", default=[])
HERALD_DOMAIN_DNS_PORT = env.int("HERALD_DOMAIN_DNS_PORT", default=53)
HERALD_DOMAIN_DNS_TIMEOUT_SECONDS = env.float("HERALD_DOMAIN_DNS_TIMEOUT_SECONDS", default=5.0)
# Polling of unverified domains: how often beat looks for due ones; the first delay, doubling
# per failed check up to the maximum; when to give up ("Validate now" restarts it).
HERALD_DOMAIN_POLL_INTERVAL_SECONDS = env.int("HERALD_DOMAIN_POLL_INTERVAL_SECONDS", default=60)
HERALD_DOMAIN_POLL_BASE_SECONDS = env.float("HERALD_DOMAIN_POLL_BASE_SECONDS", default=120.0)
HERALD_DOMAIN_POLL_MAX_SECONDS = env.float("HERALD_DOMAIN_POLL_MAX_SECONDS", default=3600.0)
HERALD_DOMAIN_POLL_GIVE_UP_HOURS = env.float("HERALD_DOMAIN_POLL_GIVE_UP_HOURS", default=72.0)
HERALD_DOMAIN_POLL_LEASE_SECONDS = env.int("HERALD_DOMAIN_POLL_LEASE_SECONDS", default=600)
CELERY_BEAT_SCHEDULE["domains.sender_domains_poll"] = {
    "task": "domains.sender_domains_poll",
    "schedule": float(HERALD_DOMAIN_POLL_INTERVAL_SECONDS),
}

# --- rate limits and idempotency (accounts/, api/ratelimit.py, api/idempotency.py) ---
# Spec 004's "Rate Limits": requests per second per API key and deliveries per UTC day, by
# key mode; an Account's own values override these; 0 means no limit.
HERALD_RATE_LIMIT_LIVE = env.int("HERALD_RATE_LIMIT_LIVE", default=100)
HERALD_RATE_LIMIT_TEST = env.int("HERALD_RATE_LIMIT_TEST", default=10)
HERALD_DAILY_QUOTA_LIVE = env.int("HERALD_DAILY_QUOTA_LIVE", default=1000)
HERALD_DAILY_QUOTA_TEST = env.int("HERALD_DAILY_QUOTA_TEST", default=150)
# Where the counters live: a redis:// URL (shared by all processes), else each process counts
# on its own. Default: the broker when it is Redis.
HERALD_RATE_LIMIT_REDIS_URL = env.str("HERALD_RATE_LIMIT_REDIS_URL", default=(
    CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else ""))
# Idempotency keys of POSTs: how long a response is replayed; after how long a request that
# never finished (killed process) no longer blocks its key.
HERALD_IDEMPOTENCY_TTL_SECONDS = env.int("HERALD_IDEMPOTENCY_TTL_SECONDS", default=86400)
HERALD_IDEMPOTENCY_LEASE_SECONDS = env.int("HERALD_IDEMPOTENCY_LEASE_SECONDS", default=300)

# --- guest CSV import and bulk send (guests/imports.py, guests/bulk.py) -------------------
# The largest CSV the admin accepts: a bigger upload is refused from its Content-Length,
# before its body is read. The file is kept in the database until it has been imported.
HERALD_IMPORT_MAX_BYTES = env.int("HERALD_IMPORT_MAX_BYTES", default=50 * 1024 * 1024)
# Row errors an import keeps for its preview page (all are counted).
HERALD_IMPORT_MAX_ERRORS = env.int("HERALD_IMPORT_MAX_ERRORS", default=1000)
# Rows per import transaction: one existing-id query and one bulk insert each.
HERALD_IMPORT_BATCH_SIZE = env.int("HERALD_IMPORT_BATCH_SIZE", default=2000)
# Imports and bulk sends whose task was lost or whose worker died are queued again.
CELERY_BEAT_SCHEDULE["guests.jobs_sweep"] = {
    "task": "guests.jobs_sweep",
    "schedule": float(HERALD_SWEEP_INTERVAL_SECONDS),
}
