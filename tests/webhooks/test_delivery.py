"""Customer webhooks end to end: a send through the spec's API reaches a real local receiver,
signed per Standard Webhooks (verified with the ``standardwebhooks`` package), retried on its
schedule, logged per attempt, disabled on 410, signed with both secrets during rotation."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from common import ssrf
from comms.models import DeliveryEvent
from tests.conftest import guest
from tests.fakes.webhook_receiver import Answer, WebhookReceiver
from webhooks import delivery, services
from webhooks.models import Attempt, Endpoint, Message


@pytest.fixture
def receiver(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    settings.WEBHOOKS_RETRY_SCHEDULE = [0, 0, 0, 0]
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0
    with WebhookReceiver() as server:
        yield server


class Hooks:
    """The webhooks API as a live key sees it, running on-commit hooks like a real request."""

    def __init__(self, keys, capture) -> None:
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.live_key}")
        self.capture = capture

    def __getattr__(self, method: str):
        def call(path: str, body=None, **kwargs):
            with self.capture(execute=True):
                return getattr(self.client, method)(path, body, format="json", **kwargs)
        return call


@pytest.fixture
def hooks(keys, django_capture_on_commit_callbacks) -> Hooks:
    return Hooks(keys, django_capture_on_commit_callbacks)


def only(hooks, endpoint, *events: str) -> None:
    """Subscribe to these events only (so one send makes one message)."""
    response = hooks.patch(f"/v1/webhooks/{endpoint['uuid']}", {"enabled_events": list(events)})
    assert response.status_code == 200, response.content


@pytest.fixture
def endpoint(hooks, receiver) -> dict:
    # The sends below are a test key's (sandbox): the endpoint opts in to their events.
    response = hooks.post("/v1/webhooks", {"url": receiver.url, "include_test_events": True})
    assert response.status_code == 201, response.content
    webhook = response.json()["webhook"]
    receiver.secret = webhook["signing_secret"]
    return webhook


def _sent(api, event_id, template_id, **fields):
    response = api.post("/checkin/v1/api/guest", guest(event_id, template_id, **fields))
    assert response.status_code == 200, response.content
    return response


def _send(api, event_id, template_id, **fields) -> str:
    return _sent(api, event_id, template_id, **fields).json()["attendeeInvitationId"]


def test_a_send_yields_verified_comms_and_delivery_webhooks(
        sandbox_api, event_id, template_id, endpoint, receiver):
    response = _sent(sandbox_api, event_id, template_id)
    invitation_id = response.json()["attendeeInvitationId"]
    assert all(r.error == "" for r in receiver.received)
    by_type = {}
    for r in receiver.verified:
        by_type[r.payload.get("type") or r.payload["event"]] = r.payload
    assert set(by_type) == {"comms.sent", "delivery.sent", "comms.delivered",
                            "delivery.delivered", "comms.opened"}
    for name in ("comms.sent", "comms.delivered", "comms.opened"):
        data = by_type[name]["data"]
        assert data["attendeeInvitationId"] == invitation_id
        assert data["correlationId"] == "order-2026-0042"
        assert data["email"] == "jane@example.com"
        assert data["templateId"] == template_id
        assert data["eventId"] == event_id
        assert data["status"] == name.split(".")[1]
        assert data["requestId"] == response["X-Request-Id"]
    for name in ("delivery.sent", "delivery.delivered"):
        payload = by_type[name]
        assert payload["delivery"]["uuid"] == invitation_id
        assert payload["request_id"] == response["X-Request-Id"]  # the send's request
        assert payload["delivery"]["status"] == name.split(".")[1]
        assert payload["delivery"]["channel"] == "email"
        assert payload["delivery"]["error"] is None
        assert set(payload) == {"event", "delivery", "request_id", "timestamp"}
    assert by_type["delivery.delivered"]["delivery"]["delivered_at"] is not None
    assert by_type["delivery.sent"]["delivery"]["message_id"] == f"sandbox-{invitation_id}"
    headers = receiver.verified[0].headers
    assert headers["webhook-id"].startswith("msg_")
    assert headers["webhook-signature"].startswith("v1,")
    assert headers["host"] == receiver.url.split("/")[2]
    assert Message.objects.filter(status="succeeded").count() == 5
    assert Attempt.objects.filter(succeeded=True).count() == 5


def test_correlation_id_is_null_when_absent(sandbox_api, event_id, template_id, endpoint,
                                            receiver):
    _send(sandbox_api, event_id, template_id, correlationId=None)
    comms = [r.payload for r in receiver.verified if "type" in r.payload]
    assert comms and all(p["data"]["correlationId"] is None for p in comms)


def test_bounce_yields_comms_bounced_and_delivery_bounced(
        sandbox_api, event_id, template_id, endpoint, receiver):
    invitation_id = _send(sandbox_api, event_id, template_id, email="bounce@example.com")
    bounced = [r.payload for r in receiver.verified
               if r.payload.get("type") == "comms.bounced"
               or r.payload.get("event") == "delivery.bounced"]
    assert len(bounced) == 2
    comms = next(p for p in bounced if "type" in p)
    assert comms["data"]["reason"] == "550 5.1.1 No such user"
    assert comms["data"]["attendeeInvitationId"] == invitation_id
    delivery = next(p for p in bounced if "event" in p)
    assert delivery["delivery"]["error"] == "550 5.1.1 No such user"
    # Spec 004's word, ours beside it.
    assert (delivery["delivery"]["status"], delivery["delivery"]["detailed_status"]) == (
        "failed", "bounced")


def test_enabled_events_filter_what_is_sent(hooks, sandbox_api, event_id, template_id,
                                            endpoint, receiver):
    only(hooks, endpoint, "delivery.delivered")
    _send(sandbox_api, event_id, template_id)
    assert receiver.types() == ["delivery.delivered"]


def test_receiver_failing_twice_then_succeeding(hooks, sandbox_api, event_id, template_id,
                                                 endpoint, receiver):
    only(hooks, endpoint, "comms.delivered")
    receiver.answer(500, 503)
    _send(sandbox_api, event_id, template_id)
    [message] = Message.objects.all()
    attempts = list(message.attempt_log.order_by("id"))
    assert [a.status_code for a in attempts] == [500, 503, 200]
    assert [a.succeeded for a in attempts] == [False, False, True]
    assert all(a.duration_ms >= 0 and a.response_body == '{"ok":true}' for a in attempts)
    assert message.status == "succeeded" and message.succeeded_at is not None
    # The receiver saw the same message three times, each signed afresh; it verified each.
    assert [r.headers["webhook-id"] for r in receiver.received] == [message.webhook_id] * 3
    assert len(receiver.verified) == 3
    assert receiver.types() == ["comms.delivered"] * 3
    assert Endpoint.objects.get(id=endpoint["uuid"]).failing_since is None


def test_retry_schedule_and_exhaustion(hooks, settings, sandbox_api, event_id, template_id,
                                       endpoint, receiver):
    settings.WEBHOOKS_RETRY_SCHEDULE = [0, 0, 0]
    only(hooks, endpoint, "comms.sent")
    receiver.answer(*[500] * 3)
    _send(sandbox_api, event_id, template_id)
    [first] = Message.objects.all()
    assert first.status == "failed" and first.attempts == 3
    assert first.last_error == "HTTP 500"
    assert Endpoint.objects.get(id=endpoint["uuid"]).is_active  # one bad message is not 5 days


def test_default_schedule_with_jitter(settings):
    settings.WEBHOOKS_RETRY_SCHEDULE = [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
    settings.WEBHOOKS_RETRY_JITTER = 0.2
    delays = [delivery.retry_delay(attempt=n) for n in range(1, 9)]
    for delay, base in zip(delays[:7], [5, 300, 1800, 7200, 18000, 36000, 36000], strict=True):
        assert base * 0.8 <= delay <= base * 1.2
    assert delays[7] is None


def test_gone_disables_the_endpoint(sandbox_api, event_id, template_id, endpoint, receiver):
    receiver.answer(410)
    _send(sandbox_api, event_id, template_id)
    ep = Endpoint.objects.get(id=endpoint["uuid"])
    assert not ep.is_active
    assert "410" in ep.disabled_reason
    assert len(receiver.received) == 1
    assert Message.objects.filter(status="failed").count() == 5
    assert Attempt.objects.count() == 1


def test_five_days_of_failures_disable(sandbox_api, event_id, template_id, endpoint, receiver):
    Endpoint.objects.filter(id=endpoint["uuid"]).update(
        failing_since=timezone.now() - timedelta(days=5, minutes=1))
    receiver.answer(500)
    _send(sandbox_api, event_id, template_id)
    ep = Endpoint.objects.get(id=endpoint["uuid"])
    assert not ep.is_active and "5 days" in ep.disabled_reason


def test_rotation_signs_with_both_secrets_for_a_day(hooks, sandbox_api, event_id, template_id,
                                                    endpoint, receiver):
    old = endpoint["signing_secret"]
    new = hooks.post(f"/v1/webhooks/{endpoint['uuid']}/rotate-secret").json()["webhook"][
        "signing_secret"]
    receiver.secret = new
    _send(sandbox_api, event_id, template_id)
    first = receiver.received[0]
    assert len(first.headers["webhook-signature"].split(" ")) == 2
    assert first.verifies_with(new) and first.verifies_with(old)
    assert not first.verifies_with("whsec_" + "A" * 32)
    Endpoint.objects.filter(id=endpoint["uuid"]).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1))
    with sandbox_api.capture(execute=True):
        services.endpoint_send_test(endpoint=Endpoint.objects.get(id=endpoint["uuid"]))
    last = receiver.received[-1]
    assert last.payload["type"] == "webhook.test"
    assert last.verifies_with(new) and not last.verifies_with(old)


def test_resend_one_message_and_failed_in_a_window(hooks, settings, sandbox_api, event_id,
                                                   template_id, endpoint, receiver):
    settings.WEBHOOKS_RETRY_SCHEDULE = [0]
    receiver.answer(*[500] * 5)
    _send(sandbox_api, event_id, template_id)
    assert Message.objects.filter(status="failed").count() == 5
    message = Message.objects.order_by("id").first()
    base = f"/v1/webhooks/{endpoint['uuid']}"
    response = hooks.post(f"{base}/messages/{message.webhook_id}/resend")
    assert response.status_code == 202, response.content
    assert response.json()["message"]["status"] == "pending"  # sent once the request commits
    message.refresh_from_db()
    assert message.status == "succeeded"
    assert [a.status_code for a in message.attempt_log.all()] == [200, 500]
    since = (timezone.now() - timedelta(hours=1)).isoformat()
    response = hooks.post(f"{base}/resend-failed", {"since": since})
    assert response.json() == {"success": True, "resent": 4}
    assert not Message.objects.exclude(status="succeeded").exists()
    listed = hooks.get(f"{base}/messages?status=succeeded&limit=2").json()["data"]
    assert listed["total"] == 5 and len(listed["messages"]) == 2


def test_no_endpoint_costs_one_query(sandbox_api, event_id, template_id,
                                     django_assert_num_queries):
    _send(sandbox_api, event_id, template_id)
    ids = list(DeliveryEvent.objects.values_list("id", flat=True))
    with django_assert_num_queries(1):
        services.webhooks_emit(delivery_event_ids=ids)
    assert not Message.objects.exists()


def test_other_accounts_events_do_not_reach_this_endpoint(other_api, event_id, template_id,
                                                          endpoint, receiver):
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {other_api.keys.test_key}",
                      HTTP_OCP_APIM_SUBSCRIPTION_KEY=other_api.keys.subscription_key)
    event = other_api.post("/checkin/v1/api/event", {"name": "X"}).json()["id"]  # live key
    template = other_api.post("/comms/v1/api/comms/template", {  # configuration: live key
        "name": "T", "subject": "S", "htmlBody": "<p>h</p>", "textBody": "h"}).json()["id"]
    with other_api.capture(execute=True):
        other.post("/checkin/v1/api/guest", guest(event, template), format="json")
    assert DeliveryEvent.objects.exists()
    assert receiver.received == []


def test_redirects_are_not_followed(hooks, sandbox_api, event_id, template_id, endpoint,
                                    receiver):
    only(hooks, endpoint, "comms.sent")
    receiver.answer_with(Answer(status=302, headers=(("Location", "http://169.254.169.254/"),)),
                         times=4)
    _send(sandbox_api, event_id, template_id)
    [first] = Message.objects.all()
    assert [a.status_code for a in first.attempt_log.all()] == [302] * 4
    assert len(receiver.received) == 4
    assert first.status == "failed"


def test_huge_and_slow_responses_are_capped(settings, sandbox_api, event_id, template_id,
                                            endpoint, receiver):
    settings.WEBHOOKS_TIMEOUT_SECONDS = 0.5
    settings.WEBHOOKS_RETRY_SCHEDULE = [0]
    # A timeout ends its batch and releases the rest to a follow-up task; an eager task cannot
    # wait for the follow-up's countdown, so the released messages are due at once here.
    settings.WEBHOOKS_RELEASE_DELAY_SECONDS = 0
    receiver.answer_with(Answer(body=b"x" * 5_000_000))
    receiver.answer_with(Answer(delay=2.0))
    _send(sandbox_api, event_id, template_id)
    huge, slow = Attempt.objects.order_by("id")[:2]
    assert huge.status_code == 200 and huge.succeeded and len(huge.response_body) == 1024
    assert slow.status_code is None and not slow.succeeded
    assert "timed out" in slow.error.lower()
    assert slow.duration_ms < 1900
    assert Attempt.objects.filter(succeeded=True).count() == 4


def test_delivery_rechecks_the_address(settings, sandbox_api, event_id, template_id, endpoint,
                                       receiver):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    settings.WEBHOOKS_RETRY_SCHEDULE = [0]
    _send(sandbox_api, event_id, template_id)
    assert receiver.received == []
    attempt = Attempt.objects.order_by("id").first()
    assert attempt.status_code is None and attempt.error == f"Refused: {ssrf.NOT_PUBLIC}"


def test_sweeper_requeues_lost_messages(endpoint, receiver, django_capture_on_commit_callbacks):
    ep = Endpoint.objects.get(id=endpoint["uuid"])
    with django_capture_on_commit_callbacks(execute=True):
        message = services.endpoint_send_test(endpoint=ep)
    assert Message.objects.get(id=message.id).status == "succeeded"
    Message.objects.filter(id=message.id).update(
        status="sending", claimed_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.messages_sweep() == 1
    assert Message.objects.get(id=message.id).status == "succeeded"
    assert len(receiver.received) == 2
