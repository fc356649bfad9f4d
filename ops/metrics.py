"""``/metrics``: Herald's figures in Prometheus' text format, for operators only.

Two sources, so nothing is counted twice:

- **Events** (deliveries accepted, sent, delivered, failed; provider calls; renders; webhook
  attempts; idempotent replays; 429s; django-prometheus' requests) are counted where they
  happen (``common.metrics``), in whichever process that is. With ``PROMETHEUS_MULTIPROC_DIR``
  set (``make web`` / ``make worker`` share one directory) every process writes its own file
  and this view sums the files — never with this process's own in-memory registry beside
  them, which would count its figures twice. Without it, the figures are this process's
  only (``make run`` and the tests).
- **Queues** (depth and the oldest due item of deliveries, scheduled sends, webhook
  messages and callback batches) are read from the database at each scrape, in one
  statement on their indexes: every web process answers the same figures, and none adds them.

Access: a bearer token (``HERALD_METRICS_TOKEN``) or a client address in
``HERALD_METRICS_ALLOW`` (loopback by default; behind trusted proxies the client as
``api.guard.client_address`` reads it). Anyone else gets the 404 of an unknown path: the
endpoint's existence is not told.
"""

import hmac
import ipaddress
import os
from collections.abc import Iterator

from django.conf import settings
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric

from api.guard import _networks, _trusted, client_address
from comms.models import CallbackBatch, Delivery
from webhooks.models import Message

# The classic text format every Prometheus reads (our names need none of 1.0.0's escaping).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
QUEUES = ("deliveries", "scheduled", "webhook_messages", "callback_batches")


def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET ``/metrics`` (HEAD too): the figures for an allowed caller, else a 404."""
    if request.method not in ("GET", "HEAD") or not allowed(request):
        raise Http404
    return HttpResponse(exposition(), content_type=CONTENT_TYPE)


def allowed(request: HttpRequest) -> bool:
    """The right bearer token (compared in constant time), or an allowed client address."""
    token = settings.HERALD_METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, presented = header.partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode(), token.encode()):
        return True
    if _forwarded_unvouched(request):
        return False
    try:
        address = ipaddress.ip_address(client_address(request))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(cidr) for cidr in settings.HERALD_METRICS_ALLOW)


# Headers a reverse proxy adds for the client it forwards.
_FORWARDED = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


def _forwarded_unvouched(request: HttpRequest) -> bool:
    """A forwarded request whose proxy is not among ``HERALD_TRUSTED_PROXIES``: its peer (a
    proxy on loopback, say) is not its client, so the address allow-list cannot vouch for it
    — without this, a proxy on the same host would open /metrics to the internet."""
    if not any(request.META.get(name) for name in _FORWARDED):
        return False
    peer = request.META.get("REMOTE_ADDR", "")
    return not _trusted(peer, _networks(tuple(settings.HERALD_TRUSTED_PROXIES)))


def exposition() -> bytes:
    """The text format of every figure: the events (every process's files in multiprocess
    mode, else this process's registry) and the queues read now."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Process())
    registry.register(QueueCollector())
    return generate_latest(registry)


class _Process:
    """This process's default registry, as one collector of the scrape's registry."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


class QueueCollector:
    """The work waiting, read from the database at scrape time (one statement, each part on
    its table's index): how many, and how long the oldest due one has waited."""

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("herald_queue_depth", "Items waiting: queued deliveries, "
                                  "scheduled sends, pending webhook messages, unprocessed "
                                  "callback batches.", labels=["queue"])
        oldest = GaugeMetricFamily("herald_queue_oldest_due_age_seconds", "How long the "
                                   "oldest item that is due has waited (0: none due).",
                                   labels=["queue"])
        figures = _queues()
        for queue in QUEUES:
            count, age, _ = figures[queue]
            depth.add_metric([queue], count)
            oldest.add_metric([queue], age)
        yield depth
        yield oldest
        next_due = figures["scheduled"][2]
        yield GaugeMetricFamily("herald_scheduled_next_due_timestamp_seconds", "When the "
                                "earliest scheduled send is due (Unix time; 0: none).",
                                value=next_due)


def _queues() -> dict[str, tuple[int, float, float]]:
    """queue → (depth, age in seconds of the oldest due item, Unix time of the earliest due
    item (scheduled sends only))."""
    sql = _QUEUES_SQL.format(delivery=Delivery._meta.db_table, message=Message._meta.db_table,
                             batch=CallbackBatch._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return {queue: (int(count), max(float(age or 0), 0.0), float(next_due or 0))
                for queue, count, age, next_due in cursor.fetchall()}


# Each oldest due item is one index lookup: a queued delivery is due at its next attempt, or
# at its creation when it has none (``delivery_sweep``, ``delivery_queued``); a scheduled one
# at its send time (``delivery_scheduled``); a webhook message at its next attempt (set at
# creation; ``webhook_message_sweep``); a callback batch at its arrival (``callback_pending``).
_AGE = "EXTRACT(EPOCH FROM statement_timestamp() - LEAST({}))"
_QUEUES_SQL = (
    "SELECT 'deliveries', (SELECT count(*) FROM {delivery} WHERE status = 'queued'), "
    + _AGE.format(
        "(SELECT min(next_attempt_at) FROM {delivery} WHERE status = 'queued'"
        " AND next_attempt_at <= statement_timestamp()),"
        " (SELECT min(created_at) FROM {delivery} WHERE status = 'queued'"
        " AND next_attempt_at IS NULL)") + ", NULL::float"
    " UNION ALL SELECT 'scheduled', count(*), "
    + _AGE.format("min(next_attempt_at) FILTER (WHERE next_attempt_at <= statement_timestamp())")
    + ", EXTRACT(EPOCH FROM min(next_attempt_at))::float"
    " FROM {delivery} WHERE status = 'scheduled'"
    " UNION ALL SELECT 'webhook_messages', (SELECT count(*) FROM {message}"
    " WHERE status = 'pending'), "
    + _AGE.format(
        "(SELECT min(next_attempt_at) FROM {message} WHERE status = 'pending'"
        " AND next_attempt_at <= statement_timestamp()),"
        " (SELECT min(created_at) FROM {message} WHERE status = 'pending'"
        " AND next_attempt_at IS NULL)") + ", NULL::float"
    " UNION ALL SELECT 'callback_batches', count(*), " + _AGE.format("min(received_at)")
    + ", NULL::float FROM {batch} WHERE processed_at IS NULL"
)
