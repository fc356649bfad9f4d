"""Herald's Prometheus counters and histograms: what happened, counted where it happens.

Each figure is counted once, in the process where the event occurs (a web worker accepting
deliveries, a Celery worker sending them), at the point where the database says it happened
(a row inserted, an UPDATE that moved it), after its transaction commits: a retried write
that records nothing counts nothing. Web and worker processes are many, so
``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode) gives each process its
own file in a directory they all share, and ``/metrics`` sums the files (``ops.metrics``).
Queue depths are not counted here: they are read from the database at scrape time.

Labels are bounded: channel, provider, mode and outcome only — never an account, a key or a
recipient. This module imports no app (the ground floor); the instrumented modules call it.
"""

from collections import Counter as Tally
from collections.abc import Iterable

from django.db import transaction
from prometheus_client import Counter, Histogram

# Provider calls: a local fake answers in a millisecond, a vendor in tens to hundreds, a
# timeout at the adapter's limit (10-30 s).
PROVIDER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Rendering: a compiled template renders in well under a millisecond; the sandbox stops one
# at HERALD_RENDER_SECONDS.
RENDER_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                  0.25, 1.0, 5.0)

DELIVERIES_ACCEPTED = Counter(
    "herald_deliveries_accepted", "Deliveries accepted (queued or scheduled), on commit.",
    ["channel", "mode"])
DELIVERIES_SENT = Counter(
    "herald_deliveries_sent", "Deliveries a provider accepted (recorded once each).",
    ["channel", "provider", "mode"])
DELIVERIES_DELIVERED = Counter(
    "herald_deliveries_delivered", "Deliveries the recipient's server accepted (first "
    "delivered event of each).", ["channel", "provider", "mode"])
DELIVERIES_FAILED = Counter(
    "herald_deliveries_failed", "Deliveries that failed: refused or given up at send, or "
    "bounced, dropped, reported or unsubscribed by a provider event (once each).",
    ["channel", "provider", "mode"])
PROVIDER_SECONDS = Histogram(
    "herald_provider_call_seconds", "Time of each provider call (a send or a batch send).",
    ["provider"], buckets=PROVIDER_BUCKETS)
PROVIDER_ERRORS = Counter(
    "herald_provider_errors", "Provider calls that raised, by kind of error (transient, "
    "permanent, configuration, other).", ["provider", "outcome"])
RENDER_SECONDS = Histogram(
    "herald_render_seconds", "Time to render one message (subject, HTML and text).",
    buckets=RENDER_BUCKETS)
WEBHOOK_ATTEMPTS = Counter(
    "herald_webhook_attempts", "Customer webhook HTTP attempts by outcome (succeeded: 2xx; "
    "refused: another answer; no_answer: timeout, connection error or refused URL).",
    ["outcome"])
IDEMPOTENT_REPLAYS = Counter(
    "herald_idempotent_replays", "POSTs answered with the stored response of an earlier "
    "request with the same Idempotency-Key.")
RATE_LIMITED = Counter(
    "herald_rate_limited_requests", "Requests answered 429, by limit (rate_limit: the key's "
    "requests per second; daily_quota: the account's deliveries per day; auth_failures: too "
    "many failed authentications).", ["outcome"])

# The error classes' names → the ``outcome`` label (the provider modules' classes, matched by
# name so this module imports none of them).
_ERROR_KINDS = {
    "ProviderTransientError": "transient",
    "ProviderPermanentError": "permanent",
    "ProviderInvalidRecipient": "permanent",
    "AttachmentsTooLarge": "permanent",
    "ProviderConfigurationError": "configuration",
}


def deliveries_accepted(rows: Iterable[tuple[str, str]]) -> None:
    """(channel, mode) of each delivery inserted, counted when the transaction commits (a
    request rolled back accepted nothing)."""
    counts = Tally(rows)
    if counts:
        transaction.on_commit(lambda: _add(DELIVERIES_ACCEPTED, counts), robust=True)


def deliveries_sent(rows: Iterable[tuple[str, str, str]]) -> None:
    """(channel, provider, mode) of each delivery recorded as sent now."""
    _add(DELIVERIES_SENT, Tally(rows))


def deliveries_delivered(rows: Iterable[tuple[str, str, str]]) -> None:
    _add(DELIVERIES_DELIVERED, Tally(rows))


def deliveries_failed(rows: Iterable[tuple[str, str, str]]) -> None:
    _add(DELIVERIES_FAILED, Tally(rows))


def provider_call(provider: str, seconds: float, error: BaseException | None) -> None:
    """One timed provider call (``comms.providers.base``), and its error if it raised one."""
    PROVIDER_SECONDS.labels(provider).observe(seconds)
    if error is not None:
        kind = next((_ERROR_KINDS[cls.__name__] for cls in type(error).__mro__
                     if cls.__name__ in _ERROR_KINDS), "other")
        PROVIDER_ERRORS.labels(provider, kind).inc()


def render_time(seconds: float) -> None:
    RENDER_SECONDS.observe(seconds)


def webhook_attempts(status_codes: Iterable[int | None]) -> None:
    """The HTTP status of each attempt recorded (None: no answer)."""
    _add(WEBHOOK_ATTEMPTS, Tally((_webhook_outcome(code),) for code in status_codes))


def _webhook_outcome(status_code: int | None) -> str:
    if status_code is None:
        return "no_answer"
    return "succeeded" if 200 <= status_code < 300 else "refused"


def idempotent_replay() -> None:
    IDEMPOTENT_REPLAYS.inc()


def rate_limited(limit: str) -> None:
    """A 429: ``rate_limit``, ``daily_quota`` or ``auth_failures``."""
    RATE_LIMITED.labels(limit).inc()


def _add(counter: Counter, counts: Tally) -> None:
    for labels, count in counts.items():
        counter.labels(*labels).inc(count)
