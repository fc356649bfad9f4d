"""The event-day routine in a real browser: a staff user imports guests from a CSV, sends
them their ticket, watches the outcomes, and resends a lost ticket; another account's data
never shows."""

import re
import uuid

import pytest
from django.urls import reverse

from accounts.models import Membership
from accounts.services import account_create, membership_add
from guests.services import attendee_create, event_create
from templates.services import template_create
from tests.browser.conftest import PASSWORD, login

pytestmark = pytest.mark.browser

GUESTS = 19  # valid rows; the file also has one bad row


def _staff(account, username: str) -> None:
    membership_add(account=account, username=username, role=Membership.Role.STAFF,
                   password=PASSWORD)


def _ticket(account):
    return template_create(account=account, name="Ticket", subject="Your ticket, {{ firstName }}",
                           text_body="Hi {{ firstName }}, see you at {{ event.name }}.")


def _csv() -> bytes:
    rows = [f"{uuid.uuid4()},Guest{i},Smith,guest{i}@example.com,order-{i}" for i in range(17)]
    rows += [f"{uuid.uuid4()},Lost,Ticket,lost@example.com,order-lost",
             f"{uuid.uuid4()},Bea,Bounce,bounce-bea@example.com,order-bounce",
             f"{uuid.uuid4()},Bad,Row,not-an-email,order-bad"]
    return ("id,firstName,lastName,email,correlationId\n" + "\n".join(rows) + "\n").encode()


def _filter(page, choice: str) -> None:
    """Open unfold's filter panel and pick a choice."""
    page.locator("a").filter(has_text=re.compile(r"^\s*Filters")).click()
    page.click(f'#changelist-filter a:text-is("{choice}")')
    page.wait_for_load_state()


def _run_action(page, row_value: str, action: str) -> None:
    page.check(f'input[name="_selected_action"][value="{row_value}"]')
    page.select_option('select[name="action"]', action)
    page.click('button[name="index"]')
    page.wait_for_load_state()


def test_staff_user_runs_the_event_day_routine(page, tmp_path):
    account = account_create(name="Acme Events").account
    _staff(account, "stella")
    event = event_create(account=account, name="Spring Gala")
    ticket = _ticket(account)
    # A second event with one guest: Django shows the event filter once there is a choice.
    other = event_create(account=account, name="Autumn Fair")
    attendee_create(account=account, mode="test", id=uuid.uuid4(), event_id=other.pk,
                    email="autumn@example.com", comms_template_id=ticket.pk)

    login(page, "stella")
    page.goto(reverse("admin:guests_event_change", args=[event.pk]))
    page.get_by_role("link", name="Import guests").first.click()
    page.set_input_files('input[name="file"]', files=[
        {"name": "guests.csv", "mimeType": "text/csv", "buffer": _csv()}])
    page.click('input[value="Upload and check"]')

    # The preview: the bad row named with its line, nothing imported yet.
    page.wait_for_selector("#row-errors")
    errors = page.locator("#row-errors tr:has-text('not-an-email') td")
    assert errors.first.inner_text() == "21"  # the header is line 1
    assert "is not a valid email address" in errors.last.inner_text()
    assert "Bea" in page.inner_text("#preview")
    page.click(f'input[value="Confirm: import {GUESTS} valid rows"]')
    page.wait_for_selector(f"text=Imported: {GUESTS}")  # the progress bar finished
    assert "status done" in " ".join(page.inner_text("#content-main").split())

    page.goto(reverse("admin:guests_attendee_changelist") + f"?event__id__exact={event.pk}")
    listing = page.inner_text("#result_list")
    assert "lost@example.com" in listing and "bounce-bea@example.com" in listing
    assert "not-an-email" not in listing
    assert page.locator("#result_list tbody tr").count() == GUESTS

    # Bulk send the ticket (test mode: the sandbox provider) to every guest.
    page.goto(reverse("admin:guests_event_change", args=[event.pk]))
    page.get_by_role("link", name="Send tickets").first.click()
    page.select_option("#id_template", label="Ticket")
    page.check('input[name="audience"][value="all"]')
    page.check('input[name="mode"][value="test"]')
    page.click('[name="_preview"]')
    assert re.search(rf"To send now:\s*{GUESTS}", page.inner_text("#counts"))
    page.click(f'input[value="Confirm: send to {GUESTS} guests"]')
    page.wait_for_selector(".herald-progress[data-finished]")  # the progress bars are full
    for bar in page.locator(".herald-progress progress").all():
        assert bar.get_attribute("value") == bar.get_attribute("max") == str(GUESTS)
    statuses = page.inner_text("#statuses").lower()
    assert "bounced" in statuses and "opened" in statuses

    # The deliveries of the event, filtered from the filter panel (the sandbox's: a test-mode
    # send).
    page.goto(reverse("admin:comms_delivery_changelist"))
    _filter(page, "Sandbox (test key)")
    _filter(page, "Spring Gala")
    page.wait_for_url(re.compile(r"attendee__event"))
    assert page.locator("#result_list tbody tr").count() == GUESTS
    rows = page.inner_text("#result_list").lower()
    assert "bounced" in rows and "opened" in rows and "autumn@" not in rows

    # The bounced delivery and its history, in words.
    page.click('#result_list tr:has-text("bounce-bea@example.com") a >> nth=0')
    timeline = page.inner_text("#content-main")
    assert "Sent to the mail provider" in timeline
    assert "Bounced: the mailbox does not exist" in timeline

    # Lost@ says the ticket never arrived: resend it from the attendee list.
    page.goto(reverse("admin:guests_attendee_changelist") + "?q=lost%40example.com")
    lost_id = page.get_attribute('#result_list input[name="_selected_action"]', "value")
    _run_action(page, lost_id, "resend_attendees")
    success = page.locator("li", has_text="Resent to lost@example.com")
    assert "new delivery queued" in success.inner_text()
    success.get_by_role("link", name="see it").click()  # the new delivery's page
    assert "lost@example.com" in page.inner_text("#content-main")
    page.goto(reverse("admin:comms_delivery_changelist") + "?mode=test&q=lost%40example.com")
    assert page.locator("#result_list tbody tr").count() == 2

    # Resending the bounced ticket is refused by the 422 rule, naming the failure.
    page.goto(reverse("admin:comms_delivery_changelist") + "?mode=test&q=bounce-bea%40example.com")
    bounced_id = page.get_attribute('#result_list input[name="_selected_action"]', "value")
    _run_action(page, bounced_id, "resend_deliveries")
    error = page.inner_text(".errornote")
    assert "Not resent to bounce-bea@example.com" in error
    assert "550 5.1.1 No such user" in error
    assert page.locator("#result_list tbody tr").count() == 1
    page.screenshot(path=str(tmp_path / "event-day.png"), full_page=True)


SCOPED_PAGES = {  # page: what of Alpha's it shows
    "admin:index": "Alpha Gala", "admin:guests_event_changelist": "Alpha Gala",
    "admin:guests_attendee_changelist": "ann@example.com",
    "admin:comms_delivery_changelist": "ann@example.com",
    "admin:comms_dashboard_changelist": "Event: Alpha Gala",
}


def _without_filters(page) -> str:
    """The page's content, less the changelist filter sidebar (checked on its own below)."""
    return page.evaluate("""() => {
        const main = document.querySelector("#content").cloneNode(true);
        main.querySelectorAll("#changelist-filter").forEach((nav) => nav.remove());
        return main.textContent;
    }""")


def _beta_shown(text: str) -> bool:
    return "Beta" in text or "bob-beta" in text


def test_staff_of_one_account_never_sees_another_accounts_event(page):
    alpha = account_create(name="Alpha Org").account
    beta = account_create(name="Beta Org").account
    _staff(alpha, "alice")
    for account, name, email in ((alpha, "Alpha Gala", "ann@example.com"),
                                 (beta, "Beta Gala", "bob-beta@example.com")):
        event = event_create(account=account, name=name)
        attendee_create(account=account, mode="live", id=uuid.uuid4(), event_id=event.pk,
                        email=email, first_name=name.split()[0],
                        comms_template_id=_ticket(account).pk)
    beta_event = event

    login(page, "alice")
    # The rows and charts: Alpha's only.
    for url, alphas in SCOPED_PAGES.items():
        page.goto(reverse(url))
        main = _without_filters(page)
        assert alphas in main, url
        assert not _beta_shown(main), url
    page.goto(reverse("admin:guests_attendee_changelist") + "?q=bob")
    assert not _beta_shown(_without_filters(page))

    # Beta's event by its URL: Django's "doesn't exist" (as for a deleted event, like
    # tests/security/test_admin_tenancy.py accepts), its tools a 404 page; its name nowhere.
    response = page.goto(reverse("admin:guests_event_change", args=[beta_event.pk]))
    assert response.status == 404 or (page.url.endswith("/admin/") and page.get_by_text(
        "Perhaps it was deleted").is_visible())
    assert not _beta_shown(_without_filters(page))
    for url in ("admin:guests_event_import_upload", "admin:guests_event_send_form"):
        response = page.goto(reverse(url, args=[beta_event.pk]))
        assert response.status == 404, (url, response.status, page.url)
        assert not _beta_shown(page.content()), url

    # Every part of every page, the filter sidebars included.
    leaks = []
    for url in SCOPED_PAGES:
        page.goto(reverse(url))
        if _beta_shown(page.content()):
            leaks.append(f"{page.url}: {page.inner_text('#changelist-filter')!r}"
                         if page.locator("#changelist-filter").count() else page.url)
    assert not leaks, leaks
