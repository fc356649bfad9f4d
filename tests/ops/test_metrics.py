"""``/metrics``: after a known workload the scraped figures are exactly what happened; the
queues are read from the database; workers' files are summed without this process's own
figures counted again; only a token or an allowed address sees any of it."""

import time
import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import path
from django.utils import timezone
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.values import MultiProcessValue
from rest_framework.response import Response

from accounts.models import Account
from api.families import NOTIFICATIONS
from api.ratelimit import delivery_quota_take
from api.views import HeraldAPIView
from common import metrics
from comms.messages import Message
from comms.models import CallbackBatch, Delivery
from comms.services import messages_queue
from ops.metrics import metrics_view
from tests.conftest import guest
from tests.fakes.sendgrid_signing import SendGridSigner, dumps, sendgrid_event
from tests.fakes.webhook_receiver import WebhookReceiver
from webhooks import services as webhook_services
from webhooks.models import Message as WebhookMessage


def scrape(client: Client | None = None, **headers: str) -> dict[tuple, float]:
    """Every sample of ``/metrics`` as (name, sorted labels) → value, parsed by
    prometheus-client's own parser."""
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.content.decode())
            for sample in family.samples}


def delta(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def labels(**values: str) -> tuple:
    return tuple(sorted(values.items()))


def grown(before: dict, after: dict, prefix: str) -> dict[tuple, float]:
    """The samples of ``prefix``'s counters that changed, and by how much."""
    return {key: after[key] - before.get(key, 0.0) for key in after
            if key[0].startswith(prefix) and key[0].endswith("_total")
            and after[key] != before.get(key, 0.0)}


@pytest.fixture
def signer(settings) -> SendGridSigner:
    signer = SendGridSigner()
    settings.SENDGRID_WEBHOOK_PUBLIC_KEY = signer.public_key
    return signer


@pytest.fixture
def receiver(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    with WebhookReceiver() as server:
        yield server


def _send(api, event_id, template_id, body=None, **headers):
    return api.post("/checkin/v1/api/guest", body or guest(event_id, template_id), **headers)


def test_a_known_workload_scrapes_exactly(api, sandbox_api, sendgrid, signer, receiver,
                                          settings, event_id, template_id):
    response = api.post("/v1/webhooks", {"url": receiver.url,
                                         "enabled_events": ["comms.delivered"]})
    assert response.status_code == 201, response.content
    receiver.secret = response.json()["webhook"]["signing_secret"]
    before = scrape()

    sent = [_send(api, event_id, template_id) for _ in range(2)]
    key, body = {"HTTP_IDEMPOTENCY_KEY": "order-7"}, guest(event_id, template_id)
    first, again = (_send(api, event_id, template_id, body, **key) for _ in range(2))
    assert again["Idempotent-Replayed"] == "true" and again.content == first.content
    sendgrid.fail_next(1, 400)
    refused = _send(api, event_id, template_id)
    assert _send(sandbox_api, event_id, template_id).status_code == 200
    assert [r.status_code for r in [*sent, first, refused]] == [200] * 4
    ids = [r.json()["attendeeInvitationId"] for r in [*sent, first, refused]]
    statuses = dict(Delivery.objects.filter(id__in=ids).values_list("id", "status"))
    assert sorted(statuses.values()) == ["failed", "sent", "sent", "sent"]
    delivered = Delivery.objects.get(id=ids[0])
    body = dumps([sendgrid_event("delivered", delivery_id=str(delivered.id),
                                 message_id=delivered.provider_message_id,
                                 email=delivered.recipient, event_id="evt-metrics-1")])
    for _ in range(2):  # the provider's retry of the same event changes nothing
        with api.capture(execute=True):
            assert api.client.generic("POST", "/callbacks/sendgrid", body,
                                      content_type="application/json",
                                      **signer.headers(body)).status_code == 200
    assert len(receiver.verified) == 1
    settings.HERALD_RATE_LIMIT_LIVE = 1
    time.sleep(1.02 - time.time() % 1)  # both in one second's window
    assert [api.get("/checkin/v1/api/event").status_code for _ in range(2)] == [200, 429]
    after = scrape()

    sendgrid_live = labels(channel="email", provider="sendgrid", mode="live")
    sandbox_test = labels(channel="email", provider="sandbox", mode="test")
    assert grown(before, after, "herald_") == {
        ("herald_deliveries_accepted_total", labels(channel="email", mode="live")): 4,
        ("herald_deliveries_accepted_total", labels(channel="email", mode="test")): 1,
        ("herald_deliveries_sent_total", sendgrid_live): 3,
        ("herald_deliveries_sent_total", sandbox_test): 1,
        ("herald_deliveries_delivered_total", sendgrid_live): 1,
        # The sandbox's scripted lifecycle delivers its message at once.
        ("herald_deliveries_delivered_total", sandbox_test): 1,
        ("herald_deliveries_failed_total", sendgrid_live): 1,
        ("herald_provider_errors_total", labels(provider="sendgrid", outcome="permanent")): 1,
        ("herald_webhook_attempts_total", labels(outcome="succeeded")): 1,
        ("herald_idempotent_replays_total", ()): 1,
        ("herald_rate_limited_requests_total", labels(outcome="rate_limit")): 1,
    }
    assert delta(before, after, "herald_provider_call_seconds_count", provider="sendgrid") == 4
    assert delta(before, after, "herald_provider_call_seconds_count", provider="sandbox") == 1
    assert delta(before, after, "herald_provider_call_seconds_bucket", provider="sendgrid",
                 le="+Inf") == 4
    assert delta(before, after, "herald_provider_call_seconds_sum", provider="sendgrid") > 0
    assert delta(before, after, "herald_render_seconds_count") == 5  # one render a delivery
    # django-prometheus: the API's requests by view and status (the 429 among them).
    assert delta(before, after, "django_http_responses_total_by_status_view_method_total",
                 method="GET", status="429", view="guests.api.views.EventListCreate") == 1


class QuotaSend(HeraldAPIView):
    """A sender taking from the daily quota (as spec 004's send does), with ``/metrics``."""

    family = NOTIFICATIONS

    def post(self, request):
        delivery_quota_take(api_key=request.auth, count=1)
        return Response({"success": True})


urlpatterns = [path("send", QuotaSend.as_view()), path("metrics", metrics_view)]


@pytest.mark.urls(__name__)
def test_auth_guard_and_daily_quota_429s_are_told_apart(keys, settings):
    before = scrape()
    settings.HERALD_DAILY_QUOTA_LIVE = 1
    sender = Client(HTTP_AUTHORIZATION=f"Bearer {keys.live_key}")
    assert [sender.post("/send").status_code for _ in range(2)] == [200, 429]
    settings.HERALD_AUTH_FAILURE_LIMIT = 0
    wrong = Client(HTTP_AUTHORIZATION=f"Bearer live_{uuid.uuid4().hex}")
    assert wrong.post("/send").status_code == 429
    after = scrape()
    assert delta(before, after, "herald_rate_limited_requests_total",
                 outcome="daily_quota") == 1
    assert delta(before, after, "herald_rate_limited_requests_total",
                 outcome="auth_failures") == 1
    assert delta(before, after, "herald_rate_limited_requests_total", outcome="rate_limit") == 0


def test_queues_are_read_from_the_database(keys, settings):
    account = Account.objects.get(id=keys.account.id)
    now = timezone.now()
    gauges = scrape()
    assert {q: gauges[("herald_queue_depth", (("queue", q),))]
            for q in ("deliveries", "scheduled", "webhook_messages", "callback_batches")} == {
        "deliveries": 0, "scheduled": 0, "webhook_messages": 0, "callback_batches": 0}
    assert gauges[("herald_scheduled_next_due_timestamp_seconds", ())] == 0

    def message(**fields) -> Message:
        return Message(account_id=account.id, mode="live", channel="email",
                       recipient="ann@example.com", subject="Hi", text="Hi", **fields)

    # Not published (no on-commit run): two queued deliveries wait, the older one 90 s.
    queued = messages_queue([message(), message()])
    Delivery.objects.filter(id=queued[0]).update(created_at=now - timedelta(seconds=90))
    # A retry due in the future waits but is not due.
    [retry] = messages_queue([message()])
    Delivery.objects.filter(id=retry).update(next_attempt_at=now + timedelta(minutes=5))
    send_at = now + timedelta(hours=2)
    messages_queue([message(send_at=send_at), message(send_at=now + timedelta(hours=3))])
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    endpoint, _ = webhook_services.endpoint_create(account=account, url="http://127.0.0.1:9/")
    for n, due in enumerate((now - timedelta(seconds=30), now + timedelta(minutes=1))):
        WebhookMessage.objects.create(webhook_id=f"msg_{n}", account=account,
                                      endpoint=endpoint, event_type="comms.sent", payload={},
                                      next_attempt_at=due)
    CallbackBatch.objects.create(provider="sendgrid", body="[]")
    CallbackBatch.objects.filter().update(received_at=now - timedelta(seconds=12))
    CallbackBatch.objects.create(provider="sendgrid", body="[]", processed_at=now)

    gauges = scrape()
    depth = {q: gauges[("herald_queue_depth", (("queue", q),))]
             for q in ("deliveries", "scheduled", "webhook_messages", "callback_batches")}
    assert depth == {"deliveries": 3, "scheduled": 2, "webhook_messages": 2,
                     "callback_batches": 1}
    age = {q: gauges[("herald_queue_oldest_due_age_seconds", (("queue", q),))]
           for q in depth}
    assert 90 <= age["deliveries"] < 100
    assert age["scheduled"] == 0  # none due yet
    assert 30 <= age["webhook_messages"] < 40
    assert 12 <= age["callback_batches"] < 22
    assert gauges[("herald_scheduled_next_due_timestamp_seconds", ())] == pytest.approx(
        send_at.timestamp(), abs=0.001)


def test_workers_files_are_summed_once_without_this_process_counted_again(
        db, tmp_path, monkeypatch):
    """Multiprocess mode: each process's file counts its own events; the scrape sums the
    files and leaves out the web process's in-memory registry (its figures are in its file
    too, in production), so nothing appears twice."""
    labels = ("email", "sendgrid", "live")
    for pid, sends in ((101, 2), (102, 3)):  # two worker processes' files
        registry = CollectorRegistry()
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
        monkeypatch.setattr("prometheus_client.values.ValueClass",
                            MultiProcessValue(process_identifier=lambda pid=pid: pid))
        counter = type(metrics.DELIVERIES_SENT)(
            "herald_deliveries_sent", "", ["channel", "provider", "mode"], registry=registry)
        counter.labels(*labels).inc(sends)
    monkeypatch.undo()
    metrics.deliveries_sent([labels] * 100)  # this process, in memory only
    in_memory = scrape()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    summed = scrape()
    key = ("herald_deliveries_sent_total",
           (("channel", "email"), ("mode", "live"), ("provider", "sendgrid")))
    assert in_memory[key] >= 100
    assert summed[key] == 5
    assert summed[("herald_queue_depth", (("queue", "deliveries"),))] == 0  # read once
    assert len([k for k in summed if k[0] == "herald_queue_depth"]) == 4


# --- who may read it -------------------------------------------------------------------------

def test_loopback_reads_by_default(db):
    assert Client().get("/metrics").status_code == 200  # the test client is 127.0.0.1


def test_others_get_the_unknown_paths_404(db, settings):
    settings.HERALD_METRICS_TOKEN = "s3cret-token"
    outside = Client(REMOTE_ADDR="203.0.113.5")
    unknown = outside.get("/no-such-path")
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"},
                    {"HTTP_AUTHORIZATION": "Basic s3cret-token"}):
        response = outside.get("/metrics", **headers)
        assert response.status_code == 404
        assert response.content == unknown.content
        assert b"herald_" not in response.content
    assert outside.post("/metrics").status_code == 404


def test_the_token_opens_it_from_anywhere(db, settings):
    settings.HERALD_METRICS_TOKEN = "s3cret-token"
    outside = Client(REMOTE_ADDR="203.0.113.5")
    assert "herald_queue_depth" in str(scrape(outside, HTTP_AUTHORIZATION="Bearer s3cret-token"))


def test_no_token_configured_opens_nothing(db, settings):
    settings.HERALD_METRICS_TOKEN = ""
    response = Client(REMOTE_ADDR="203.0.113.5").get("/metrics", HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 404


def test_allowed_networks_are_read_behind_trusted_proxies(db, settings):
    settings.HERALD_TRUSTED_PROXIES = ["127.0.0.1/32"]
    forwarded = Client(HTTP_X_FORWARDED_FOR="203.0.113.5")  # from 127.0.0.1, a proxy
    assert forwarded.get("/metrics").status_code == 404  # the client is outside
    settings.HERALD_METRICS_ALLOW = ["203.0.113.0/24"]
    assert forwarded.get("/metrics").status_code == 200
    assert Client().get("/metrics").status_code == 404  # loopback no longer listed


def test_a_request_forwarded_by_an_untrusted_proxy_on_loopback_is_not_let_in(db, settings):
    """nginx on the same host, HERALD_TRUSTED_PROXIES not set: the peer is 127.0.0.1 but the
    client is whoever the proxy forwards; the allow-list cannot vouch for it (the token can)."""
    settings.HERALD_TRUSTED_PROXIES = []
    for header in ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP"):
        assert Client(**{header: "203.0.113.5"}).get("/metrics").status_code == 404
    settings.HERALD_METRICS_TOKEN = "s3cret-scrape"
    assert Client(HTTP_X_FORWARDED_FOR="203.0.113.5",
                  HTTP_AUTHORIZATION="Bearer s3cret-scrape").get("/metrics").status_code == 200
    settings.HERALD_TRUSTED_PROXIES = ["127.0.0.1/32"]  # the proxy vouched: its inside hop
    assert Client(HTTP_X_FORWARDED_FOR="127.0.0.1").get("/metrics").status_code == 200
