"""Spec 002 against real local provider servers: the spec's example reaches fake SendGrid and
fake Twilio exactly as documented; an SMS outage fails only SMS; failover moves a message to
the second integration (moto's SNS); the worker path retries and forgets dead push tokens."""

from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends
from rest_framework.test import APIClient

from comms import channels
from comms.dispatch import delivery_dispatch
from comms.models import Delivery, DeliveryEvent, Status
from comms.services import delivery_owner
from contacts.models import Contact, PushToken
from tests.conftest import AWS_REGION
from tests.fakes.push_api import FakeExpo
from tests.fakes.twilio_api import FakeTwilio

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


@pytest.fixture
def twilio():
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def admin(keys, django_capture_on_commit_callbacks):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.admin_key}")

    def post(body: dict[str, Any]):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(URL, body, format="json")
    return post


def twilio_integration(keys, fake: FakeTwilio, priority: int = 0):
    return channels.integration_save(
        account=keys.account, provider="twilio", priority=priority,
        config={"api_base": fake.url, "from_number": "+15005550006"},
        credentials={"account_sid": fake.account_sid, "auth_token": fake.auth_token})


def sns_integration(keys, moto_url: str, priority: int = 1):
    return channels.integration_save(
        account=keys.account, provider="sns", priority=priority,
        config={"region": AWS_REGION, "endpoint_url": moto_url},
        credentials={"access_key_id": "testing", "secret_access_key": "testing"})


def test_the_spec_example_reaches_each_provider_as_documented(admin, keys, sendgrid, twilio,
                                                              settings):
    settings.HERALD_PROVIDER_TIMEOUT_SECONDS = 2
    twilio_integration(keys, twilio)
    Contact.objects.create(account=keys.account, id=EXAMPLE["userId"], name="Ann")
    response = admin(EXAMPLE)
    assert response.status_code == 200, response.content
    assert response.json() == {"results": [
        {"channel": "Email", "success": True, "error": None},
        {"channel": "Sms", "success": True, "error": None},
        {"channel": "InApp", "success": True, "error": None},
    ]}
    [mail] = sendgrid.messages
    assert mail.body["subject"] == "System maintenance" or any(
        p.get("subject") == "System maintenance" for p in mail.body["personalizations"])
    assert [r.email for r in sendgrid.recipients()] == ["user@example.com"]
    contents = {c["type"]: c["value"] for c in mail.body["content"]}
    assert "A scheduled maintenance window starts at 22:00 UTC." in str(contents) or any(
        "22:00 UTC" in str(p) for p in mail.body["personalizations"])
    [sms] = twilio.messages
    assert (sms.to, sms.from_, sms.body) == ("+97455555555", "+15005550006",
                                             "A scheduled maintenance window starts at 22:00 UTC.")
    by_channel = {d.channel: d for d in Delivery.objects.all()}
    assert by_channel["sms"].provider == "twilio"
    assert by_channel["sms"].provider_message_id == sms.sid
    assert by_channel["inapp"].status == Status.DELIVERED
    assert by_channel["email"].status == Status.SENT


def test_an_sms_outage_fails_sms_only(admin, keys, sendgrid, twilio, settings):
    settings.HERALD_PROVIDER_TIMEOUT_SECONDS = 2
    twilio_integration(keys, twilio)
    twilio.fail_next(5, 503)
    response = admin({**EXAMPLE, "channels": ["Email", "Sms"]})
    assert response.status_code == 200, response.content
    email, sms = response.json()["results"]
    assert email == {"channel": "Email", "success": True, "error": None}
    assert sms["success"] is False and "503" in sms["error"]
    assert len(sendgrid.messages) == 1 and twilio.messages == []
    delivery = Delivery.objects.get(channel="sms")
    assert (delivery.status, delivery.failure_type) == (Status.FAILED, "transient")


def test_failover_moves_the_message_to_the_second_integration(admin, keys, twilio, moto_url,
                                                               settings):
    settings.HERALD_PROVIDER_TIMEOUT_SECONDS = 2
    twilio_integration(keys, twilio, priority=0)
    backup = sns_integration(keys, moto_url, priority=1)
    twilio.fail_next(1, 500)
    before = len(sns_backends[DEFAULT_ACCOUNT_ID][AWS_REGION].sms_messages)
    response = admin({**EXAMPLE, "channels": ["Sms"], "body": "Failover check"})
    assert response.json() == {"results": [{"channel": "Sms", "success": True, "error": None}]}
    received = list(sns_backends[DEFAULT_ACCOUNT_ID][AWS_REGION].sms_messages.values())
    assert len(received) == before + 1
    assert received[-1][:2] == ("+97455555555", "Failover check")
    delivery = Delivery.objects.get(channel="sms")
    assert (delivery.provider, delivery.integration_id) == ("sns", backup.id)
    failover = DeliveryEvent.objects.get(delivery=delivery, name="comms.failover")
    assert failover.detail["provider"] == "twilio" and "500" in failover.detail["reason"]


def test_credentials_are_stored_encrypted(keys, twilio):
    integration = twilio_integration(keys, twilio)
    assert twilio.auth_token not in integration.credentials_encrypted
    assert "auth_token" not in integration.credentials_encrypted


def _queued(keys, channel: str, recipient: str, contact=None) -> Delivery:
    return Delivery.objects.create(
        account=keys.account, channel=channel, recipient=recipient, **delivery_owner(contact),
        subject="Doors", text_body="Doors open at 7.", template_version=0)


def test_the_worker_retries_a_transient_sms_failure_then_sends(keys, twilio, settings):
    settings.HERALD_PROVIDER_TIMEOUT_SECONDS = 2
    twilio_integration(keys, twilio)
    twilio.fail_next(1, 503)
    delivery = _queued(keys, "sms", "+97455555555")
    # Fails, schedules a retry; the (eager) retry task runs at once and sends.
    delivery_dispatch(delivery_id=str(delivery.id))
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (Status.SENT, 2)
    assert DeliveryEvent.objects.filter(delivery=delivery,
                                        name="comms.retry_scheduled").count() == 1
    assert [m.body for m in twilio.messages] == ["Doors open at 7."]


def test_a_dead_push_token_is_removed_from_its_contact(keys, settings):
    settings.HERALD_PROVIDER_TIMEOUT_SECONDS = 2
    dead = "ExponentPushToken[dead-device-0001]"
    with FakeExpo() as expo:
        expo.unregistered.add(dead)
        channels.integration_save(account=keys.account, provider="expo",
                                  config={"api_base": expo.url}, credentials={})
        contact = Contact.objects.create(account=keys.account, email="ann@example.com")
        PushToken.objects.create(contact=contact, token=dead, provider="expo")
        delivery = _queued(keys, "push", dead, contact)
        delivery_dispatch(delivery_id=str(delivery.id))
    delivery.refresh_from_db()
    assert (delivery.status, delivery.failure_type) == (Status.FAILED, "invalid_recipient")
    assert not PushToken.objects.filter(token=dead).exists()


def test_no_integration_fails_fast_in_the_worker(keys):
    delivery = _queued(keys, "telegram", "123456789")
    delivery_dispatch(delivery_id=str(delivery.id))
    delivery.refresh_from_db()
    assert (delivery.status, delivery.failure_type) == (Status.FAILED, "integration_missing")
    assert delivery.failure_reason == "No telegram integration configured"


def test_an_unbuildable_integration_fails_over_and_never_strands_the_batch(admin, keys, twilio,
                                                                           settings):
    settings.HERALD_PROVIDER_TIMEOUT_SECONDS = 2
    broken = channels.integration_save(account=keys.account, provider="twilio", priority=0,
                                       config={"api_base": twilio.url}, credentials={})
    response = admin({**EXAMPLE, "channels": ["Email", "Sms"]})
    assert response.status_code == 200, response.content
    email, sms = response.json()["results"]
    assert email["success"] is True
    assert sms["success"] is False and "unusable" in sms["error"]
    # A working second integration takes over.
    twilio_integration(keys, twilio, priority=1)
    again = admin({**EXAMPLE, "channels": ["Sms"]})
    assert again.json()["results"][0]["success"] is True
    assert Delivery.objects.filter(channel="sms", status=Status.SENT).get().integration_id != (
        broken.id)
    # In the worker, a claimed batch mixing channels: each row gets its own outcome.
    Delivery.objects.all().delete()
    channels.integration_save(account=keys.account, provider="slack", config={},
                              credentials={})
    slack = _queued(keys, "slack", "U0123ABCD")
    mail = Delivery.objects.create(account=keys.account, channel="email",
                                   recipient="a@example.com", subject="s", text_body="t",
                                   template_version=0)
    delivery_dispatch(delivery_id=str(slack.id))
    slack.refresh_from_db()
    mail.refresh_from_db()
    assert (slack.status, slack.failure_type) == (Status.FAILED, "integration_error")
    assert mail.status == Status.SENT


def test_a_slow_channel_batch_hands_the_rest_back_before_its_lease(keys, twilio, settings):
    settings.HERALD_PROVIDER_TIMEOUT_SECONDS = 2
    settings.HERALD_SENDING_LEASE_SECONDS = 1  # half of it: 0.5 s of sending per task
    twilio_integration(keys, twilio)
    twilio.hang_next(1, seconds=0.8)
    rows = [_queued(keys, "sms", "+97455555555") for _ in range(3)]
    delivery_dispatch(delivery_id=str(rows[0].id))  # eager: the follow-up task runs too
    for row in rows:
        row.refresh_from_db()
    assert [r.status for r in rows] == [Status.SENT] * 3
    # The first timed out and was retried; the other two were handed back unattempted.
    assert [r.attempts for r in rows[1:]] == [1, 1]
    # ... and claimed again afterwards by the follow-up task, not held through the hang.
    assert rows[1].claimed_at > rows[0].claimed_at
    assert len(twilio.messages) == 3


def test_host_overrides_need_the_platform_setting(keys, settings):
    """An account owner must not point a provider (any host field) at internal addresses."""
    from common.errors import HeraldError

    settings.HERALD_PROVIDER_API_BASE_OVERRIDE = False
    for provider, config in (("twilio", {"api_base": "http://127.0.0.1:1"}),
                             ("sns", {"endpoint_url": "http://169.254.169.254"})):
        with pytest.raises(HeraldError, match="HERALD_PROVIDER_API_BASE_OVERRIDE"):
            channels.integration_save(account=keys.account, provider=provider, config=config,
                                      credentials={})
