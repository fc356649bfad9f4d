"""Issue #18's routines in a real browser, as staff would do them: each starts from the admin
home and clicks only what a user sees (no typed URLs), counts the clicks (asserted, so a
regression shows) and saves a screenshot of each main page at 1440 and 390 px under
var/screenshots/ (tests/browser/screens.py).

The coordinator creates an event and a ticket template, imports 300 guests from a CSV, sends
them their tickets (a sandbox rehearsal: the sandbox bounces bounce-… addresses), watches the
progress and finds who bounced. The support agent answers "I lost my ticket": finds the guest
by the email she writes from, reads what happened, fixes the address and resends.

Clicks (a click, a select or a file pick; typing is free), before #18 on the stock admin
(commit ff91856) and now: coordinator 24 → 17; support 17 as a staff user (a support user
could not fix the address at all) → 5, on a phone too.
"""

import re
import uuid

import pytest

from accounts.models import Membership
from accounts.services import account_create, membership_add
from guests.services import attendee_create, event_create
from templates.services import template_create
from tests.browser.conftest import PASSWORD, Clicks
from tests.browser.screens import assert_fits, screenshot

pytestmark = pytest.mark.browser

GUESTS = 300
BOUNCING = 6  # bounce-…@example.com: the sandbox answers "550 5.1.1 No such user"


def _csv() -> bytes:
    """The coordinator's guest list: no ids (Herald makes them), an order reference."""
    rows = [f"Guest{i},Smith,guest{i}@example.com,order-{i}" for i in range(GUESTS - BOUNCING)]
    rows += [f"Bo{i},Bounce,bounce-{i}@example.com,order-b{i}" for i in range(BOUNCING)]
    return ("firstName,lastName,email,correlationId\n" + "\n".join(rows) + "\n").encode()


def _visible(locator):
    """The one a user sees of a link shown in two places (a page and the sidebar)."""
    return locator.filter(visible=True).first


def _unchosen(page, select: str) -> bool:
    """Whether the form shows this select without a choice (a one-account user's account is
    chosen for them, or not asked)."""
    field = page.locator(select)
    return bool(field.count()) and field.is_visible() and not field.input_value()


def _log_in(page, clicks: Clicks, username: str) -> None:
    clicks.step("log in")
    page.goto("/admin/")  # the one typed URL: it asks for the login
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    clicks.click("[type=submit]")
    page.wait_for_url("**/admin/")


def _sidebar(page, clicks: Clicks, name: str) -> None:
    """A link of the sidebar's navigation (on a phone, behind its menu button)."""
    link = page.locator("#nav-sidebar a").filter(has_text=re.compile(rf"(^|\s){name}\s*$")).first
    clicks.click(link)


def test_coordinator_runs_an_event_from_the_admin_home(page):
    account = account_create(name="Acme Events").account
    membership_add(account=account, username="cora", role=Membership.Role.STAFF,
                   password=PASSWORD)
    page.set_viewport_size({"width": 1440, "height": 900})
    clicks = Clicks(page)
    overflows = {}

    def look(name: str) -> None:
        overflows[name] = screenshot(page, f"routine-coordinator-{name}")

    _log_in(page, clicks, "cora")
    look("home")

    clicks.step("create an event")
    clicks.click(page.get_by_role("link", name="New event"))
    if _unchosen(page, "#id_account"):
        clicks.select("#id_account", label="Acme Events")
    page.fill("#id_name", "Spring Gala")
    page.fill("#id_venue", "Main Hall")
    page.fill("#id_starts_at_0", "2027-04-17")
    page.fill("#id_starts_at_1", "19:00:00")
    clicks.click('[name="_save"]')
    page.wait_for_load_state()
    look("event-saved")

    clicks.step("create a ticket template")
    _sidebar(page, clicks, "Home")
    clicks.click(page.get_by_role("link", name="New template"))
    page.fill("#id_name", "Ticket")
    if _unchosen(page, "#id_account"):
        clicks.select("#id_account", label="Acme Events")
    page.fill("#id_subject", "Your ticket for {{ event.name }}, {{ firstName }}")
    page.fill("#id_text_body", "Hi {{ firstName }}, see you at {{ event.name }} on "
                               "{{ event.startsAt|date }}.")
    clicks.click('[name="_save"]')
    page.wait_for_load_state()
    look("template-saved")

    clicks.step("import 300 guests")
    _sidebar(page, clicks, "Events")
    look("events")
    clicks.click(page.locator("#result_list").get_by_role("link", name="Spring Gala"))
    look("event")
    clicks.click(page.get_by_role("link", name="Import guests").first)
    clicks.pick('input[type="file"]', [
        {"name": "guests.csv", "mimeType": "text/csv", "buffer": _csv()}])
    clicks.click('[value="Upload and check"]')
    look("import-preview")
    clicks.click(f'[value="Confirm: import {GUESTS} valid rows"]')
    page.wait_for_selector("#next", timeout=30_000)
    assert re.search(rf"Imported:\s*{GUESTS}", page.inner_text("#counts"))
    look("import-done")

    clicks.step("send tickets to everyone")
    clicks.click(page.get_by_role("link", name="Next: send tickets"))
    look("send")
    if page.locator("#id_template option:checked").inner_text().strip() != "Ticket":
        clicks.select("#id_template", label="Ticket")
    clicks.check('input[name="mode"][value="test"]')  # the sandbox rehearsal
    clicks.click('[name="_preview"]')
    assert re.search(rf"To send now:\s*{GUESTS}", page.inner_text("#counts"))
    look("send-preview")
    clicks.click(f'[value="Confirm: send to {GUESTS} guests"]', timeout=60_000)

    clicks.step("watch progress")
    page.wait_for_selector(".herald-progress[data-finished]", timeout=60_000)
    statuses = page.locator("#statuses")
    bounced = statuses.locator("a", has_text=re.compile("^Bounced"))
    bounced.wait_for()
    look("progress")

    clicks.step("find who bounced")
    clicks.click(bounced)
    page.wait_for_load_state()
    look("bounced")
    listing = page.inner_text("#result_list")
    assert listing.count("bounce-") == BOUNCING, listing
    assert "guest1@" not in listing

    print(f"\ncoordinator clicks:\n{clicks.report()}")
    assert clicks.steps == {"log in": 1, "create an event": 2, "create a ticket template": 3,
                            "import 300 guests": 6, "send tickets to everyone": 4,
                            "watch progress": 0, "find who bounced": 1}

    # Not part of the routine (no clicks counted): the event's other tabs, for their pictures.
    for tab in ("Sends", "Dashboard", "Guests"):
        link = page.locator("#tabs-items a", has_text=re.compile(rf"^\s*{tab}\s*$"))
        if link.count():
            link.first.click()
            page.wait_for_load_state()
            look(f"event-{tab.lower()}")
    # Every page fits a laptop and a phone: no sideways scrolling of the page.
    assert not {name: widths for name, widths in overflows.items() if any(widths.values())}


def _support_world() -> None:
    """An event whose guests got their ticket in a sandbox rehearsal; Lina's address on file
    has a typo the sandbox bounces (bounce-lina@…), she writes from lina@example.com."""
    account = account_create(name="Acme Events").account
    membership_add(account=account, username="sam", role=Membership.Role.SUPPORT,
                   password=PASSWORD)
    event = event_create(account=account, name="Spring Gala")
    ticket = template_create(account=account, name="Ticket", subject="Your ticket, {{ firstName }}",
                             text_body="Hi {{ firstName }}, see you at {{ event.name }}.")
    for first, email in (("Ann", "ann@example.com"), ("Lina", "bounce-lina@example.com"),
                         ("Carl", "carl@example.com")):
        attendee_create(account=account, mode="test", id=uuid.uuid4(), event_id=event.pk,
                        email=email, first_name=first, last_name="Guest",
                        comms_template_id=ticket.pk)  # sends the ticket


@pytest.mark.parametrize("width", [1440, 390])
def test_support_agent_answers_i_lost_my_ticket(page, width):
    """At 1440 px the pages are screenshotted (at both widths); on the phone each page must
    fit its width."""
    _support_world()
    page.set_viewport_size({"width": width, "height": 900 if width > 400 else 844})
    clicks = Clicks(page)

    def look(name: str) -> None:
        if width > 400:
            screenshot(page, f"routine-support-{name}")
        else:
            assert_fits(page)

    _log_in(page, clicks, "sam")
    look("home")

    clicks.step("find the guest by email")
    clicks.click(_visible(page.get_by_role("link", name="Find a guest")))
    page.fill('input[name="q"]', "lina@example.com")
    clicks.click(page.get_by_role("button", name="Find"))
    look("search")
    clicks.click(page.get_by_role("link", name="Lina Guest"))

    clicks.step("read what happened")  # the guest's page tells it: no click
    history = " ".join(page.inner_text("#content").split())
    assert "Bounced: the mailbox does not exist" in history
    assert "550 5.1.1 No such user" in history
    look("guest")

    clicks.step("fix the address and resend")
    page.fill('input[name="email"]', "lina@example.com")
    clicks.click(page.get_by_role("button", name="Save and resend"))
    page.wait_for_load_state()
    done = " ".join(page.inner_text("#content").split())
    assert "lina@example.com" in done
    look("guest-resent")

    print(f"\nsupport clicks at {width} px:\n{clicks.report()}")
    assert clicks.steps == {"log in": 1, "find the guest by email": 3, "read what happened": 0,
                            "fix the address and resend": 1}
