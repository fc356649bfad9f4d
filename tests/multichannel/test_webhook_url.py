"""Spec 002's Webhook channel given only ``webhookUrl``: the post is signed (Standard
Webhooks) with the account's webhook-channel secret, made on first use, encrypted at rest,
read by admin keys at GET /api/v1/communications/webhook-secret; a receiver verifies it with
the ``standardwebhooks`` library; a non-public URL is a 400 problem and sends nothing."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from rest_framework.test import APIClient

from comms.models import Delivery, Integration
from multichannel.services import webhook_secret
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.multichannel.test_api import admin, body, sandbox_admin  # noqa: F401 (fixtures)

URL = "/api/v1/communications/send"
SECRET_URL = "/api/v1/communications/webhook-secret"


def test_the_first_send_makes_the_secret_and_the_receiver_verifies_it(admin, settings):  # noqa: F811
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    with WebhookReceiver() as receiver:
        response = admin.post(URL, body(channels=["Webhook"], webhookUrl=receiver.url))
        assert response.json() == {"results": [
            {"channel": "Webhook", "success": True, "error": None}]}
        secret = admin.get(SECRET_URL).json()["secret"]
        assert secret.startswith("whsec_")
        [post] = receiver.received
        assert post.verifies_with(secret)
        assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= {
            h.lower() for h in post.headers}
    [integration] = Integration.objects.filter(channel="webhook")
    assert secret not in integration.credentials_encrypted  # encrypted at rest


def test_the_secret_is_made_once_and_reused(admin, settings):  # noqa: F811
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    secret = admin.get(SECRET_URL).json()["secret"]
    assert admin.get(SECRET_URL).json()["secret"] == secret
    with WebhookReceiver() as receiver:
        receiver.secret = secret  # set up before any send, as a receiver would be
        for _ in range(2):
            response = admin.post(URL, body(channels=["Webhook"], webhookUrl=receiver.url))
            assert response.json()["results"][0]["success"] is True
        assert len(receiver.verified) == 2
        assert receiver.verified[0].payload["data"]["subject"] == "System maintenance"
    assert Integration.objects.filter(channel="webhook").count() == 1


def test_switched_off_webhook_integrations_stay_off(admin, keys, settings):  # noqa: F811
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    secret = admin.get(SECRET_URL).json()["secret"]
    Integration.objects.filter(channel="webhook").update(is_active=False)
    response = admin.post(URL, body(channels=["Webhook"], webhookUrl="http://127.0.0.1:9/x"))
    assert response.json()["results"][0]["error"] == "No webhook integration configured"
    assert admin.get(SECRET_URL).json()["secret"] == secret
    assert Integration.objects.filter(channel="webhook").count() == 1


def test_a_private_url_is_refused_at_intake(admin, settings):  # noqa: F811
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    for url in ("http://127.0.0.1:9/hook", "http://10.0.0.8/hook", "http://[::1]/hook",
                "http://169.254.169.254/latest/meta-data"):
        response = admin.post(URL, body(channels=["Webhook"], webhookUrl=url))
        assert response.status_code == 400, url
        assert response["Content-Type"] == "application/problem+json"
        assert "webhookUrl" in response.json()["errors"]
    assert not Delivery.objects.exists()
    assert not Integration.objects.exists()


def test_a_test_key_send_makes_no_secret(sandbox_admin, settings):  # noqa: F811
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    response = sandbox_admin.post(URL, body(channels=["Webhook"],
                                            webhookUrl="http://127.0.0.1:9/x"))
    assert response.status_code == 200
    assert not Integration.objects.exists()


def test_a_test_admin_key_neither_reads_nor_makes_the_live_secret(sandbox_admin, admin):  # noqa: F811
    """A test key sends nothing live: with the live secret it could sign posts that a
    production receiver accepts."""
    refused = sandbox_admin.get(SECRET_URL)
    assert refused.status_code == 403
    assert refused["Content-Type"] == "application/problem+json"
    assert "whsec_" not in refused.content.decode()
    assert not Integration.objects.exists()
    assert admin.get(SECRET_URL).json()["secret"].startswith("whsec_")


def test_only_admin_keys_read_the_secret(keys):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.live_key}")
    assert client.get(SECRET_URL).status_code == 403
    assert not Integration.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_racing_first_uses_make_one_secret(keys):
    barrier = threading.Barrier(4)

    def first_use() -> str:
        barrier.wait()
        try:
            return webhook_secret(account=keys.account)
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        secrets = list(pool.map(lambda _: first_use(), range(4)))
    assert len(set(secrets)) == 1 and secrets[0].startswith("whsec_")
    assert Integration.objects.filter(channel="webhook").count() == 1
