"""Spec 002: POST /api/v1/communications/send — per-channel results, each channel a Delivery
with its timeline, problem details for bad input (nothing sent), admin keys only."""

from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiKey
from accounts.services import api_key_create
from comms.models import Delivery, DeliveryEvent, Status
from contacts.models import Contact
from tests.fakes.webhook_receiver import WebhookReceiver

URL = "/api/v1/communications/send"
EXAMPLE = {
    "subject": "System maintenance",
    "body": "A scheduled maintenance window starts at 22:00 UTC.",
    "channels": ["Email", "Sms", "InApp"],
    "emailAddress": "user@example.com",
    "phoneNumber": "+97455555555",
    "userId": "3f45ef0f-39d1-4d65-8eaa-5db7c0b8f763",
    "pushToken": None,
    "webhookUrl": None,
    "isHtml": False,
}


class Client:
    def __init__(self, raw_key: str, capture) -> None:
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        self.capture = capture

    def post(self, path: str, body: Any = None):
        with self.capture(execute=True):
            return self.client.post(path, body, format="json")

    def get(self, path: str, **params: Any):
        with self.capture(execute=True):
            return self.client.get(path, params)


@pytest.fixture
def admin(keys, django_capture_on_commit_callbacks) -> Client:
    return Client(keys.admin_key, django_capture_on_commit_callbacks)


@pytest.fixture
def sandbox_admin(keys, django_capture_on_commit_callbacks) -> Client:

    raw = api_key_create(account=keys.account, name="test admin",
                         mode=ApiKey.Mode.TEST, is_admin=True)
    return Client(raw, django_capture_on_commit_callbacks)


def body(**changes: Any) -> dict[str, Any]:
    return {**EXAMPLE, **changes}


def test_the_spec_example_in_the_sandbox_reports_each_channel(sandbox_admin, settings):
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0
    response = sandbox_admin.post(URL, EXAMPLE)
    assert response.status_code == 200, response.content
    # As the spec's example response: the user id is nobody the account knows.
    assert response.json() == {"results": [
        {"channel": "Email", "success": True, "error": None},
        {"channel": "Sms", "success": True, "error": None},
        {"channel": "InApp", "success": False, "error": "User not found"},
    ]}
    by_channel = {d.channel: d for d in Delivery.objects.all()}
    assert set(by_channel) == {"email", "sms", "inapp"}
    assert by_channel["sms"].recipient == "+97455555555"
    assert by_channel["sms"].provider == "sandbox"
    assert by_channel["sms"].status == Status.DELIVERED  # the sandbox reports delivery
    assert by_channel["email"].subject == "System maintenance"
    assert by_channel["inapp"].status == Status.FAILED
    names = set(DeliveryEvent.objects.filter(delivery=by_channel["sms"])
                .values_list("name", flat=True))
    assert {"comms.sent", "comms.delivered"} <= names


def test_live_channel_without_integration_fails_fast_while_email_succeeds(admin, keys):
    Contact.objects.create(account=keys.account, external_id="user-7", name="Ann")
    response = admin.post(URL, body(userId="user-7"))
    assert response.status_code == 200, response.content
    results = {r["channel"]: r for r in response.json()["results"]}
    assert results["Email"] == {"channel": "Email", "success": True, "error": None}
    assert results["Sms"] == {"channel": "Sms", "success": False,
                              "error": "No sms integration configured"}
    assert results["InApp"]["success"] is True
    sms = Delivery.objects.get(channel="sms")
    assert (sms.status, sms.failure_type) == (Status.FAILED, "integration_missing")


def test_in_app_inbox_lists_and_marks_read(admin, keys):
    contact = Contact.objects.create(account=keys.account, external_id="user-7")
    for n in range(3):
        assert admin.post(URL, body(channels=["InApp"], userId="user-7",
                                    subject=f"Note {n}")).status_code == 200
    first = admin.get("/api/v1/communications/inapp", userId=str(contact.id), limit=2)
    assert first.status_code == 200, first.content
    page = first.json()
    assert [i["subject"] for i in page["items"]] == ["Note 2", "Note 1"]
    assert all(i["readAt"] is None for i in page["items"])
    second = admin.get("/api/v1/communications/inapp", userId="user-7",
                       cursor=page["nextCursor"]).json()
    assert [i["subject"] for i in second["items"]] == ["Note 0"]
    assert second["nextCursor"] is None
    item = page["items"][0]
    read = admin.post(f"/api/v1/communications/inapp/{item['id']}/read")
    assert read.status_code == 200, read.content
    assert read.json()["readAt"] is not None
    assert admin.post(f"/api/v1/communications/inapp/{item['id']}/read").status_code == 200
    assert Delivery.objects.get(id=item["id"]).status == Status.OPENED
    unread = admin.get("/api/v1/communications/inapp", userId="user-7", unread="true").json()
    assert [i["subject"] for i in unread["items"]] == ["Note 1", "Note 0"]
    tampered = admin.get("/api/v1/communications/inapp", userId="user-7",
                         cursor=page["nextCursor"][:-2] + "xx")
    assert tampered.status_code == 400
    Contact.objects.create(account=keys.account, external_id="user-8")
    foreign = admin.get("/api/v1/communications/inapp", userId="user-8",
                        cursor=page["nextCursor"])
    assert foreign.status_code == 400 and "another inbox" in foreign.json()["detail"]


def test_webhook_channel_is_signed_with_its_integrations_secret(admin, keys, settings):
    from common.signing import secret_generate
    from comms import channels

    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    with WebhookReceiver() as receiver:
        receiver.secret = secret_generate()  # an integration of the account's own
        channels.integration_save(account=keys.account, provider="webhook", config={},
                                  credentials={"signing_secret": receiver.secret})
        response = admin.post(URL, body(channels=["Webhook"], webhookUrl=receiver.url,
                                        isHtml=True, body="<b>Down</b> at 22:00"))
        assert response.json() == {"results": [
            {"channel": "Webhook", "success": True, "error": None}]}
        [received] = receiver.verified
        assert received.payload["data"]["body"] == "<b>Down</b> at 22:00"
        assert received.payload["data"]["isHtml"] is True
        receiver.answer(500)
        failed = admin.post(URL, body(channels=["Webhook"], webhookUrl=receiver.url))
    assert failed.status_code == 400  # every channel failed: problem details
    assert failed["Content-Type"] == "application/problem+json"
    assert failed.json()["results"][0]["error"] == "The receiver answered HTTP 500."


def test_a_malformed_webhook_secret_is_a_configuration_error(admin, keys, settings):
    from comms import channels

    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    channels.integration_save(account=keys.account, provider="webhook", config={},
                              credentials={"signing_secret": "not-a-secret"})
    response = admin.post(URL, body(channels=["Webhook"], webhookUrl="http://127.0.0.1:9/x"))
    assert "needs a signing_secret" in response.json()["results"][0]["error"]


def test_webhook_channel_refuses_private_addresses(admin, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    response = admin.post(URL, body(channels=["Webhook"],
                                    webhookUrl="http://127.0.0.1:9/hook"))
    assert response.status_code == 400
    assert "webhookUrl" in response.json()["errors"]
    assert not Delivery.objects.exists()


@pytest.mark.parametrize(("changes", "field"), [
    ({"channels": []}, "channels"),
    ({"channels": ["Email", "Fax"]}, "channels"),
    ({"channels": ["Email", "email"]}, "channels"),
    ({"emailAddress": None}, "emailAddress"),
    ({"phoneNumber": "0455 555 555"}, "phoneNumber"),
    ({"phoneNumber": "+9745555"}, "phoneNumber"),
    ({"phoneNumber": "+974 5555 5555"}, "phoneNumber"),
    ({"channels": ["Push"], "pushToken": "not a token"}, "pushToken"),
    ({"channels": ["Push"]}, "pushToken"),
    ({"channels": ["Webhook"], "webhookUrl": "ftp://example.com/x"}, "webhookUrl"),
    ({"body": "<p>Hello</p>"}, "body"),
    ({"channels": ["Sms"], "body": "x" * 1600}, "body"),
    ({"channels": ["Sms"], "body": "é" * 500 + "✓" * 300}, "body"),
    ({"subject": 5}, "subject"),
    ({"isHtml": "maybe"}, "isHtml"),
    ({"extra": 1}, "extra"),
])
def test_bad_input_is_a_problem_naming_the_field_and_sends_nothing(admin, changes, field):
    response = admin.post(URL, body(**changes))
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 400 and problem["title"]
    assert field in problem["errors"], problem
    assert not Delivery.objects.exists()


def test_missing_fields_are_all_named(admin):
    response = admin.post(URL, {"subject": "s", "body": "b",
                                "channels": ["Email", "Sms", "InApp", "Push", "Webhook"]})
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"emailAddress", "phoneNumber", "userId",
                                              "pushToken", "webhookUrl"}


def test_only_admin_keys(api, keys):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.live_key}")
    response = client.post(URL, EXAMPLE, format="json")
    assert response.status_code == 403
    assert response.json()["status"] == 403
    assert response["Content-Type"] == "application/problem+json"
    anonymous = APIClient().post(URL, EXAMPLE, format="json")
    assert anonymous.status_code == 401
    assert not Delivery.objects.exists()
