"""The webhook channel's adapter against a real local receiver: what the receiver answers is
this message's fate (retry or fail), never a configuration or recipient error."""

import base64
import os
from collections.abc import Iterator

import pytest

from comms.providers.base import (
    ChannelMessage,
    ProviderInvalidRecipient,
    ProviderPermanentError,
    ProviderTransientError,
)
from comms.providers.webhook import WebhookChannelProvider
from tests.fakes.webhook_receiver import WebhookReceiver

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()


@pytest.fixture
def receiver(settings) -> Iterator[WebhookReceiver]:
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True  # the receiver listens on 127.0.0.1
    settings.WEBHOOKS_TIMEOUT_SECONDS = 2
    with WebhookReceiver() as server:
        server.secret = SECRET
        yield server


def send(receiver: WebhookReceiver) -> str:
    message = ChannelMessage(delivery_id="4b7c0c1e-0000-4000-8000-000000000001",
                             channel="webhook", to=receiver.url, title="Doors",
                             text="Doors open at 7.")
    return WebhookChannelProvider({}, {"signing_secret": SECRET}, 2).send(
        message).provider_message_id


def test_a_2xx_is_sent_and_the_receiver_verifies_the_signature(receiver):
    assert send(receiver) == "msg_4b7c0c1e000040008000000000000001"
    assert receiver.verified[0].payload["data"]["body"] == "Doors open at 7."


@pytest.mark.parametrize("status", [408, 425, 429, 500, 503])
def test_a_busy_or_failing_receiver_is_transient(receiver, status):
    receiver.answer(status)
    with pytest.raises(ProviderTransientError) as caught:
        send(receiver)
    assert str(caught.value) == f"The receiver answered HTTP {status}."


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_any_other_answer_fails_the_message_only(receiver, status):
    receiver.answer(status)
    with pytest.raises(ProviderPermanentError) as caught:
        send(receiver)
    assert type(caught.value) is ProviderPermanentError
    assert not isinstance(caught.value, ProviderInvalidRecipient)
    assert str(caught.value) == f"The receiver answered HTTP {status}."
