"""Writing a ticket template in a real browser (#18 item 5): staff insert tokens with the
picker, are told about a misspelt token before it reaches guests, preview the ticket as a real
guest of the event would get it (the date in the event's time zone) and send a test to an
inbox. Screenshots of the form and the preview at 1440 and 390 px."""

import uuid
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from accounts.models import Membership
from accounts.services import account_create, membership_add
from comms.models import Delivery
from guests.models import Event
from guests.services import attendee_create, event_create
from templates.models import MessageTemplate
from templates.services import TEST_SEND_CORRELATION
from tests.browser.conftest import PASSWORD, login
from tests.browser.screens import assert_fits, screenshot

pytestmark = pytest.mark.browser


def _insert(page, field: str, token: str) -> None:
    """Put the cursor at the end of ``field`` and click the token's button."""
    page.click(field)
    page.keyboard.press("End")
    page.click(f'[data-token="{{{{ {token} }}}}"]')


def test_staff_write_a_ticket_with_tokens_preview_it_as_a_guest_and_send_a_test(page,
                                                                                 settings):
    settings.HERALD_RATE_LIMIT_REDIS_URL = ""  # the test-send limit counts in this process
    account = account_create(name="Acme Events").account
    membership_add(account=account, username="stella", role=Membership.Role.STAFF,
                   password=PASSWORD)
    gala = event_create(account=account, name="Spring Gala", venue="Grand Hall",
                        starts_at=datetime(2027, 4, 17, 17, 0, tzinfo=UTC))
    Event.objects.filter(pk=gala.pk).update(time_zone="Europe/Paris")
    for first, email in (("Jane", "jane@example.com"), ("Omar", "omar@example.com")):
        attendee_create(account=account, mode="live", id=uuid.uuid4(), event_id=gala.pk,
                        email=email, first_name=first, last_name="Haddad")

    login(page, "stella")
    page.goto(reverse("admin:templates_messagetemplate_add"))
    page.fill("#id_name", "Ticket")
    page.select_option("#id_account", label="Acme Events")
    # The picker inserts at the cursor of the field last focused.
    page.fill("#id_subject", "Your ticket for ")
    _insert(page, "#id_subject", "event.name")
    assert page.input_value("#id_subject") == "Your ticket for {{ event.name }}"
    page.fill("#id_text_body", "Hi ")
    _insert(page, "#id_text_body", "firstName")
    page.keyboard.type(", doors open ")
    page.click('[data-token="{{ event.startsAt|time }}"]')
    page.keyboard.type(" on ")
    page.click('[data-token="{{ event.startsAt|date }}"]')
    assert page.input_value("#id_text_body") == (
        "Hi {{ firstName }}, doors open {{ event.startsAt|time }} on {{ event.startsAt|date }}")
    page.fill("#id_html_body", "<p>Dear {{ fristName }}, see you at {{ event.venue }}.</p>")
    screenshot(page, "templates-form")
    page.click('button[name="_continue"]')

    # The misspelt token: named, with the one it resembles; nothing saved yet.
    error = page.locator(".errorlist").first.inner_text()
    assert "Unknown token fristName — did you mean firstName?" in error
    assert not MessageTemplate.objects.exists()
    screenshot(page, "templates-unknown-token")
    page.fill("#id_html_body", "<p>Dear {{ firstName }}, see you at {{ event.venue }}.</p>")
    page.click('button[name="_continue"]')
    template = MessageTemplate.objects.get()

    # The preview: the latest guest, the date and time in Paris (17:00 UTC is 19:00 there).
    page.wait_for_selector("#herald-preview")
    preview = page.inner_text("#herald-preview")
    assert "Your ticket for Spring Gala" in preview
    assert "Hi Omar, doors open 19:00 on Saturday 17 April 2027" in preview
    assert "None" not in preview and "+00:00" not in preview
    html = page.frame_locator('iframe[title="HTML preview"]').locator("body").inner_text()
    assert html == "Dear Omar, see you at Grand Hall."
    page.select_option('select[name="guest"]', label="Jane Haddad · jane@example.com")
    page.wait_for_selector("text=Hi Jane, doors open 19:00")
    overflows = screenshot(page, "templates-preview")
    assert overflows == {1440: 0, 390: 0}, overflows

    # A test to any inbox, with Jane's data; never one of Jane's sends.
    page.fill('.herald-test-send input[name="to"]', "qa@agency.example")
    page.click('.herald-test-send button[type="submit"]')
    page.get_by_text("Test sent to qa@agency.example with the data of Jane Haddad").wait_for()
    delivery = Delivery.objects.get(recipient="qa@agency.example")
    assert delivery.template_id == template.pk and delivery.mode == "live"
    assert delivery.correlation_id == TEST_SEND_CORRELATION and delivery.owner_id is None
    assert_fits(page)
