"""Spec 004's example requests, as written, against real local provider servers."""

from typing import Any

import pytest
from rest_framework.test import APIClient

from comms import channels
from comms.models import Delivery
from contacts.models import Contact
from domains.models import SenderDomain
from tests.fakes.twilio_api import FakeTwilio

SEND_EXAMPLE = {
    "to": "user@example.com",
    "payload": {"orderNumber": "ORD-123"},
    "language": "en",
    "from": "billing@yourcompany.com",
    "overrides": {
        "email": {"subject": "Custom subject", "reply_to": "support@co.com"},
        "sms": {"sender_id": "MYAPP"},
    },
}
EVENT = {"identifier": "order.confirmed", "name": "Order confirmed",
         "channels": ["email", "sms"], "templates": [
             {"channel": "email", "subject": "Order {{payload.orderNumber}}",
              "body": "Thanks {{name | Guest}} for order {{payload.orderNumber}}."},
             {"channel": "sms", "body": "Order {{payload.orderNumber}} confirmed."}]}


@pytest.fixture
def v4(keys, django_capture_on_commit_callbacks):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.live_key}")

    def call(method: str, path: str, body: Any = None):
        with django_capture_on_commit_callbacks(execute=True):
            if method == "get":
                return client.get(path, body)
            return getattr(client, method)(path, body, format="json")
    return call


@pytest.fixture
def world(v4, keys, sendgrid, settings):
    settings.HERALD_PROVIDER_TIMEOUT_SECONDS = 2
    SenderDomain.objects.create(account=keys.account, domain="yourcompany.com", verified=True,
                                enabled=True, provider="dev")
    assert v4("post", "/v1/events", EVENT).status_code == 201
    with FakeTwilio() as twilio:
        channels.integration_save(
            account=keys.account, provider="twilio",
            config={"api_base": twilio.url, "from_number": "+15005550006"},
            credentials={"account_sid": twilio.account_sid, "auth_token": twilio.auth_token})
        yield {"twilio": twilio, "sendgrid": sendgrid}


def test_the_send_example_as_written(v4, world):
    response = v4("post", "/v1/send/order.confirmed", SEND_EXAMPLE)
    body = response.json()
    # The example's recipient has no phone: email goes, sms is reported, as the spec's codes say.
    assert response.status_code == 200, body
    assert [next(iter(d)) for d in body["deliveries"]] == ["email"]
    [contact] = Contact.objects.filter(email="user@example.com")
    assert body["success"] is True
    assert body["errors"] == [{"code": "MISSING_IDENTIFIER",
                               "message": "Contact user@example.com has no phone for sms",
                               "channel": "sms", "recipient": str(contact.id),
                               "retryable": False}]
    [mail] = world["sendgrid"].messages
    assert mail.body["from"]["email"] == "billing@yourcompany.com"
    assert mail.body["reply_to"] == {"email": "support@co.com"}
    assert mail.body["subject"] == "Custom subject"


def test_the_send_example_with_a_phone_sends_both(v4, world):
    example = {**SEND_EXAMPLE, "to": {"email": "user@example.com", "phone": "+14155551234"}}
    response = v4("post", "/v1/send/order.confirmed", example)
    assert response.status_code == 200, response.content
    assert response.json()["success"] is True
    [sms] = world["twilio"].messages
    assert (sms.to, sms.body) == ("+14155551234", "Order ORD-123 confirmed.")
    assert sms.from_ == "+15005550006"  # Twilio keeps its number; sender_id is SNS's
    delivery = Delivery.objects.get(channel="sms")
    assert delivery.context["_options"] == {"sender_id": "MYAPP"}


def test_the_forced_channel_and_contacts_examples(v4, world):
    forced = v4("post", "/v1/send/order.confirmed/email", {"to": "user@example.com"})
    assert forced.json()["success"] is True
    created = v4("post", "/v1/contacts", {"email": "user@example.com", "name": "Ann",
                                          "externalId": "ext_user_123",
                                          "favorite_color": "blue"})
    assert created.status_code in (200, 201), created.content
    contact = created.json()["contact"]
    assert contact["meta"] == {"favoriteColor": "blue"}
    listed = v4("get", "/v1/contacts", {"limit": 50, "offset": 0, "search": "user@"}).json()
    assert listed["success"] is True and listed["data"]["total"] == 1
    for identifier in ("user@example.com", "ext_user_123", contact["uuid"]):
        assert v4("get", f"/v1/contacts/{identifier}").status_code == 200
    token = {"token": "ExponentPushToken[xxxxxxxxxxxxxxxxxxxxxx]"}
    assert v4("post", "/v1/contacts/ext_user_123/push-tokens", token).status_code == 200
    assert v4("delete", "/v1/contacts/ext_user_123/push-tokens", token).status_code == 200
    assert v4("patch", "/v1/contacts/ext_user_123", {"name": "Ann B"}).json()[
        "contact"]["name"] == "Ann B"
    events = v4("get", "/v1/events").json()
    assert events["data"]["events"][0]["identifier"] == "order.confirmed"
    deliveries = v4("get", "/v1/deliveries", {"limit": 20, "offset": 0, "event":
                                              "order.confirmed", "channel": "email",
                                              "status": "sent"}).json()["data"]
    assert deliveries["total"] == 1
    uuid = deliveries["deliveries"][0]["uuid"]
    assert v4("get", f"/v1/deliveries/{uuid}/trace").json()["data"]["timeline"]
    integrations = v4("get", "/v1/integrations", {"channel": "sms"}).json()["data"]
    assert integrations["integrations"] == [
        {"uuid": integrations["integrations"][0]["uuid"], "channel": "sms",
         "provider": "twilio", "name": None, "priority": 0, "status": "active",
         "config": {"api_base": world["twilio"].url, "from_number": "+15005550006"}}]
    deleted = v4("delete", "/v1/contacts/ext_user_123")
    assert deleted.json() == {"success": True, "deleted": True}
