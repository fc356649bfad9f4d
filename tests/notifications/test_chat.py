"""A spec-004 event on the chat channels (Slack, Discord, Telegram, WhatsApp) through the
account's integrations, against a real local server speaking the four vendors' APIs."""

import pytest
from rest_framework.test import APIClient

from comms import channels
from comms.models import Delivery, Status
from tests.fakes.chat_api import FakeChat

CHAT = ["slack", "discord", "telegram", "whatsapp"]


@pytest.fixture
def chat(keys, settings):
    settings.HERALD_PROVIDER_TIMEOUT_SECONDS = 2
    with FakeChat() as fake:
        for platform in CHAT:
            config = {"api_base": fake.url}
            if platform == "whatsapp":
                channels.integration_save(
                    account=keys.account, provider="whatsapp_cloud",
                    config={**config, "phone_number_id": fake.phone_number_id},
                    credentials={"access_token": fake.tokens["whatsapp"]})
            else:
                channels.integration_save(account=keys.account, provider=platform,
                                          config=config,
                                          credentials={"bot_token": fake.tokens[platform]})
        yield fake


def test_an_event_reaches_every_chat_channel(keys, chat, django_capture_on_commit_callbacks):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.live_key}")
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post("/v1/events", {
            "identifier": "deploy.done", "channels": CHAT,
            "templates": [{"channel": c, "subject": "Deploy",
                           "body": "{{payload.service}} is live, {{name | team}}."}
                          for c in CHAT]}, format="json")
        assert created.status_code == 201, created.content
        response = client.post("/v1/send/deploy.done", {
            "to": {"email": "ops@example.com", "name": "Ops", "slack": "U0123ABCD",
                   "discord": "123456789012345678", "telegram": "987654321",
                   "phone": "+14155551234"},
            "payload": {"service": "Billing API"}}, format="json")
    assert response.status_code == 200, response.content
    assert sorted(next(iter(d)) for d in response.json()["deliveries"]) == sorted(CHAT)
    assert set(Delivery.objects.values_list("status", flat=True)) == {Status.SENT}
    for platform in CHAT:
        [received] = chat.messages(platform)
        assert "Billing API is live, Ops" in str(received.body), (platform, received.body)
    assert chat.messages("whatsapp")[0].recipient == "14155551234"


def test_a_blocked_chat_user_fails_as_invalid_recipient(keys, chat):
    delivery = Delivery.objects.create(account=keys.account, channel="telegram",
                                       recipient="403000001", subject="", text_body="hi",
                                       template_version=0)
    from comms.dispatch import delivery_dispatch

    delivery_dispatch(delivery_id=str(delivery.id))
    delivery.refresh_from_db()
    assert (delivery.status, delivery.failure_type) == (Status.FAILED, "invalid_recipient")
