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
  statement on their indexes (``ops.selectors.queues_waiting``, which the admin home's
  Health card reads too): every web process answers the same figures, and none adds them.

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
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric

from api.guard import _networks, _trusted, client_address
from ops.selectors import QUEUES, SCHEDULED, queues_waiting

# The classic text format every Prometheus reads (our names need none of 1.0.0's escaping).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


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
    """The work waiting, read from the database at scrape time (``queues_waiting``): how many,
    and how long the oldest due one has waited."""

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("herald_queue_depth", "Items waiting: queued deliveries, "
                                  "scheduled sends, pending webhook messages, unprocessed "
                                  "callback batches.", labels=["queue"])
        oldest = GaugeMetricFamily("herald_queue_oldest_due_age_seconds", "How long the "
                                   "oldest item that is due has waited (0: none due).",
                                   labels=["queue"])
        figures = queues_waiting()
        for name in QUEUES:
            depth.add_metric([name], figures[name].depth)
            oldest.add_metric([name], figures[name].age(figures.at))
        yield depth
        yield oldest
        next_due = figures[SCHEDULED].next_due
        yield GaugeMetricFamily("herald_scheduled_next_due_timestamp_seconds", "When the "
                                "earliest scheduled send is due (Unix time; 0: none).",
                                value=next_due.timestamp() if next_due else 0.0)
