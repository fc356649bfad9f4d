"""The admin's front door (#18 finding 1): staff land on their events, today's live sends and what
needs attention; the sidebar follows their work and offers only what their role opens; the
engine's internals are for superusers; no "View site" leading to a JSON 404."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from accounts.models import Membership
from accounts.services import membership_add
from contacts.models import Contact
from tests.conftest import guest, member_client


@pytest.fixture
def live_sandbox(settings):
    """Live sends through the sandbox's lifecycle: bounce@… bounces, the others are opened."""
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0
    settings.HERALD_EMAIL_PROVIDER = "sandbox"


def _member(keys, role: str, username: str) -> Client:
    return member_client(keys.account, username, role)


def _sidebar(response) -> dict[str, list[str]]:
    return {group["title"]: [item["title"] for item in group["items"] if item["has_permission"]]
            for group in response.context["sidebar_navigation"]}


def test_staff_land_on_their_work_and_never_on_internals(keys):
    home = _member(keys, Membership.Role.STAFF, "stella").get(reverse("admin:index"))
    assert home.status_code == 200
    sidebar = _sidebar(home)
    assert {"Events", "Guests", "Sends", "Imports"} <= set(sidebar["Events"])
    assert "Find a guest" in sidebar["Support"]
    assert {"Templates", "Sender domains", "Webhooks"} <= set(sidebar["Settings"])
    assert sidebar["Internals"] == []  # outbox, callback batches, periodic tasks, users
    page = home.content.decode()
    for internal in ("Periodic tasks", "Callback batches", "Clocked", "Solar events", "Outbox"):
        assert internal not in page
    assert "View site" not in page and "Site administration" not in page
    assert "New event" in page and "Find a guest" in page


def test_superusers_also_see_the_internals(db):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(admin)
    internals = _sidebar(client.get(reverse("admin:index")))["Internals"]
    assert {"Outbox", "Callback batches", "Periodic tasks", "Users"} <= set(internals)


def test_support_is_offered_what_support_does(keys):
    home = _member(keys, Membership.Role.SUPPORT, "sam").get(reverse("admin:index"))
    page = home.content.decode()
    assert "Find a guest" in page
    assert "New event" not in page and "New template" not in page  # support may not add
    # Every sidebar link the role is offered opens (no 403 behind a link).
    client = _member(keys, Membership.Role.SUPPORT, "sam2")
    for group in home.context["sidebar_navigation"]:
        for item in group["items"]:
            if item["has_permission"]:
                assert client.get(item["link"]).status_code == 200, item["title"]


def test_home_counts_live_sends_only_and_names_the_bounced_guests(
        api, sandbox_api, live_sandbox, event_id, template_id, keys):
    api.post("/checkin/v1/api/guest", guest(event_id, template_id, email="ann@example.com"))
    api.post("/checkin/v1/api/guest", guest(event_id, template_id, email="bounce@example.com"))
    for n in range(3):  # rehearsals: never in live figures
        sandbox_api.post("/checkin/v1/api/guest",
                         guest(event_id, template_id, email=f"bounce-{n}@example.com"))
    home = _member(keys, Membership.Role.STAFF, "stella").get(reverse("admin:index"))
    today = home.context["today"]
    assert (today["sent"], today["delivered"], today["failed"], today["waiting"]) == (1, 1, 1, 0)
    attention = [item["text"] for item in home.context["attention"]]
    assert "1 guest whose message bounced or failed in the last 7 days" in attention
    assert [row["event"].name for row in home.context["events"]] == ["Spring Gala"]


def test_home_shows_only_the_users_accounts(keys, other_api):
    other_api.post("/checkin/v1/api/event", {"id": "8e0b1b52-1a4c-4c1e-9d6f-0a8f2c1e7e11",
                                             "name": "Rival Gala"})
    page = _member(keys, Membership.Role.OWNER, "olive").get(reverse("admin:index"))
    assert "Rival Gala" not in page.content.decode()
    assert page.context["events"] == []


def test_login_without_next_lands_on_the_home_page(keys):
    membership_add(account=keys.account, username="stella", role=Membership.Role.STAFF,
                   password="pw-123456789")
    response = Client().post(reverse("admin:login"),
                             {"username": "stella", "password": "pw-123456789"})
    assert response.status_code == 302 and response["Location"] == reverse("admin:index")


def test_breadcrumbs_keep_an_objects_name_as_it_is(keys):
    contact = Contact.objects.create(account=keys.account, email="walkin2@example.com")
    client = _member(keys, Membership.Role.OWNER, "olive")
    page = client.get(reverse("admin:contacts_contact_change", args=[contact.pk])).content.decode()
    assert "walkin2@example.com" in page and "Walkin2@example.com" not in page


def test_support_is_not_offered_send_tickets_and_pages_are_titled_in_words(keys):
    from guests.services import event_create

    event_create(account=keys.account, name="Spring Gala")
    support = _member(keys, Membership.Role.SUPPORT, "sam")
    home = support.get(reverse("admin:index"))
    assert [row["send_url"] for row in home.context["events"]] == [None]
    assert "Send tickets" not in home.content.decode()
    staff = _member(keys, Membership.Role.STAFF, "stella")
    assert staff.get(reverse("admin:index")).context["events"][0]["send_url"]
    templates = staff.get(reverse("admin:templates_messagetemplate_changelist"))
    assert templates.context["title"] == "Message templates"
    event = staff.get(reverse("admin:guests_event_change",
                              args=[home.context["events"][0]["event"].pk]))
    assert event.context["title"] == "Spring Gala"


def test_admin_dates_read_as_elsewhere_in_herald():
    from datetime import datetime

    from django.utils.formats import date_format

    assert date_format(datetime(2026, 12, 6, 23, 43), "DATETIME_FORMAT") == "6 Dec 2026, 23:43"
