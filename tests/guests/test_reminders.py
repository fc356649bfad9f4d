"""Event reminders (#19 part 2): rules over REST, one scheduled delivery per guest and rule,
moved with the event's start, out of quiet hours in the event's zone, a grace for late ones,
cancelled with the guest or the event."""

import uuid
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone

from comms.dispatch import delivery_dispatch
from comms.models import Delivery, DeliveryEvent, Status
from comms.scheduling import deliveries_release
from guests.models import Attendee, Event, ReminderRule
from tests.conftest import guest, member_client
from webhooks.models import Message
from webhooks.services import endpoint_create

PARIS = ZoneInfo("Europe/Paris")
REMINDER = {
    "name": "Reminder",
    "subject": "Tomorrow: {{ event.name }}, {{ event.startsAt }}",
    "textBody": "Hi {{ firstName }}, {{ event.name }} starts {{ event.startsAt }}.",
}


def minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def make_event(api, starts_at: datetime | None, zone: str = "Europe/Paris", **fields) -> str:
    body = {"name": "Spring Gala", "timeZone": zone, **fields}
    if starts_at is not None:
        body["startsAt"] = starts_at.isoformat()
    response = api.post("/checkin/v1/api/event", body)
    assert response.status_code == 201, response.content
    return response.json()["id"]


def make_template(api, **fields) -> str:
    response = api.post("/comms/v1/api/comms/template", {**REMINDER, **fields})
    assert response.status_code == 201, response.content
    return response.json()["id"]


def add_rule(api, event_id: str, template_id: str, offset: int):
    return api.post(f"/checkin/v1/api/event/{event_id}/reminders",
                    {"templateId": template_id, "offsetMinutes": offset})


def reminders_of(attendee_id: str) -> list[Delivery]:
    return list(Delivery.objects.filter(owner_id=attendee_id, refs__has_key="reminderRuleId"))


def move_in_admin(keys, event_id: str, starts_at: datetime, **fields) -> None:
    """The event's start changed on its admin page, typed in the event's zone."""
    event = Event.objects.get(id=event_id)
    local = starts_at.astimezone(ZoneInfo(event.time_zone))
    staff = member_client(keys.account, f"staff-{uuid.uuid4().hex[:6]}")
    data = {"account": keys.account.pk, "name": event.name, "venue": event.venue,
            "time_zone": event.time_zone, "starts_at_0": f"{local:%Y-%m-%d}",
            "starts_at_1": f"{local:%H:%M}", "ends_at_0": "", "ends_at_1": "", **fields}
    response = staff.post(reverse("admin:guests_event_change", args=[event_id]), data)
    assert response.status_code == 302, response.content.decode()[-3000:]


def words(moment: datetime) -> str:
    """How the render shows an event time: "Saturday 17 April 2027, 19:00"."""
    return f"{moment:%A} {moment.day} {moment:%B} {moment.year}, {moment:%H:%M}"


# --- the "done when" ------------------------------------------------------------------

def test_a_day_before_reminder_fires_at_the_right_minute_after_its_event_moved(
        api, keys, sendgrid, django_capture_on_commit_callbacks):
    start = minute(timezone.now() + timedelta(days=3)).astimezone(PARIS)
    event_id = make_event(api, start)
    template_id = make_template(api)
    assert add_rule(api, event_id, template_id, -1440).status_code == 201
    body = guest(event_id)
    assert api.post("/checkin/v1/api/guest", body).status_code == 200
    [reminder] = reminders_of(body["id"])
    assert reminder.status == Status.SCHEDULED
    assert reminder.next_attempt_at == start - timedelta(days=1)
    assert reminder.template_id == uuid.UUID(template_id)
    assert reminder.refs["attendeeId"] == body["id"] and reminder.refs["eventId"] == event_id

    new_start = start + timedelta(hours=5, minutes=17)
    move_in_admin(keys, event_id, new_start)
    reminder.refresh_from_db()
    new_time = new_start - timedelta(days=1)
    assert reminder.status == Status.SCHEDULED and reminder.next_attempt_at == new_time

    assert deliveries_release(now=new_time - timedelta(minutes=1)) == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert deliveries_release(now=new_time) == 1  # its kick runs the send (eager)
    delivery_dispatch(delivery_id=None)  # nothing left behind
    reminder.refresh_from_db()
    assert reminder.status == Status.SENT, reminder.failure_reason
    [sent] = sendgrid.messages
    assert sent.body["personalizations"][0]["to"][0]["email"] == "jane@example.com"
    subject = sent.body.get("subject") or sent.body["personalizations"][0].get("subject")
    assert subject == f"Tomorrow: Spring Gala, {words(new_start)}"
    assert words(start) not in str(sent.body)


# --- REST ---------------------------------------------------------------------------------------

def test_rules_are_listed_added_and_removed_over_rest(api, keys):
    event_id = make_event(api, timezone.now() + timedelta(days=10))
    template_id = make_template(api)
    created = add_rule(api, event_id, template_id, -120)
    assert created.status_code == 201, created.content
    rule = created.json()
    assert rule["eventId"] == event_id and rule["templateId"] == template_id
    assert rule["offsetMinutes"] == -120
    assert add_rule(api, event_id, template_id, -1440).status_code == 201
    listed = api.get(f"/checkin/v1/api/event/{event_id}/reminders").json()
    assert [r["offsetMinutes"] for r in listed["items"]] == [-1440, -120]
    again = add_rule(api, event_id, template_id, -120)
    assert again.status_code == 409 and again.json()["error"] == "reminder_exists"

    api.post("/checkin/v1/api/guest", body := guest(event_id))
    assert len(reminders_of(body["id"])) == 2
    with api.capture(execute=True):
        removed = api.client.delete(f"/checkin/v1/api/event/{event_id}/reminders/{rule['id']}")
    assert removed.status_code == 200, removed.content
    assert removed.json()["cancelled"] == 1
    statuses = {d.refs["reminderRuleId"]: d.status for d in reminders_of(body["id"])}
    assert statuses[rule["id"]] == Status.CANCELLED
    assert not ReminderRule.objects.filter(id=rule["id"]).exists()
    with api.capture(execute=True):
        gone = api.client.delete(f"/checkin/v1/api/event/{event_id}/reminders/{rule['id']}")
    assert gone.status_code == 404 and gone.json()["error"] == "reminder_not_found"


def test_a_rule_on_an_event_without_a_start_is_a_400_and_nothing_is_made(api):
    event_id = make_event(api, None)
    response = add_rule(api, event_id, make_template(api), -1440)
    assert response.status_code == 400
    assert response.json()["error"] == "event_has_no_start"
    assert "start" in response.json()["message"]
    assert not ReminderRule.objects.exists()


@pytest.mark.parametrize("body", [
    {"templateId": "x", "offsetMinutes": -60},
    {"offsetMinutes": -60},
    {"templateId": "00000000-0000-0000-0000-000000000000", "offsetMinutes": "-60"},
    {"templateId": "00000000-0000-0000-0000-000000000000", "offsetMinutes": 10**7},
    {"templateId": "00000000-0000-0000-0000-000000000000", "offsetMinutes": -60, "x": 1},
])
def test_bad_bodies_are_400s_in_the_check_in_shape(api, body):
    event_id = make_event(api, timezone.now() + timedelta(days=2))
    response = api.post(f"/checkin/v1/api/event/{event_id}/reminders", body)
    assert response.status_code == 400, response.content
    assert set(response.json()) >= {"error", "message"}
    assert not ReminderRule.objects.exists()


def test_another_accounts_event_or_template_is_a_404(api, other_api):
    start = timezone.now() + timedelta(days=2)
    mine, theirs = make_event(api, start), make_event(other_api, start)
    my_template, their_template = make_template(api), make_template(other_api)
    response = add_rule(api, theirs, my_template, -60)
    assert response.status_code == 404 and response.json()["error"] == "event_not_found"
    response = add_rule(api, mine, their_template, -60)
    assert response.status_code == 404 and response.json()["error"] == "template_not_found"
    assert api.get(f"/checkin/v1/api/event/{theirs}/reminders").status_code == 404
    rule = add_rule(other_api, theirs, their_template, -60).json()
    with api.capture(execute=True):
        assert api.client.delete(
            f"/checkin/v1/api/event/{mine}/reminders/{rule['id']}").status_code == 404
        assert api.client.delete(
            f"/checkin/v1/api/event/{theirs}/reminders/{rule['id']}").status_code == 404
    assert ReminderRule.objects.filter(id=rule["id"]).exists()


def test_a_test_key_reads_rules_but_cannot_change_them(api, sandbox_api):
    event_id = make_event(api, timezone.now() + timedelta(days=2))
    template_id = make_template(api)
    assert add_rule(api, event_id, template_id, -60).status_code == 201
    listed = sandbox_api.get(f"/checkin/v1/api/event/{event_id}/reminders").json()
    assert len(listed["items"]) == 1
    assert add_rule(sandbox_api, event_id, template_id, -30).status_code == 403


def test_a_new_rule_schedules_the_guests_the_event_has_each_in_its_mode(api, sandbox_api):
    event_id = make_event(api, timezone.now() + timedelta(days=2))
    live, rehearsal = guest(event_id), guest(event_id, email="t@example.com")
    api.post("/checkin/v1/api/guest", live)
    sandbox_api.post("/checkin/v1/api/guest", rehearsal)
    add_rule(api, event_id, make_template(api), -60)
    [one] = reminders_of(live["id"])
    [other] = reminders_of(rehearsal["id"])
    assert (one.mode, other.mode) == ("live", "test")
    assert one.status == other.status == Status.SCHEDULED


def test_a_reminder_is_not_the_guests_ticket(api, template_id):
    event_id = make_event(api, timezone.now() + timedelta(days=2))
    add_rule(api, event_id, make_template(api), -60)
    body = guest(event_id, template_id)
    ticket = api.post("/checkin/v1/api/guest", body).json()["attendeeInvitationId"]
    assert len(reminders_of(body["id"])) == 1
    again = api.post("/checkin/v1/api/guest", body).json()["attendeeInvitationId"]
    assert again == ticket
    assert api.get(f"/checkin/v1/api/guest/{body['id']}").json()["attendeeInvitationId"] == ticket
    without_ticket = guest(event_id)
    api.post("/checkin/v1/api/guest", without_ticket)
    assert len(reminders_of(without_ticket["id"])) == 1
    shown = api.get(f"/checkin/v1/api/guest/{without_ticket['id']}").json()
    assert shown["attendeeInvitationId"] is None


def test_a_rehearsal_guest_made_live_gets_live_reminders(api, sandbox_api):
    event_id = make_event(api, timezone.now() + timedelta(days=2))
    add_rule(api, event_id, make_template(api), -60)
    body = guest(event_id)
    sandbox_api.post("/checkin/v1/api/guest", body)
    assert [d.mode for d in reminders_of(body["id"])] == ["test"]
    assert api.post("/checkin/v1/api/guest", body).status_code == 200
    assert sorted(d.mode for d in reminders_of(body["id"])) == ["live", "test"]
    api.post("/checkin/v1/api/guest", body)  # a retry adds none
    assert len(reminders_of(body["id"])) == 2


# --- quiet hours ----------------------------------------------------------------------------

def quiet(keys, start: time, end: time) -> None:
    keys.account.quiet_hours_start, keys.account.quiet_hours_end = start, end
    keys.account.save()


def test_quiet_hours_across_midnight_move_a_reminder_to_their_end_in_the_events_zone(api, keys):
    quiet(keys, time(21, 0), time(8, 0))
    zone = ZoneInfo("America/New_York")
    day = (timezone.now() + timedelta(days=5)).astimezone(zone).date()
    start = datetime.combine(day, time(23, 30), tzinfo=zone)  # -24 h: 23:30 the day before
    event_id = make_event(api, start, zone="America/New_York")
    add_rule(api, event_id, make_template(api), -1440)
    api.post("/checkin/v1/api/guest", body := guest(event_id))
    [reminder] = reminders_of(body["id"])
    # Not 08:00 of the evening's day: the end of that night's quiet period, in New York.
    assert reminder.next_attempt_at == datetime.combine(day, time(8, 0), tzinfo=zone)


def test_quiet_hours_early_morning_part_and_outside_them(api, keys):
    quiet(keys, time(21, 0), time(8, 0))
    day = (timezone.now() + timedelta(days=5)).astimezone(PARIS).date()
    early = make_event(api, datetime.combine(day, time(9, 15), tzinfo=PARIS))
    noon = make_event(api, datetime.combine(day, time(12, 0), tzinfo=PARIS))
    template_id = make_template(api)
    for event_id in (early, noon):
        add_rule(api, event_id, template_id, -120)  # 07:15 (quiet) and 10:00
    api.post("/checkin/v1/api/guest", one := guest(early))
    api.post("/checkin/v1/api/guest", two := guest(noon))
    assert reminders_of(one["id"])[0].next_attempt_at == datetime.combine(
        day, time(8, 0), tzinfo=PARIS)
    assert reminders_of(two["id"])[0].next_attempt_at == datetime.combine(
        day, time(10, 0), tzinfo=PARIS)


def test_a_reminder_quiet_hours_would_push_past_the_start_is_not_sent(api, keys):
    quiet(keys, time(21, 0), time(8, 0))
    day = (timezone.now() + timedelta(days=5)).astimezone(PARIS).date()
    start = datetime.combine(day, time(7, 0), tzinfo=PARIS)  # -2 h: 05:00, quiet until 08:00
    event_id = make_event(api, start)
    template_id = make_template(api)
    add_rule(api, event_id, template_id, -120)
    add_rule(api, event_id, template_id, -1440)  # 07:00 the day before: 08:00, still before
    api.post("/checkin/v1/api/guest", body := guest(event_id))
    [reminder] = reminders_of(body["id"])
    assert reminder.next_attempt_at == datetime.combine(day - timedelta(days=1), time(8, 0),
                                                        tzinfo=PARIS)


def test_quiet_hours_are_read_in_each_events_zone_not_the_servers(api, keys):
    quiet(keys, time(21, 0), time(8, 0))
    tokyo = ZoneInfo("Asia/Tokyo")
    day = (timezone.now() + timedelta(days=5)).astimezone(tokyo).date()
    start = datetime.combine(day, time(10, 0), tzinfo=tokyo)  # -2 h: 08:00 Tokyo, allowed
    event_id = make_event(api, start, zone="Asia/Tokyo")  # 23:00 UTC: quiet in UTC
    add_rule(api, event_id, make_template(api), -120)
    api.post("/checkin/v1/api/guest", body := guest(event_id))
    assert reminders_of(body["id"])[0].next_attempt_at == start - timedelta(hours=2)


def test_changing_quiet_hours_moves_scheduled_reminders(api, keys):
    day = (timezone.now() + timedelta(days=5)).astimezone(PARIS).date()
    event_id = make_event(api, datetime.combine(day, time(9, 0), tzinfo=PARIS))
    add_rule(api, event_id, make_template(api), -120)
    api.post("/checkin/v1/api/guest", body := guest(event_id))
    owner = member_client(keys.account, "olivia", "owner")
    response = owner.post(reverse("admin:accounts_account_change", args=[keys.account.pk]), {
        "name": keys.account.name, "quiet_hours_start": "21:00", "quiet_hours_end": "08:00",
        **_account_inlines()})
    assert response.status_code == 302, response.context["errors"]
    assert reminders_of(body["id"])[0].next_attempt_at == datetime.combine(
        day, time(8, 0), tzinfo=PARIS)


def _account_inlines() -> dict:
    return {f"{prefix}-{name}": "0" for prefix in ("memberships", "api_keys")
            for name in ("TOTAL_FORMS", "INITIAL_FORMS")}


# --- grace ----------------------------------------------------------------------------------

def test_a_guest_added_just_after_a_reminders_time_gets_it_now(api, settings):
    settings.HERALD_REMINDER_GRACE_MINUTES = 30
    start = timezone.now() + timedelta(hours=2) - timedelta(minutes=10)
    event_id = make_event(api, start)
    add_rule(api, event_id, make_template(api), -120)  # was due 10 minutes ago
    api.post("/checkin/v1/api/guest", body := guest(event_id))
    [reminder] = reminders_of(body["id"])
    assert reminder.status == Status.SENT  # queued at once, sent by the (eager) task


def test_a_guest_added_long_after_a_reminders_time_never_gets_it(api, settings):
    settings.HERALD_REMINDER_GRACE_MINUTES = 30
    start = timezone.now() + timedelta(hours=2) - timedelta(minutes=31)
    event_id = make_event(api, start)
    template_id = make_template(api)
    add_rule(api, event_id, template_id, -120)  # was due 31 minutes ago
    add_rule(api, event_id, template_id, -60)  # due in 29 minutes
    api.post("/checkin/v1/api/guest", body := guest(event_id))
    [reminder] = reminders_of(body["id"])
    assert reminder.status == Status.SCHEDULED
    assert abs(reminder.next_attempt_at - (start - timedelta(hours=1))) < timedelta(seconds=1)


def test_an_event_moved_closer_cancels_reminders_now_too_late_and_sends_just_late_ones(
        api, keys, settings):
    settings.HERALD_REMINDER_GRACE_MINUTES = 30
    event_id = make_event(api, timezone.now() + timedelta(days=3))
    template_id = make_template(api)
    add_rule(api, event_id, template_id, -1440)
    add_rule(api, event_id, template_id, -180)
    api.post("/checkin/v1/api/guest", body := guest(event_id))
    new_start = minute(timezone.now()) + timedelta(hours=3, minutes=-5)
    move_in_admin(keys, event_id, new_start)
    by_offset = {ReminderRule.objects.get(id=d.refs["reminderRuleId"]).offset_minutes: d
                 for d in reminders_of(body["id"])}
    day_before, three_hours = by_offset[-1440], by_offset[-180]
    assert day_before.status == Status.CANCELLED
    assert "passed" in day_before.failure_reason
    assert three_hours.status == Status.SCHEDULED  # 5 minutes late: released at the next tick
    assert three_hours.next_attempt_at <= timezone.now()
    assert DeliveryEvent.objects.filter(delivery=day_before, name="comms.cancelled").exists()


def test_an_event_postponed_gives_the_reminder_to_guests_added_too_late_for_it(
        api, keys, settings):
    settings.HERALD_REMINDER_GRACE_MINUTES = 30
    start = minute(timezone.now()) + timedelta(hours=10)
    event_id = make_event(api, start)
    add_rule(api, event_id, make_template(api), -1440)  # its time passed 14 hours ago
    api.post("/checkin/v1/api/guest", late := guest(event_id))
    assert reminders_of(late["id"]) == []
    move_in_admin(keys, event_id, start + timedelta(days=2))
    [reminder] = reminders_of(late["id"])
    assert reminder.status == Status.SCHEDULED
    assert reminder.next_attempt_at == start + timedelta(days=1)
    move_in_admin(keys, event_id, start + timedelta(days=3))  # no second one
    [reminder] = reminders_of(late["id"])
    assert reminder.next_attempt_at == start + timedelta(days=2)


# --- the render context follows the event ------------------------------------------------------

def test_every_scheduled_delivery_of_the_events_guests_gets_the_new_event(api, keys):
    event_id = make_event(api, timezone.now() + timedelta(days=3), venue="Old Hall")
    add_rule(api, event_id, make_template(api), -60)
    api.post("/checkin/v1/api/guest", body := guest(event_id))
    new_start = minute(timezone.now() + timedelta(days=4))
    move_in_admin(keys, event_id, new_start, name="Summer Gala", venue="New Hall")
    [reminder] = reminders_of(body["id"])
    assert reminder.context["event"]["name"] == "Summer Gala"
    assert reminder.context["event"]["venue"] == "New Hall"
    assert datetime.fromisoformat(reminder.context["event"]["startsAt"]) == new_start
    assert reminder.context["firstName"] == "Jane"  # the rest of the context kept


# --- cancels --------------------------------------------------------------------------------

def hooks(keys) -> None:
    endpoint_create(account=keys.account, url="http://127.0.0.1:9/hook",
                    enabled_events=["comms.cancelled"])


def test_deleting_a_guest_cancels_its_reminders_with_webhooks_first(api, keys, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    hooks(keys)
    event_id = make_event(api, timezone.now() + timedelta(days=3))
    add_rule(api, event_id, make_template(api), -60)
    api.post("/checkin/v1/api/guest", body := guest(event_id))
    [reminder] = reminders_of(body["id"])
    owner = member_client(keys.account, "olivia", "owner")
    response = owner.post(reverse("admin:guests_attendee_delete", args=[body["id"]]),
                          {"post": "yes"})
    assert response.status_code == 302, response.content.decode()[-2000:]
    assert not Attendee.objects.filter(id=body["id"]).exists()
    assert not Delivery.objects.filter(id=reminder.id).exists()  # gone with the guest
    [sent] = Message.objects.filter(event_type="comms.cancelled")
    assert sent.payload["data"]["attendeeInvitationId"] == str(reminder.id)


def test_deleting_guests_from_the_list_cancels_their_reminders_first(api, keys, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    hooks(keys)
    event_id = make_event(api, timezone.now() + timedelta(days=3))
    add_rule(api, event_id, make_template(api), -60)
    ids = [api.post("/checkin/v1/api/guest", guest(event_id)).json()["id"] for _ in range(2)]
    owner = member_client(keys.account, "olivia", "owner")
    response = owner.post(reverse("admin:guests_attendee_changelist"), {
        "action": "delete_selected", "_selected_action": ids, "post": "yes"})
    assert response.status_code == 302, response.content.decode()[-2000:]
    assert not Attendee.objects.filter(id__in=ids).exists()
    assert Message.objects.filter(event_type="comms.cancelled").count() == 2


def test_deleting_an_event_cancels_its_guests_reminders_first(api, keys, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    hooks(keys)
    event_id = make_event(api, timezone.now() + timedelta(days=3))
    add_rule(api, event_id, make_template(api), -60)
    for _ in range(2):
        api.post("/checkin/v1/api/guest", guest(event_id))
    owner = member_client(keys.account, "olivia", "owner")
    response = owner.post(reverse("admin:guests_event_delete", args=[event_id]),
                          {"post": "yes"})
    assert response.status_code == 302, response.content.decode()[-2000:]
    assert not Event.objects.filter(id=event_id).exists()
    assert Message.objects.filter(event_type="comms.cancelled").count() == 2


def test_a_fixed_email_takes_the_scheduled_reminders_with_it(api, keys):
    event_id = make_event(api, timezone.now() + timedelta(days=3))
    add_rule(api, event_id, make_template(api), -60)
    api.post("/checkin/v1/api/guest", body := guest(event_id))
    staff = member_client(keys.account, "stella")
    response = staff.post(reverse("admin:guests_attendee_fix_email", args=[body["id"]]),
                          {"email": "jane.smith@example.com"})
    assert response.status_code == 302
    [reminder] = reminders_of(body["id"])
    assert reminder.recipient == "jane.smith@example.com"
