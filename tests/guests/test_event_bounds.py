"""Event times at the calendar's edge (security review, #19): the API and the admin's form
keep an event's start and end between 2000 and ten years ahead (a 400 / a form error, nothing
saved), and the times computed from an event stored before that rule (check-in closing, a
reminder's time) mean "never closes" / "no reminder" instead of a 500."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from comms.models import Delivery
from guests.models import Attendee, Event, ReminderRule
from guests.services import event_create
from guests.tokens import ticket_token
from tests.conftest import guest, member_client

EVENT = "/checkin/v1/api/event"
FAR = datetime(9999, 12, 31, 12, tzinfo=UTC)
DAWN = datetime(1, 1, 1, 6, tzinfo=UTC)


def _reminder_template(api) -> str:
    response = api.post("/comms/v1/api/comms/template", {
        "name": "Reminder", "subject": "Soon: {{ event.name }}", "textBody": "Hi"})
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _rule(api, event_id: str, template_id: str, offset: int):
    return api.post(f"{EVENT}/{event_id}/reminders",
                    {"templateId": template_id, "offsetMinutes": offset})


def _reminders() -> int:
    return Delivery.objects.filter(refs__has_key="reminderRuleId").count()


# --- intake: the API --------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("startsAt", "9999-12-31T12:00:00Z"),
    ("startsAt", "0001-01-01T06:00:00Z"),
    ("startsAt", "1999-12-31T23:59:59Z"),
    ("endsAt", "9999-12-31T12:00:00Z"),
])
def test_the_api_refuses_an_event_time_outside_the_range(api, field, value):
    body = {"name": "Far", "startsAt": "2027-04-17T17:00:00Z", field: value}

    response = api.post(EVENT, body)

    assert response.status_code == 400, response.content
    assert response.json()["error"] == "validation_error"
    assert response.json()["fields"] == {
        field: "Must be between 2000-01-01 and ten years from now."}
    assert not Event.objects.exists()


def test_the_api_refuses_more_than_ten_years_ahead_and_takes_the_range_itself(api):
    now = timezone.now()
    too_far = (now + timedelta(days=3660)).isoformat()
    assert api.post(EVENT, {"name": "Later", "startsAt": too_far}).status_code == 400

    for start in ("2000-01-01T00:00:00Z", (now + timedelta(days=3640)).isoformat()):
        response = api.post(EVENT, {"name": "Fine", "startsAt": start})
        assert response.status_code == 201, response.content
    assert Event.objects.count() == 2


# --- intake: the admin's event form -----------------------------------------------------------

def _admin_form(keys, day: str, **fields) -> dict:
    return {"account": keys.account.pk, "name": "Far", "venue": "", "time_zone": "UTC",
            "starts_at_0": day, "starts_at_1": "12:00", "ends_at_0": "", "ends_at_1": "",
            "reminders-TOTAL_FORMS": "0", "reminders-INITIAL_FORMS": "0", **fields}


def test_the_admin_form_refuses_an_event_time_outside_the_range(keys):
    staff = member_client(keys.account, "staff")
    add = reverse("admin:guests_event_add")

    for fields in ({}, {"starts_at_0": "2027-04-17", "ends_at_0": "9999-12-31",
                        "ends_at_1": "12:00"}):
        response = staff.post(add, _admin_form(keys, "9999-12-31", **fields))
        assert response.status_code == 200  # the form again, with its error
        assert "Must be between 2000-01-01 and ten years from now." in response.content.decode()
    assert not Event.objects.exists()

    assert staff.post(add, _admin_form(keys, "2027-04-17")).status_code == 302
    assert Event.objects.get().starts_at == datetime(2027, 4, 17, 12, tzinfo=UTC)


# --- rows stored before the rule --------------------------------------------------------------

def _stored(keys, starts_at: datetime) -> str:
    """An event as the API took it before its times were bounded (the service does not
    check them: its callers do)."""
    return str(event_create(account=keys.account, name="Far", starts_at=starts_at).id)


def test_a_ticket_of_an_event_at_the_calendars_end_checks_in(api, keys):
    event_id = _stored(keys, FAR)
    body = guest(event_id)
    assert api.post("/checkin/v1/api/guest", body).status_code == 200

    token = ticket_token(Attendee.objects.get(id=body["id"]))
    response = api.post("/checkin/v1/api/checkin", {"token": token})

    assert response.status_code == 200, response.content  # never closes
    assert Attendee.objects.get(id=body["id"]).checked_in_at is not None


@pytest.mark.parametrize("starts_at, offset", [(FAR, 1440), (DAWN, -1440)])
def test_reminders_of_an_event_at_the_calendars_edge_are_not_timed(api, keys, starts_at,
                                                                   offset):
    event_id = _stored(keys, starts_at)
    template_id = _reminder_template(api)
    first = guest(event_id)
    assert api.post("/checkin/v1/api/guest", first).status_code == 200

    # A rule added to the event with guests, then a guest added after it: no reminder.
    added = _rule(api, event_id, template_id, offset)
    assert added.status_code == 201, added.content
    later = api.post("/checkin/v1/api/guest", guest(event_id, email="bo@example.com"))
    assert later.status_code == 200, later.content
    assert _reminders() == 0
    assert ReminderRule.objects.filter(event_id=event_id).count() == 1
    assert Attendee.objects.filter(event_id=event_id).count() == 2


def test_the_admins_new_guest_of_such_an_event_is_saved_without_reminder(api, keys):
    event_id = _stored(keys, FAR)
    assert _rule(api, event_id, _reminder_template(api), 1440).status_code == 201
    staff = member_client(keys.account, "staff")

    response = staff.post(reverse("admin:guests_attendee_add"), {
        "account": keys.account.pk, "event": event_id, "id": str(uuid.uuid4()),
        "email": "cy@example.com", "first_name": "Cy", "last_name": "", "mode": "live"})

    assert response.status_code == 302, response.content.decode()[-2000:]
    assert Attendee.objects.filter(email="cy@example.com").exists()
    assert _reminders() == 0


def test_the_event_list_shows_a_start_at_the_calendars_end_east_of_utc(keys):
    event_id = _stored(keys, datetime(9999, 12, 31, 20, tzinfo=UTC))
    Event.objects.filter(id=event_id).update(time_zone="Asia/Tokyo")  # year 10000 in Tokyo
    staff = member_client(keys.account, "staff")

    response = staff.get(reverse("admin:guests_event_changelist"))

    assert response.status_code == 200
    assert "Fri 31 Dec 9999, 20:00 (UTC)" in response.content.decode()
