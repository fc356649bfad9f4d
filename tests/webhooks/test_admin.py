"""The admin manages the same endpoints through the same services: create (secret shown once,
on a page of its own), rotate the secret (the new one shown once; no "reveal"), send a test
event, resend messages; delete is soft."""

import re

import pytest
from django.contrib.auth import get_user_model

from tests.fakes.webhook_receiver import WebhookReceiver
from webhooks import services
from webhooks.models import Endpoint, Message


@pytest.fixture
def staff(client, db):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-12345678")
    client.force_login(user)
    return client


@pytest.fixture
def receiver(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    with WebhookReceiver() as server:
        yield server


def _shown(response) -> list[str]:
    """The secrets on the page that shows them once (never in a message)."""
    assert response.status_code == 200 and b'id="shown-once"' in response.content
    assert not [m for m in response.context["messages"] if "whsec_" in str(m)]
    return re.findall(r"<code>(whsec_[^<]+)</code>", response.content.decode())


def test_admin_creates_rotates_and_tests(staff, keys, receiver,
                                        django_capture_on_commit_callbacks):
    response = staff.post("/admin/webhooks/endpoint/add/", {
        "account": keys.account.id, "url": receiver.url, "description": "From admin",
        "enabled_events": ["comms.sent", "delivery.sent"], "is_active": "on"}, follow=True)
    endpoint = Endpoint.objects.get()
    [secret] = _shown(response)
    assert services.endpoint_secret_reveal(endpoint=endpoint) == secret
    receiver.secret = secret

    listing = staff.get("/admin/webhooks/endpoint/")
    assert b"reveal_secret" not in listing.content  # shown once means once

    with django_capture_on_commit_callbacks(execute=True):
        staff.post("/admin/webhooks/endpoint/", {
            "action": "send_test", "_selected_action": [endpoint.pk]}, follow=True)
    assert receiver.types() == ["webhook.test"]

    response = staff.get(f"/admin/webhooks/endpoint/{endpoint.pk}/change/")
    assert b"Latest attempts" in response.content and b"Test event" in response.content

    response = staff.post("/admin/webhooks/endpoint/", {
        "action": "rotate_secret", "_selected_action": [endpoint.pk]}, follow=True)
    endpoint.refresh_from_db()
    assert _shown(response) == [services.endpoint_secret_reveal(endpoint=endpoint)] != [secret]
    assert endpoint.previous_secret_expires_at is not None

    message = Message.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        staff.post("/admin/webhooks/message/", {
            "action": "resend", "_selected_action": [message.pk]}, follow=True)
    assert len(receiver.received) == 2
    assert receiver.received[1].verifies_with(secret)  # the old secret still signs for 24 h


def test_admin_refuses_private_urls_and_deletes_softly(staff, keys, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    response = staff.post("/admin/webhooks/endpoint/add/", {
        "account": keys.account.id, "url": "http://169.254.169.254/", "description": "",
        "enabled_events": ["comms.sent"], "is_active": "on"})
    assert response.status_code == 200 and b"not a public internet address" in response.content
    assert not Endpoint.objects.exists()
    endpoint, _ = services.endpoint_create(account=keys.account, url="https://93.184.215.14/")
    staff.post(f"/admin/webhooks/endpoint/{endpoint.pk}/delete/", {"post": "yes"})
    endpoint.refresh_from_db()
    assert endpoint.deleted_at is not None


def test_admin_sets_whether_an_endpoint_gets_test_events(staff, keys, receiver):
    """Staff see and set include_test_events (the API's field): off unless ticked."""
    form = staff.get("/admin/webhooks/endpoint/add/")
    assert b'name="include_test_events"' in form.content
    staff.post("/admin/webhooks/endpoint/add/", {
        "account": keys.account.id, "url": receiver.url, "enabled_events": ["comms.sent"],
        "include_test_events": "on", "is_active": "on"}, follow=True)
    endpoint = Endpoint.objects.get()
    assert endpoint.include_test_events is True
    change = f"/admin/webhooks/endpoint/{endpoint.pk}/change/"
    staff.post(change, {"url": receiver.url, "enabled_events": ["comms.sent"],
                        "is_active": "on"}, follow=True)
    endpoint.refresh_from_db()
    assert endpoint.include_test_events is False
