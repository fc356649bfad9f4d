"""Spec 004's ``delivery.*`` webhooks of a spec-004 send (#17 item 4): ``delivery.status`` in
the spec's words (pending | sent | delivered | failed) with ours beside it in
``detailed_status``, as ``GET /v1/deliveries`` shows them, and ``request_id`` the
X-Request-Id of the API request that made the delivery."""

from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.fakes.webhook_receiver import WebhookReceiver

EVENT = {"identifier": "order.confirmed", "name": "Order confirmed", "channels": ["email"],
         "templates": [{"channel": "email", "subject": "Order confirmed",
                        "body": "Hi {{name | Guest}}."}]}


class V004:
    """Spec 004's API with a test key (the sandbox), running on-commit hooks as a request."""

    def __init__(self, raw_key: str, capture) -> None:
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        self.capture = capture

    def post(self, path: str, body: Any, **headers: Any):
        with self.capture(execute=True):
            return self.client.post(path, body, format="json", **headers)

    def get(self, path: str):
        return self.client.get(path)


@pytest.fixture
def receiver(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0
    with WebhookReceiver() as server:
        yield server


@pytest.fixture
def v4(keys, django_capture_on_commit_callbacks, receiver) -> V004:
    api = V004(keys.test_key, django_capture_on_commit_callbacks)
    live = V004(keys.live_key, django_capture_on_commit_callbacks)
    webhook = live.post("/v1/webhooks", {"url": receiver.url, "include_test_events": True,
                                         "enabled_events": ["delivery.sent",
                                                            "delivery.delivered",
                                                            "delivery.failed",
                                                            "delivery.bounced",
                                                            "delivery.complained"]})
    assert webhook.status_code == 201, webhook.content
    receiver.secret = webhook.json()["webhook"]["signing_secret"]
    assert live.post("/v1/events", EVENT).status_code == 201
    return api


def send(v4: V004, to: str, **headers: Any) -> tuple[str, str]:
    """The delivery's uuid and the request's id."""
    response = v4.post("/v1/send/order.confirmed/email", {"to": to}, **headers)
    assert response.status_code == 200, response.content
    [(_, delivery_id)] = response.json()["deliveries"][0].items()
    return delivery_id, response["X-Request-Id"]


def webhooks_of(receiver, delivery_id: str) -> dict[str, dict]:
    return {r.payload["event"]: r.payload for r in receiver.verified
            if r.payload["delivery"]["uuid"] == delivery_id}


def test_a_sends_webhooks_carry_its_request_id_and_the_specs_status_words(v4, receiver):
    delivery_id, request_id = send(v4, "ann@example.com", HTTP_X_REQUEST_ID="order-42-try-1")
    assert request_id == "order-42-try-1"  # the caller's own, well-formed
    payloads = webhooks_of(receiver, delivery_id)
    assert set(payloads) == {"delivery.sent", "delivery.delivered"}
    for event, payload in payloads.items():
        assert payload["request_id"] == "order-42-try-1"
        status = event.split(".")[1]
        assert (payload["delivery"]["status"], payload["delivery"]["detailed_status"]) == (
            status, status)
        assert payload["delivery"]["event_name"] == "order.confirmed"


def test_a_bounce_is_failed_with_bounced_beside_it(v4, receiver):
    delivery_id, request_id = send(v4, "bounce@example.com")
    assert request_id.startswith("req-")  # none given: ours
    bounced = webhooks_of(receiver, delivery_id)["delivery.bounced"]
    assert bounced["request_id"] == request_id
    assert bounced["delivery"]["status"] == "failed"
    assert bounced["delivery"]["detailed_status"] == "bounced"
    assert bounced["delivery"]["error"] == "550 5.1.1 No such user"
    # The deliveries endpoint says the same of it, through the same mapping.
    [listed] = [d for d in v4.get("/v1/deliveries").json()["data"]["deliveries"]
                if d["uuid"] == delivery_id]
    assert (listed["status"], listed["detailed_status"]) == ("failed", "bounced")


@pytest.mark.parametrize(("to", "event", "detail"), [
    ("drop@example.com", "delivery.failed", "dropped"),
    ("spam@example.com", "delivery.complained", "spam_reported"),
])
def test_every_failure_is_failed_with_its_detail(v4, receiver, to, event, detail):
    delivery_id, request_id = send(v4, to)
    payload = webhooks_of(receiver, delivery_id)[event]
    assert (payload["delivery"]["status"], payload["delivery"]["detailed_status"]) == (
        "failed", detail)
    assert payload["request_id"] == request_id


def test_a_delivery_no_request_made_carries_none(keys):
    """Rows made outside any request (a command, beat's sweeps) record no id."""
    from comms.models import Delivery

    assert Delivery(account=keys.account, recipient="x@example.com").request_id is None
