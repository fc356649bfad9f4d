"""The admin's bulk send at a later time: "Send at" read and shown in the event's own time
zone, every ticket ``scheduled`` until then (no provider call), progress that waits instead
of looking stuck, and "Cancel this send" for the staff who run the event."""

import re
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from accounts.services import account_create
from comms.models import Delivery, DeliveryEvent, Status
from comms.scheduling import deliveries_release
from guests.models import BulkSend
from guests.services import attendee_create, event_create
from templates.services import template_create
from tests.conftest import member_client

PARIS = ZoneInfo("Europe/Paris")


def _field(response, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]+)"', response.content.decode()).group(1)


def _next(month: int, day: int, hour: int) -> datetime:
    """The next ``day``/``month`` at ``hour`` in Paris still ahead (within the year)."""
    now = timezone.now().astimezone(PARIS)
    when = datetime(now.year, month, day, hour, tzinfo=PARIS)
    return when if when > now + timedelta(days=1) else when.replace(year=now.year + 1)


def _preview(client, event, template, **fields):
    return client.post(reverse("admin:guests_event_send_form", args=[event.pk]), {
        "template": template.pk, "audience": "all", "mode": "live", "_preview": "1", **fields})


def _confirm(client, event, preview, capture):
    data = {name: _field(preview, name)
            for name in ("template", "audience", "mode", "token", "send_at")
            if f'name="{name}" value=' in preview.content.decode()}
    with capture(execute=True):
        return client.post(reverse("admin:guests_event_send_form", args=[event.pk]),
                           {**data, "_confirm": "1"})


def _schedule(client, event, template, capture, send_at: str) -> BulkSend:
    response = _confirm(client, event, _preview(client, event, template, send_at=send_at),
                        capture)
    assert response.status_code == 302, response.content
    return BulkSend.objects.get(pk=response["Location"].rstrip("/").rsplit("/", 1)[1])


def _progress(client, job) -> dict:
    return client.get(reverse("admin:guests_event_send_progress",
                              args=[job.event_id, job.pk])).json()


def _when(local: datetime) -> str:
    """How the pages say a time of the event's ("Sat 16 Jan, 19:00", the year if not this)."""
    year = "" if local.year == timezone.now().astimezone(PARIS).year else f" {local.year}"
    return f"{local:%a} {local.day} {local:%b}{year}, {local:%H:%M}"


@pytest.fixture
def event(keys):
    return event_create(account=keys.account, name="Opera Night", time_zone="Europe/Paris")


@pytest.fixture
def ticket(keys):
    return template_create(account=keys.account, name="Ticket", subject="Your ticket",
                           text_body="Hi {{ firstName }}, see you at {{ event.name }}.")


@pytest.fixture
def guests(keys, event):
    return [attendee_create(account=keys.account, mode="live", id=uuid.uuid4(),
                            event_id=event.pk, email=f"g{i}@example.com") for i in range(3)]


@pytest.mark.parametrize(("month", "day", "utc_hour"), [(1, 16, 18), (7, 10, 17)],
                         ids=["winter", "summer"])
def test_send_at_is_read_and_shown_in_the_events_time_zone(
        keys, event, ticket, guests, sendgrid, django_capture_on_commit_callbacks,
        month, day, utc_hour, settings):
    """19:00 typed for a Paris event is 19:00 in Paris: 18:00 UTC in winter, 17:00 in
    summer, whatever the site's or the browser's zone."""
    settings.TIME_ZONE = "America/New_York"
    local = _next(month, day, 19)
    client = member_client(keys.account, "stella")
    form = client.get(reverse("admin:guests_event_send_form", args=[event.pk]))
    assert 'type="datetime-local"' in form.content.decode()
    assert "In the event's time zone (Europe/Paris)" in form.content.decode()

    preview = _preview(client, event, ticket, send_at=local.strftime("%Y-%m-%dT%H:%M"))
    page = preview.content.decode()
    assert f"Scheduled for {_when(local)} (Europe/Paris)" in page
    assert _field(preview, "send_at") == local.strftime("%Y-%m-%d %H:%M:%S")  # shown back
    job = _schedule(client, event, ticket, django_capture_on_commit_callbacks,
                    local.strftime("%Y-%m-%dT%H:%M"))

    expected = datetime(local.year, month, day, utc_hour, tzinfo=UTC)
    assert job.send_at == expected
    rows = Delivery.objects.filter(refs__bulkSendId=str(job.pk))
    assert [(d.status, d.next_attempt_at) for d in rows] == [
        (Status.SCHEDULED, expected)] * 3
    assert sendgrid.messages == []  # nothing reaches the provider before its time


def test_progress_waits_for_the_time_then_is_done_once_all_left(
        keys, event, ticket, guests, sendgrid, django_capture_on_commit_callbacks):
    local = _next(4, 17, 19)
    client = member_client(keys.account, "stella")
    job = _schedule(client, event, ticket, django_capture_on_commit_callbacks,
                    local.strftime("%Y-%m-%dT%H:%M"))
    job.refresh_from_db()
    assert job.status == BulkSend.Status.DONE  # every ticket made: they wait in the engine

    progress = _progress(client, job)
    scheduled = f"Scheduled for {_when(local)} (Europe/Paris)"
    assert not progress["finished"]
    assert progress["state"] == progress["scheduled"] == scheduled
    assert progress["text"] == (f"{scheduled}. Prepared 3 of 3; 0 handed to the mail service, "
                                "3 waiting (3 for their time).")
    assert [(row["label"], row["count"]) for row in progress["rows"]] == [("Scheduled", 3)]
    assert progress["pollSeconds"] == 30  # a send months ahead: the page asks every 30 s
    page = client.get(reverse("admin:guests_event_send", args=[event.pk, job.pk]))
    assert scheduled in page.content.decode() and 'id="cancel-send"' in page.content.decode()
    sends = client.get(reverse("admin:guests_event_sends", args=[event.pk]))
    assert scheduled in sends.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        assert deliveries_release(now=local + timedelta(seconds=1)) == 3
    assert len(sendgrid.recipients()) == 3
    progress = _progress(client, job)
    assert progress["finished"] and progress["state"] == "Done" and progress["pollSeconds"] == 1
    assert progress["text"] == "Done: all 3 tickets left Herald."
    page = client.get(reverse("admin:guests_event_send", args=[event.pk, job.pk]))
    assert 'id="cancel-send"' not in page.content.decode()  # nothing left to cancel


def test_a_time_past_sends_at_once_and_more_than_a_year_ahead_is_refused(
        keys, event, ticket, guests, sendgrid, django_capture_on_commit_callbacks):
    client = member_client(keys.account, "stella")
    too_far = (timezone.now() + timedelta(days=400)).astimezone(PARIS)
    refused = _preview(client, event, ticket, send_at=too_far.strftime("%Y-%m-%dT%H:%M"))
    assert refused.status_code == 200
    assert refused.context["form"].errors == {
        "send_at": ["Choose a time at most a year from now."]}
    assert not BulkSend.objects.exists()

    year = timezone.now().year + 1  # 02:30 on the last Sunday of March: no such time in Paris
    spring = max(datetime(year, 3, d) for d in range(25, 32) if datetime(year, 3, d).weekday() == 6)
    gap = _preview(client, event, ticket, send_at=f"{spring:%Y-%m-%d}T02:30")
    assert "be interpreted in time zone Europe/Paris" in str(
        gap.context["form"].errors["send_at"])
    assert not BulkSend.objects.exists()

    past = (timezone.now() - timedelta(hours=2)).astimezone(PARIS)
    job = _schedule(client, event, ticket, django_capture_on_commit_callbacks,
                    past.strftime("%Y-%m-%dT%H:%M"))
    assert job.send_at is None
    assert len(sendgrid.recipients()) == 3
    assert set(Delivery.objects.values_list("status", flat=True)) == {Status.SENT}


def test_cancel_this_send_withdraws_what_is_not_sent_and_nothing_reaches_the_provider(
        keys, event, ticket, guests, sendgrid, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    local = _next(4, 17, 19)
    job = _schedule(member_client(keys.account, "planner"), event, ticket, capture,
                    local.strftime("%Y-%m-%dT%H:%M"))
    client = member_client(keys.account, "stella", csrf=True)
    page = client.get(reverse("admin:guests_event_send", args=[event.pk, job.pk]))
    url = reverse("admin:guests_event_send_cancel", args=[event.pk, job.pk])
    assert client.post(url).status_code == 403  # CSRF enforced
    token = _field(page, "csrfmiddlewaretoken")

    with capture(execute=True):
        response = client.post(url, {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Send cancelled: 3 tickets withdrawn before they were sent; 0 had already left or "
        "are being sent."]
    job.refresh_from_db()
    assert job.status == BulkSend.Status.CANCELLED
    assert job.error.startswith("Cancelled by stella, ")
    rows = Delivery.objects.filter(refs__bulkSendId=str(job.pk))
    assert set(rows.values_list("status", flat=True)) == {Status.CANCELLED}
    assert set(rows.values_list("failure_reason", flat=True)) == {
        "Cancelled by stella with the whole send."}
    assert DeliveryEvent.objects.filter(name="comms.cancelled").count() == 3
    page = client.get(response["Location"]).content.decode()
    assert f"<p data-text>{job.error} 3 tickets withdrawn" in page  # who, when, what
    assert 'id="cancel-send"' not in page

    with capture(execute=True):
        assert deliveries_release(now=local + timedelta(seconds=1)) == 0
    assert sendgrid.messages == []
    progress = _progress(client, job)
    assert progress["finished"] and progress["state"] == "Cancelled"
    assert progress["text"] == (f"{job.error} 3 tickets withdrawn before they were sent; "
                                "0 had already left Herald.")
    assert [(row["label"], row["count"]) for row in progress["rows"]] == [
        ("Cancelled before it was sent", 3)]

    with capture(execute=True):  # again: nothing left, said so
        again = client.post(url, {"csrfmiddlewaretoken": token})
    assert [str(m) for m in get_messages(again.wsgi_request)] == [
        "Nothing to cancel: every ticket of this send already left Herald or is being sent."]


def test_a_send_cancelled_while_its_tickets_are_made_queues_no_more(
        keys, event, ticket, guests, django_capture_on_commit_callbacks):
    """The task checks the job under its row lock each batch: cancelled, it stops."""
    from guests.bulk import bulk_send_cancel, bulk_send_create, bulk_send_run

    job, _ = bulk_send_create(event=event, template_id=ticket.pk, audience="all",
                              mode="live", token=uuid.uuid4(), user=None,
                              send_at=_next(4, 17, 19))  # its task not run yet
    assert bulk_send_cancel(job=job, user=None) == []
    bulk_send_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.queued) == (BulkSend.Status.CANCELLED, 0)
    assert not Delivery.objects.exists()


def test_support_cannot_cancel_a_send_and_another_account_gets_404(
        keys, event, ticket, guests, django_capture_on_commit_callbacks):
    client = member_client(keys.account, "stella")
    job = _schedule(client, event, ticket, django_capture_on_commit_callbacks,
                    _next(4, 17, 19).strftime("%Y-%m-%dT%H:%M"))
    url = reverse("admin:guests_event_send_cancel", args=[event.pk, job.pk])
    support = member_client(keys.account, "sam", role=Membership.Role.SUPPORT)
    page = support.get(reverse("admin:guests_event_send", args=[event.pk, job.pk]))
    assert page.status_code == 200 and 'id="cancel-send"' not in page.content.decode()
    assert support.post(url).status_code == 403
    other = member_client(account_create(name="Other Org").account, "olga",
                          role=Membership.Role.OWNER)
    assert other.post(url).status_code == 404
    assert client.get(url).status_code == 405  # a POST only
    assert set(Delivery.objects.values_list("status", flat=True)) == {Status.SCHEDULED}
    job.refresh_from_db()
    assert job.status == BulkSend.Status.DONE


def test_home_counts_the_live_tickets_scheduled_for_later_today(
        keys, event, ticket, guests, settings, django_capture_on_commit_callbacks):
    from guests.bulk import bulk_send_create, bulk_send_run

    now = timezone.now()
    hours = 12 - now.hour  # a site zone where it is about noon now: "later today" is certain
    settings.TIME_ZONE = f"Etc/GMT{-hours:+d}"
    for when, mode in ((now + timedelta(hours=3), "live"), (now + timedelta(days=1), "live"),
                       (now + timedelta(hours=3), "test")):
        with django_capture_on_commit_callbacks(execute=True):
            job, _ = bulk_send_create(event=event, template_id=ticket.pk, audience="all",
                                      mode=mode, token=uuid.uuid4(), user=None, send_at=when)
        bulk_send_run(job_id=job.pk)
    assert Delivery.objects.filter(status=Status.SCHEDULED).count() == 9
    home = member_client(keys.account, "stella").get(reverse("admin:index"))
    assert home.context["today"]["scheduled"] == 3  # live, due today
    assert "Scheduled for later today" in home.content.decode()
    listed = member_client(keys.account, "sam", role=Membership.Role.SUPPORT).get(
        home.context["today_scheduled_url"])
    assert len(listed.context["cl"].result_list) == 6  # every live scheduled one, listed
