"""The event form reads and shows its times in the event's own time zone (#18 finding 5): a
coordinator typing 19:00 for a Paris event means 19:00 in Paris, and the list says so."""

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.urls import reverse

from guests.models import Event
from guests.services import event_create
from tests.conftest import member_client


@pytest.fixture
def staff(keys) -> Client:
    return member_client(keys.account, "stella")


def _form(keys, **fields) -> dict:
    return {"account": keys.account.pk, "name": "Gala", "venue": "Opéra",
            "time_zone": "Europe/Paris", "starts_at_0": "2027-04-17", "starts_at_1": "19:00",
            "ends_at_0": "2027-04-17", "ends_at_1": "23:00", **fields}


def test_times_typed_on_the_form_are_the_events_own(keys, staff):
    response = staff.post(reverse("admin:guests_event_add"), _form(keys))
    assert response.status_code == 302, response.content.decode()[:3000]
    event = Event.objects.get()
    paris = ZoneInfo("Europe/Paris")
    assert event.starts_at == datetime(2027, 4, 17, 19, 0, tzinfo=paris)
    assert event.ends_at == datetime(2027, 4, 17, 23, 0, tzinfo=paris)
    page = staff.get(reverse("admin:guests_event_change", args=[event.pk])).content.decode()
    start = re.search(r'<input[^>]*name="starts_at_1"[^>]*>', page).group(0)
    assert 'value="19:00' in start, start  # shown as typed, not as 17:00 UTC
    listing = staff.get(reverse("admin:guests_event_changelist")).content.decode()
    assert "Sat 17 Apr 2027, 19:00 (Europe/Paris)" in listing


def test_a_change_of_zone_reads_the_times_in_the_new_zone(keys, staff):
    event = event_create(account=keys.account, name="Gala")
    response = staff.post(reverse("admin:guests_event_change", args=[event.pk]),
                          _form(keys, time_zone="America/New_York"))
    assert response.status_code == 302, response.content.decode()[:3000]
    event.refresh_from_db()
    assert event.starts_at == datetime(2027, 4, 17, 19, 0, tzinfo=ZoneInfo("America/New_York"))


def test_an_unknown_zone_is_a_form_error_and_changes_nothing(keys, staff):
    response = staff.post(reverse("admin:guests_event_add"), _form(keys, time_zone="Mars/Base"))
    assert response.status_code == 200 and not Event.objects.exists()


def test_the_guest_list_of_an_event_is_its_guests_tab(keys, staff, other_api):
    event = event_create(account=keys.account, name="Gala")
    page = staff.get(reverse("admin:guests_attendee_changelist"),
                     {"event__id__exact": str(event.pk)})
    assert page.context["title"] == "Guests of Gala"
    tabs = [item["title"] for item in page.context["tab_list"][0]["items"]]
    assert tabs == ["Overview", "Guests", "Sends", "Deliveries", "Dashboard", "Door"]
    rival = other_api.post("/checkin/v1/api/event", {"name": "Rival Gala"}).json()["id"]
    foreign = staff.get(reverse("admin:guests_attendee_changelist"), {"event__id__exact": rival})
    assert "Rival Gala" not in foreign.content.decode()


def test_a_one_account_member_finds_the_account_chosen_and_a_new_event_opens_its_page(
        keys, staff):
    form = staff.get(reverse("admin:guests_event_add")).context["adminform"].form
    assert form.initial["account"] == keys.account.pk
    data = _form(keys)
    response = staff.post(reverse("admin:guests_event_add"), data)
    event = Event.objects.get()
    assert response["Location"] == reverse("admin:guests_event_change", args=[event.pk])
