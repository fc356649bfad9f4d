"""A reminder rule added to a big event: its guests' reminders are made by the job
``guests.reminder_rule_fill`` after the request, not inside it; the job is idempotent and
crash-safe (a rerun, a run after a crash, two runs at once: one reminder per guest), and a
lost one is queued again by the sweep. A small event's are still made in the request."""

import threading
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from comms.models import Delivery, Status
from guests import reminders
from guests.jobs import guest_jobs_sweep
from guests.models import Attendee, Event, ReminderRule
from guests.services import event_create
from templates.services import template_create
from tests.conftest import member_client
from tests.guests.test_reminders_admin import event_form, save

GUESTS = 5


@pytest.fixture
def big(settings) -> None:
    """Events of more than 2 guests are big (the default is 500)."""
    settings.HERALD_REMINDER_INLINE_GUESTS = 2


@pytest.fixture
def event(keys) -> Event:
    event = event_create(account=keys.account, name="Gala",
                         starts_at=timezone.now() + timedelta(days=4), time_zone="Europe/Paris")
    Attendee.objects.bulk_create([
        Attendee(id=uuid.uuid4(), account_id=event.account_id, event=event,
                 email=f"g{n}@example.com", first_name=f"G{n}") for n in range(GUESTS)])
    return event


@pytest.fixture
def template(keys):
    return template_create(account=keys.account, name="Reminder", subject="See you",
                           text_body="Hi {{ firstName }}")


def per_guest(rule_id) -> Counter:
    """How many reminders of the rule each guest has."""
    return Counter(Delivery.objects.filter(refs__reminderRuleId=str(rule_id))
                   .values_list("owner_id", flat=True))


def add_rule(keys, event, template) -> ReminderRule:
    return reminders.reminder_rule_create(account=keys.account, event_id=event.id,
                                          template_id=template.id, offset_minutes=-60)


def test_the_request_queues_the_job_and_the_job_schedules_every_guest(
        api, keys, big, event, template, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as published:
        response = api.client.post(f"/checkin/v1/api/event/{event.id}/reminders",
                                   {"templateId": str(template.id), "offsetMinutes": -60},
                                   format="json")
    assert response.status_code == 201, response.content
    rule = ReminderRule.objects.get(id=response.json()["id"])
    assert per_guest(rule.id) == Counter()  # none made inside the request
    assert rule.fill_due is not None  # the job's to do (the sweep's record)
    assert response.json()["scheduling"] is True  # the answer says so
    for callback in published:
        callback()  # the commit publishes the task; eager here, a worker's in production
    counts = per_guest(rule.id)
    assert len(counts) == GUESTS and set(counts.values()) == {1}
    assert set(Delivery.objects.filter(refs__reminderRuleId=str(rule.id))
               .values_list("status", "next_attempt_at")) == {
        (Status.SCHEDULED, event.starts_at - timedelta(minutes=60))}
    rule.refresh_from_db()
    assert rule.fill_due is None
    listed = api.client.get(f"/checkin/v1/api/event/{event.id}/reminders").json()
    assert [r["scheduling"] for r in listed["items"]] == [False]


def test_a_small_event_is_still_scheduled_in_the_request(
        keys, event, template, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        rule = add_rule(keys, event, template)
    assert len(per_guest(rule.id)) == GUESTS
    rule.refresh_from_db()
    assert rule.fill_due is None


def test_a_rerun_and_a_run_after_a_crash_add_no_reminder_twice(
        keys, big, event, template, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        rule = add_rule(keys, event, template)
    # A worker died after committing its first batch: two guests have theirs.
    first = list(Attendee.objects.filter(event=event).order_by("id")[:2])
    reminders.reminders_schedule_rule(rule=rule, event=event, attendees=first)
    assert reminders.reminder_rule_fill(rule_id=rule.id, batch=2) == GUESTS - 2
    assert reminders.reminder_rule_fill(rule_id=rule.id, batch=2) == 0
    counts = per_guest(rule.id)
    assert len(counts) == GUESTS and set(counts.values()) == {1}


def test_a_reminder_cancelled_by_staff_is_not_made_again(
        keys, big, event, template, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        rule = add_rule(keys, event, template)
    one = Delivery.objects.filter(refs__reminderRuleId=str(rule.id)).first()
    Delivery.objects.filter(id=one.id).update(status=Status.CANCELLED)
    assert reminders.reminder_rule_fill(rule_id=rule.id) == 0
    assert len(per_guest(rule.id)) == GUESTS


def test_a_lost_job_is_queued_again_by_the_sweep(
        keys, big, event, template, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):  # the broker was down
        rule = add_rule(keys, event, template)
    assert guest_jobs_sweep() == 0  # not overdue yet
    ReminderRule.objects.filter(id=rule.id).update(fill_due=timezone.now() - timedelta(hours=1))
    assert guest_jobs_sweep() == 1  # published again (run eagerly here)
    assert len(per_guest(rule.id)) == GUESTS
    rule.refresh_from_db()
    assert rule.fill_due is None
    assert guest_jobs_sweep() == 0  # done: nothing to sweep


def test_a_rule_removed_before_its_job_ran_makes_nothing(
        keys, big, event, template, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        rule = add_rule(keys, event, template)
    rule_id = rule.id
    reminders.reminder_rule_delete(rule=rule)
    assert reminders.reminder_rule_fill(rule_id=rule_id) == 0
    assert per_guest(rule_id) == Counter()


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_take_turns_and_give_each_guest_one(keys, big, event, template):
    rule = add_rule(keys, event, template)  # eager: the job ran on commit
    Delivery.objects.filter(refs__reminderRuleId=str(rule.id)).delete()
    made: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run() -> None:
        try:
            start.wait()
            made.append(reminders.reminder_rule_fill(rule_id=rule.id, batch=1))
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert sum(made) == GUESTS
    counts = per_guest(rule.id)
    assert len(counts) == GUESTS and set(counts.values()) == {1}


def test_the_admin_says_a_big_events_reminders_are_being_scheduled(
        keys, big, event, template, django_capture_on_commit_callbacks):
    staff = member_client(keys.account, "stella")
    with django_capture_on_commit_callbacks(execute=True):
        response = save(staff, event, event_form(event, {
            "template": template.pk, "amount": "2", "unit": "hours", "direction": "before"}))
    assert response.status_code == 302
    told = [str(message) for message in get_messages(response.wsgi_request)]
    assert any("being scheduled in the background" in text for text in told), told
    rule = ReminderRule.objects.get()
    assert len(per_guest(rule.id)) == GUESTS  # the job ran on commit (eagerly here)
    page = staff.get(reverse("admin:guests_event_change", args=[event.pk]))
    assert page.status_code == 200


def test_a_big_event_postponed_gives_its_guests_a_reminder_whose_time_had_passed(
        keys, big, template, django_capture_on_commit_callbacks):
    event = event_create(account=keys.account, name="Gala",
                         starts_at=timezone.now() + timedelta(minutes=10),
                         time_zone="Europe/Paris")
    Attendee.objects.bulk_create([
        Attendee(id=uuid.uuid4(), account_id=event.account_id, event=event,
                 email=f"g{n}@example.com") for n in range(GUESTS)])
    with django_capture_on_commit_callbacks(execute=True):
        rule = reminders.reminder_rule_create(account=keys.account, event_id=event.id,
                                              template_id=template.id, offset_minutes=-120)
    assert per_guest(rule.id) == Counter()  # its time passed 110 minutes ago: none
    rule.refresh_from_db()
    assert rule.fill_due is None
    event.starts_at = timezone.now() + timedelta(days=2)
    event.save()
    with django_capture_on_commit_callbacks(execute=False) as published:
        assert reminders.event_reminders_follow(event=event, moved=True) is True
    assert per_guest(rule.id) == Counter()  # the job's, after the commit
    for callback in published:
        callback()
    counts = per_guest(rule.id)
    assert len(counts) == GUESTS and set(counts.values()) == {1}
