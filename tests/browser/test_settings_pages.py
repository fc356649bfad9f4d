"""The settings and engine pages in a real browser (#18 findings 8-10): staff open the
deliveries, a delivery, the webhook endpoint with its attempts, the sender domain and the
dashboard; no page scrolls sideways at 1440 or 390 px, none shows developer jargon or a UUID
in a heading, and each is saved under var/screenshots/settings-*.png."""

import re
import uuid

import pytest
from django.urls import reverse

from accounts.models import Membership
from accounts.services import account_create, membership_add
from comms.models import Delivery
from domains import services as domain_services
from guests.services import attendee_create, event_create
from templates.services import template_create
from tests.browser.conftest import PASSWORD, login
from tests.browser.screens import screenshot
from tests.fakes.dns_server import local_dns_fixture, local_dns_server_fixture  # noqa: F401
from tests.fakes.webhook_receiver import WebhookReceiver
from webhooks import services as webhook_services
from webhooks.models import Message

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("local_dns")]

# What staff should never read on these pages (issue #18 finding 9's examples and more).
JARGON = ["GUID", "Provider", "Claimed at", "/comms/v1/api/", "Sms", "Inapp", "Whatsapp",
          "Dns checked at", "(succeeded)", "Membership object", "Reveal"]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def receiver(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    settings.WEBHOOKS_RETRY_SCHEDULE = [0]
    with WebhookReceiver() as server:
        yield server


def _world(settings, receiver):
    """An account whose live tickets went out (one bounced), whose endpoint got a 500 and
    then a 200, and whose sender domain is in development mode."""
    settings.HERALD_EMAIL_PROVIDER = "sandbox"  # live sends with the sandbox's lifecycle
    settings.HERALD_DOMAIN_PROVIDER = "dev"
    account = account_create(name="Acme Events").account
    membership_add(account=account, username="olivia", role=Membership.Role.OWNER,
                   password=PASSWORD)
    endpoint, receiver.secret = webhook_services.endpoint_create(account=account,
                                                                 url=receiver.url)
    receiver.answer(500)
    event = event_create(account=account, name="Spring Gala")
    ticket = template_create(account=account, name="Ticket", subject="Your ticket",
                             text_body="See you at {{ event.name }}.")
    for email in ("ann@example.com", "bounce-bea@example.com"):
        attendee_create(account=account, mode="live", id=uuid.uuid4(), event_id=event.pk,
                        email=email, comms_template_id=ticket.pk)
    for message in Message.objects.filter(status=Message.Status.FAILED):
        webhook_services.message_resend(message=message)
    domain, _ = domain_services.sender_domain_create(account=account,
                                                     domain="mail.acme-events.example")
    domain_services.sender_domain_validate(sender_domain=domain)
    return endpoint, domain, Delivery.objects.get(recipient="bounce-bea@example.com")


def _check(page, name: str) -> str:
    """The page fits at both widths (saved as settings-<name>-*.png) and speaks no jargon;
    answers its text."""
    overflows = screenshot(page, f"settings-{name}")
    assert overflows == {1440: 0, 390: 0}, (name, overflows)
    text = page.inner_text("body")
    for word in JARGON:
        assert word not in text, (name, word)
    for heading in page.locator("h1").all_inner_texts():
        assert not UUID.search(heading), (name, heading)
    return text


# How much of the table a box around it that scrolls or clips hides (0: none).
CLIPPED_JS = """(selector) => { const table = document.querySelector(selector);
  for (let e = table.parentElement; e && e !== document.body; e = e.parentElement) {
    const clips = ['auto', 'scroll', 'hidden'].includes(getComputedStyle(e).overflowX);
    if (clips && e.scrollWidth > e.clientWidth + 1) return e.scrollWidth - e.clientWidth; }
  return 0; }"""


def _table_whole_at_1440(page, selector: str) -> None:
    """At 1440 px the table is shown whole: no box around it hides a column behind a
    scrollbar (the deliveries' "Created at" and the attempts' outcome were)."""
    page.set_viewport_size({"width": 1440, "height": 900})
    assert page.evaluate(CLIPPED_JS, selector) == 0, selector


def test_staff_read_the_settings_pages_in_their_words_at_both_widths(page, settings, receiver):
    endpoint, domain, bounced = _world(settings, receiver)
    assert endpoint.attempts.filter(status_code=500).exists()
    login(page, "olivia")

    page.goto(reverse("admin:comms_delivery_changelist"))
    text = _check(page, "deliveries")
    assert "bounce-bea@example.com" in text and "Bounced" in text
    _table_whole_at_1440(page, "#result_list")

    page.click('#result_list tr:has-text("bounce-bea@example.com") a >> nth=0')
    page.wait_for_url(re.compile(str(bounced.pk)))
    text = _check(page, "delivery")
    assert "Email to bounce-bea@example.com" in text
    assert "Bounced: the mailbox does not exist" in text
    assert "comms.bounced" not in text and "{" not in text  # no event ids, no JSON

    page.goto(reverse("admin:webhooks_endpoint_change", args=[endpoint.pk]))
    text = _check(page, "webhook")
    assert re.search(r"HTTP 500 · \d+ ms · failed", text)
    assert re.search(r"HTTP 200 · \d+ ms · succeeded", text)
    assert "Rotate the signing secret" in text and "Delivered" in text
    _table_whole_at_1440(page, ".herald-attempts")

    page.goto(reverse("admin:webhooks_attempt_changelist"))
    text = _check(page, "attempts")
    assert re.search(r"HTTP 500 · \d+ ms · failed", text)
    _table_whole_at_1440(page, "#result_list")

    page.goto(reverse("admin:domains_senderdomain_change", args=[domain.pk]))
    text = _check(page, "domain")
    assert "Development mode: verification is simulated" in text
    assert "verified and enabled" not in text
    # The DNS table scrolls inside its own box on a phone: its last column can be reached.
    page.set_viewport_size({"width": 390, "height": 844})
    box = page.locator(".herald-scroll:has(.herald-dns-records)")
    assert box.evaluate("e => e.scrollWidth > e.clientWidth")
    box.evaluate("e => e.scrollLeft = e.scrollWidth")
    assert page.locator(".herald-dns-records th").last.is_visible()
    _table_whole_at_1440(page, ".herald-dns-records")

    page.goto(reverse("admin:comms_dashboard_changelist"))
    text = _check(page, "dashboard")
    assert "Account: Acme Events" in text
