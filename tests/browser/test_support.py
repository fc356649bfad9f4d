"""Support's routine in a real browser: a guest writes "I never got my ticket". A support agent
logs in, finds the guest by email from the Support page, reads on the guest's page that the
ticket bounced (in plain words), fixes the typo in the address and resends; the new ticket
shows in the history. Another account's guests never appear.

Clicks, login to resent: 4 (log in, "Find a guest", Find, "Save and resend"); typing is free.
"""

import re
import uuid

import pytest

from accounts.models import Membership
from accounts.services import account_create, membership_add
from guests.models import Attendee
from guests.services import attendee_create, event_create
from templates.services import template_create
from tests.browser.conftest import PASSWORD
from tests.browser.screens import screenshot

pytestmark = pytest.mark.browser


class Clicks:
    """Counts what the user clicks (typing is free), so the routine's length is asserted."""

    def __init__(self, page) -> None:
        self.page, self.count = page, 0

    def click(self, selector: str) -> None:
        self.count += 1
        self.page.click(selector)
        self.page.wait_for_load_state()


def _seed():
    account = account_create(name="Acme Events").account
    membership_add(account=account, username="sam", role=Membership.Role.SUPPORT,
                   password=PASSWORD)
    event = event_create(account=account, name="Spring Gala")
    ticket = template_create(account=account, name="Ticket", subject="Your ticket, {{ firstName }}",
                             text_body="Hi {{ firstName }}, see you at {{ event.name }}.")
    # Sandbox sends (test key): bounce-… addresses bounce, the others are delivered and opened.
    guests = [("Ann", "Lee", "bounce-ann.lee@example.com", "order-1001"),
              ("Anna", "Berg", "anna.berg@example.com", "order-1002"),
              ("Bob", "Stone", "bob@example.com", "order-1003")]
    for first, last, email, order in guests:
        attendee_create(account=account, mode="test", id=uuid.uuid4(), event_id=event.pk,
                        email=email, first_name=first, last_name=last, correlation_id=order,
                        comms_template_id=ticket.pk)
    # Another account's guest, with a look-alike address: never shown to sam.
    other = account_create(name="Beta Org").account
    beta_event = event_create(account=other, name="Beta Gala")
    attendee_create(account=other, mode="test", id=uuid.uuid4(), event_id=beta_event.pk,
                    email="ann.lee@beta.example", first_name="Ann", last_name="Beta",
                    correlation_id="order-1001")


def _history(page) -> str:
    return " ".join(page.inner_text("#ticket-history").split())


def test_support_finds_the_guest_reads_the_bounce_fixes_the_email_and_resends(page):
    _seed()
    clicks = Clicks(page)
    page.set_viewport_size({"width": 1440, "height": 900})

    page.goto("/admin/login/")
    page.fill("#id_username", "sam")
    page.fill("#id_password", PASSWORD)
    clicks.click("[type=submit]")
    page.wait_for_url("**/admin/")

    # Support, from the sidebar: one box.
    clicks.click('a[href$="/admin/guests/attendee/support/"] >> visible=true')
    page.fill("#support-q", "ann")
    page.press("#support-q", "Enter")  # the keyboard's Enter: no click
    page.wait_for_selector("#support-results")
    results = " ".join(page.inner_text("#support-results").split())
    assert "Ann Lee" in results and "Anna Berg" in results and "Bob" not in results
    assert "Bounced: the mailbox does not exist" in results  # the last ticket, in words
    assert "Beta" not in page.inner_text("#content") and "beta.example" not in page.content()
    overflow = screenshot(page, "support-search")
    assert overflow == {1440: 0, 390: 0}, overflow

    # The guest's whole email: straight to their page.
    page.goto("/admin/guests/attendee/support/")  # (the screenshot's reset; not a click)
    page.fill("#support-q", "Bounce-Ann.Lee@example.com")
    clicks.click("#support-search button[type=submit]")
    page.wait_for_selector("#guest-page")
    assert "Ann Lee" in page.inner_text("#guest-summary")
    history = _history(page)
    assert "Sandbox rehearsal" in history
    assert re.search(r"Bounced: the mailbox does not exist .*Sent to the mail provider .*Queued",
                     history), history
    assert "We can't send to this address: it bounced on" in page.inner_text("#guest-refusal")
    overflow = screenshot(page, "support-guest")
    assert overflow == {1440: 0, 390: 0}, overflow

    # The typo fixed, and the ticket resent to the right address.
    page.fill("#fix-email-address", "ann.lee@example.com")
    clicks.click("#fix-email button[type=submit]")
    page.wait_for_selector("#guest-page")
    said = page.inner_text("body")
    assert "Email corrected: bounce-ann.lee@example.com → ann.lee@example.com." in said
    assert "Ticket sent to ann.lee@example.com as a sandbox rehearsal" in said
    page.reload()  # the sandbox's outcome, a moment later
    history = _history(page)
    assert history.index("“Ticket” to ann.lee@example.com") < history.index(
        "“Ticket” to bounce-ann.lee@example.com")  # newest first
    newest = history.split("“Ticket” to bounce-ann.lee@example.com")[0]
    assert "Opened" in newest and "Bounced" not in newest
    assert "guest-refusal" not in page.content()
    assert Attendee.objects.get(correlation_id="order-1001",
                                account__name="Acme Events").email == "ann.lee@example.com"
    screenshot(page, "support-guest-resent")

    assert clicks.count == 4  # log in, Find a guest, Find, Save and resend
