"""Webhook pages without contradictions (#18 findings 9-10): each attempt shows its own
outcome ("HTTP 500 · 120 ms · failed"), not its message's later success; event types are
offered by what happened, grouped, with the developer's id beside; the signing secret is shown
once, rotated (owners only), never revealed, and the old one stops signing after the overlap."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from tests.conftest import member_client
from tests.fakes.webhook_receiver import WebhookReceiver
from webhooks import services
from webhooks.models import Endpoint, Message


@pytest.fixture
def receiver(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    settings.WEBHOOKS_RETRY_SCHEDULE = [0]
    with WebhookReceiver() as server:
        yield server


def _member(keys, username: str, role: str) -> Client:
    return member_client(keys.account, username, role)


@pytest.fixture
def owner(keys) -> Client:
    return _member(keys, "olive", Membership.Role.OWNER)


@pytest.fixture
def endpoint(keys, receiver) -> Endpoint:
    endpoint, secret = services.endpoint_create(account=keys.account, url=receiver.url)
    receiver.secret = secret
    return endpoint


def _text(html: str) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


@pytest.fixture
def failed_then_received(endpoint, receiver, django_capture_on_commit_callbacks) -> Message:
    """A test event whose first attempt got HTTP 500 and whose resend was received."""
    receiver.answer(500)
    with django_capture_on_commit_callbacks(execute=True):
        message = services.endpoint_send_test(endpoint=endpoint)
    with django_capture_on_commit_callbacks(execute=True):
        services.message_resend(message=Message.objects.get(pk=message.pk))
    message.refresh_from_db()
    assert message.status == Message.Status.SUCCEEDED
    assert sorted(a.status_code for a in message.attempt_log.all()) == [200, 500]
    return message


def test_each_attempt_shows_its_own_outcome_not_its_messages(owner, failed_then_received):
    pages = [reverse("admin:webhooks_attempt_changelist"),
             reverse("admin:webhooks_endpoint_change", args=[failed_then_received.endpoint_id]),
             reverse("admin:webhooks_message_change", args=[failed_then_received.pk])]
    for url in pages:
        text = _text(owner.get(url).content.decode())
        assert re.search(r"HTTP 500 · \d+ ms · failed", text), url
        assert re.search(r"HTTP 200 · \d+ ms · succeeded", text), url
        assert "(succeeded)" not in text, url  # the message's state beside a 500


def test_a_message_page_is_named_by_its_event_not_its_id(owner, failed_then_received):
    html = owner.get(reverse("admin:webhooks_message_change",
                             args=[failed_then_received.pk])).content.decode()
    headings = [_text(h) for h in re.findall(r"<h1.*?</h1>", html, re.S)]
    assert any(h.startswith("“Test event” event of ") for h in headings), headings
    assert "Claimed at" not in _text(html)


def test_the_endpoint_form_offers_events_by_what_happened(owner):
    html = owner.get(reverse("admin:webhooks_endpoint_add")).content.decode()
    text = _text(html)
    assert "Every step of a message (comms.* events)" in text
    assert "The outcome of a delivery (delivery.* events)" in text
    # The words first, the event type beside them as a hint.
    assert re.search(r'Delivered <small[^>]*>comms\.delivered</small>', html)
    assert re.search(r'Reported as spam <small[^>]*>delivery\.complained</small>', html)


def test_there_is_no_reveal_only_rotate_for_owners(keys, owner, endpoint):
    listing = owner.get(reverse("admin:webhooks_endpoint_changelist")).content.decode()
    assert "reveal_secret" not in listing and "rotate_secret" in listing
    page = owner.get(reverse("admin:webhooks_endpoint_change", args=[endpoint.pk]))
    assert "Rotate the signing secret" in page.content.decode()
    assert "Reveal" not in _text(page.content.decode())
    staff = _member(keys, "stella", Membership.Role.STAFF)
    url = reverse("admin:webhooks_endpoint_rotate_secret", args=[endpoint.pk])
    assert staff.post(url).status_code == 403
    assert Endpoint.objects.get(pk=endpoint.pk).secret_encrypted == endpoint.secret_encrypted


def test_rotating_shows_the_new_secret_once_and_the_old_stops_after_the_overlap(
        owner, endpoint, receiver, django_capture_on_commit_callbacks):
    old = receiver.secret
    response = owner.post(reverse("admin:webhooks_endpoint_rotate_secret", args=[endpoint.pk]))
    assert response.status_code == 200 and b'id="shown-once"' in response.content
    assert "no-store" in response["Cache-Control"]
    [new] = re.findall(r"<code>(whsec_[^<]+)</code>", response.content.decode())
    assert new != old and services.endpoint_secret_reveal(
        endpoint=Endpoint.objects.get(pk=endpoint.pk)) == new

    with django_capture_on_commit_callbacks(execute=True):  # during the overlap: both sign
        services.endpoint_send_test(endpoint=Endpoint.objects.get(pk=endpoint.pk))
    assert receiver.received[-1].verifies_with(new) and receiver.received[-1].verifies_with(old)

    # The overlap is over (24 h later): only the new secret signs.
    Endpoint.objects.filter(pk=endpoint.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        services.endpoint_send_test(endpoint=Endpoint.objects.get(pk=endpoint.pk))
    assert receiver.received[-1].verifies_with(new)
    assert not receiver.received[-1].verifies_with(old)
    page = owner.get(reverse("admin:webhooks_endpoint_change", args=[endpoint.pk]))
    assert new not in page.content.decode()  # shown once: never on the endpoint's page
