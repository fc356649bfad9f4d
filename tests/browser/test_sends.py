"""A coordinator sends tickets from the event's page and finds who bounced, in chromium: the
event's tabs, Send tickets (the count before sending), the progress reaching the send's exact
counts, "Bounced" showing exactly the bounced guests; the dashboard's figure of bounced guests
leads to the same guests. Screenshots of each page at 1440 and 390 px (var/screenshots/
sends-*.png), none scrolling sideways; the clicks from the admin's home are counted."""

import re
import uuid

import pytest
from django.urls import reverse

from accounts.models import Membership
from accounts.services import account_create, membership_add
from comms.models import Delivery
from guests import bulk
from guests.models import BulkSend
from guests.services import attendee_create, event_create
from templates.services import template_create
from tests.browser.conftest import PASSWORD, login
from tests.browser.screens import screenshot

pytestmark = pytest.mark.browser

OK, BOUNCING = 9, 3  # guests whose ticket is opened, guests whose address bounces
# Clicks from the admin's home to the list of the guests whose ticket bounced.
CLICKS = 6


class Clicks:
    """Counts what a user does: a click (or a choice in a select) is one; typing is none."""

    def __init__(self, page) -> None:
        self.page, self.count = page, 0

    def click(self, locator) -> None:
        self.count += 1
        locator.click()
        self.page.wait_for_load_state()


def _shot(page, name: str) -> None:
    assert screenshot(page, f"sends-{name}") == {1440: 0, 390: 0}, name


def _setup(settings):
    # Live tickets through the sandbox's lifecycle: bounce… addresses bounce, others are opened.
    settings.HERALD_EMAIL_PROVIDER = "sandbox"
    account = account_create(name="Acme Events").account
    membership_add(account=account, username="stella", role=Membership.Role.STAFF,
                   password=PASSWORD)
    event = event_create(account=account, name="Spring Gala")
    ticket = template_create(account=account, name="Ticket",
                             subject="Your ticket, {{ firstName }}",
                             text_body="Hi {{ firstName }}, see you at {{ event.name }}.")
    emails = [f"guest{i}@example.com" for i in range(OK)]
    emails += [f"bounce-{i}@example.com" for i in range(BOUNCING)]
    for i, email in enumerate(emails):
        attendee_create(account=account, mode="live", id=uuid.uuid4(), event_id=event.pk,
                        email=email, first_name=f"Guest{i}", last_name="Smith")
    return event, ticket


def test_coordinator_sends_tickets_and_finds_who_bounced(page, settings):
    event, ticket = _setup(settings)
    # A sandbox rehearsal of the same ticket first: it never counts in the live figures.
    rehearsal, _ = bulk.bulk_send_create(event=event, template_id=ticket.pk, audience="all",
                                         mode="test", token=uuid.uuid4(), user=None)
    bulk.bulk_send_run(job_id=rehearsal.pk)  # (already run by its on-commit task: a no-op)
    assert BulkSend.objects.get().queued == OK + BOUNCING
    login(page, "stella")
    clicks = Clicks(page)

    clicks.click(page.locator("#nav-sidebar a", has_text=re.compile(r"Events\s*$")).first)
    clicks.click(page.get_by_role("link", name="Spring Gala"))
    tabs = page.locator("#tabs-items a")
    assert [t.strip() for t in tabs.all_inner_texts()] == [
        "Overview", "Guests", "Sends", "Deliveries", "Dashboard", "Door"]
    _shot(page, "event")

    clicks.click(page.get_by_role("link", name="Send tickets").first)
    # The account's only template, all guests, for real: the defaults.
    assert page.locator("#id_template option:checked").inner_text() == "Ticket"
    _shot(page, "form")
    clicks.click(page.locator('[name="_preview"]'))
    guests = OK + BOUNCING
    assert re.search(rf"To send now:\s*{guests}", page.inner_text("#counts"))
    assert not Delivery.objects.filter(mode="live").exists()  # counted, nothing sent yet
    _shot(page, "confirm")
    clicks.click(page.locator(f'input[value="Confirm: send to {guests} guests"]'))

    # The progress reaches the send's exact counts (the rehearsal's deliveries are not its).
    page.wait_for_selector("#statuses a:has-text('Bounced')")
    page.wait_for_function("() => document.querySelector('[data-state]').textContent === 'Done'")
    rows = dict(line.rsplit("\t", 1) for line in
                page.inner_text("#statuses tbody").strip().splitlines())
    assert rows == {"Opened": str(OK), "Bounced": str(BOUNCING)}
    for bar in page.locator(".herald-progress progress").all():
        assert bar.get_attribute("value") == bar.get_attribute("max") == str(guests)
    _shot(page, "progress")

    clicks.click(page.locator("#statuses a", has_text="Bounced"))
    listed = page.locator("#result_list tbody tr")
    assert listed.count() == BOUNCING
    text = page.inner_text("#result_list")
    assert sorted(re.findall(r"bounce-\d@example\.com", text)) == [
        f"bounce-{i}@example.com" for i in range(BOUNCING)]
    assert "guest0@" not in text
    _shot(page, "bounced")
    assert clicks.count == CLICKS

    # The other tabs; the dashboard's "Bounced or failed" leads to the same guests.
    for name in ("Sends", "Deliveries", "Guests", "Dashboard"):
        page.locator("#tabs-items a", has_text=name).click()
        page.wait_for_load_state()
        _shot(page, f"tab-{name.lower()}")
        if name == "Guests":  # the guest list has no event tabs: back to the event's page
            page.go_back()
    cards = {c.get_attribute("data-card"): c.inner_text()
             for c in page.locator("[data-card]").all()}
    assert cards["Guests"].split()[-1] == str(guests)  # live guests: the rehearsal is not
    assert cards["Opened"].split()[-1] == str(OK)
    assert cards["Bounced or failed"].split()[-1] == str(BOUNCING)
    page.locator('[data-card="Bounced or failed"] a').first.click()
    page.wait_for_load_state()
    assert "last_status=bounced" in page.url
    assert sorted(re.findall(r"bounce-\d@example\.com", page.inner_text("#result_list"))) == [
        f"bounce-{i}@example.com" for i in range(BOUNCING)]

    # The event list counts guests, not deliveries (a rehearsal and a live send each).
    page.goto(reverse("admin:guests_event_changelist"))
    row = page.locator("#result_list tbody tr", has_text="Spring Gala").inner_text()
    # Guests, sent, delivered, opened, bounced or failed: each guest once per column.
    assert re.findall(r"\d+", row) == [str(guests), str(guests), str(OK), str(OK),
                                        str(BOUNCING)]
    _shot(page, "list")
