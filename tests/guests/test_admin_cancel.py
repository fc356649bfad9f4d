"""Cancelling from the admin one by one: a guest's scheduled tickets and reminders on their
page ("Scheduled for …", a Cancel button support may press, "Cancelled by …" after), and the
Deliveries list's "Cancel" action for the staff who run events."""

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from accounts.services import account_create
from comms.models import Delivery, DeliveryEvent, Status
from comms.scheduling import deliveries_release
from guests.bulk import bulk_send_create, bulk_send_run
from guests.models import Attendee
from guests.services import attendee_create, event_create
from templates.services import template_create
from tests.conftest import member_client

PARIS = ZoneInfo("Europe/Paris")


def _in_paris(month: int, day: int, hour: int) -> datetime:
    now = timezone.now().astimezone(PARIS)
    when = datetime(now.year, month, day, hour, tzinfo=PARIS)
    return when if when > now + timedelta(days=1) else when.replace(year=now.year + 1)


def _when(local: datetime) -> str:
    year = "" if local.year == timezone.now().astimezone(PARIS).year else f" {local.year}"
    return f"{local:%a} {local.day} {local:%b}{year}, {local:%H:%M}"


def _said(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _shown(page) -> list[str]:
    return [str(m) for m in page.context["messages"]]


@pytest.fixture
def event(keys):
    return event_create(account=keys.account, name="Opera Night", time_zone="Europe/Paris")


@pytest.fixture
def ticket(keys):
    return template_create(account=keys.account, name="Ticket", subject="Your ticket",
                           text_body="Hi {{ firstName }}.")


@pytest.fixture
def ann(keys, event) -> Attendee:
    return attendee_create(account=keys.account, mode="live", id=uuid.uuid4(),
                           event_id=event.pk, email="ann@example.com",
                           first_name="Ann").attendee


def _scheduled(event, ticket, when: datetime, capture) -> list[Delivery]:
    """The event's guests sent ``ticket`` at ``when``, as the admin's bulk send does."""
    with capture(execute=True):
        job, _ = bulk_send_create(event=event, template_id=ticket.pk, audience="all",
                                  mode="live", token=uuid.uuid4(), user=None, send_at=when)
    bulk_send_run(job_id=job.pk)
    return list(Delivery.objects.filter(refs__bulkSendId=str(job.pk)))


def test_the_guests_page_lists_a_scheduled_ticket_and_support_cancels_it(
        keys, event, ticket, ann, sendgrid, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    local = _in_paris(4, 17, 19)
    [delivery] = _scheduled(event, ticket, local, capture)
    support = member_client(keys.account, "sam", role=Membership.Role.SUPPORT)
    page_url = reverse("admin:guests_attendee_change", args=[ann.pk])
    page = support.get(page_url).content.decode()
    scheduled = f"Scheduled for {_when(local)} (Europe/Paris)"
    assert page.count(scheduled) == 2  # the ticket's status and its first step
    assert f'data-cancel="{delivery.pk}"' in page
    list_page = support.get(reverse("admin:guests_attendee_changelist")).content.decode()
    assert "Scheduled for " in list_page  # the guest list's last ticket

    with capture(execute=True):
        response = support.post(reverse("admin:guests_attendee_cancel_ticket", args=[ann.pk]),
                                {"delivery": str(delivery.pk)})
    assert response.status_code == 302 and response["Location"] == page_url
    assert _said(response) == ["Cancelled: “Ticket” will not be sent to ann@example.com."]
    delivery.refresh_from_db()
    assert delivery.status == Status.CANCELLED
    event_row = DeliveryEvent.objects.get(delivery=delivery)
    assert (event_row.name, event_row.detail) == (
        "comms.cancelled", {"reason": "Cancelled by sam on the guest's page."})

    page = support.get(page_url).content.decode()
    assert page.count("Cancelled by sam on the guest&#x27;s page") == 2  # status and step
    assert f'data-cancel="{delivery.pk}"' not in page
    with capture(execute=True):
        deliveries_release(now=local + timedelta(seconds=1))
    assert sendgrid.messages == []  # a cancelled ticket never reaches the provider


def test_a_sent_ticket_or_another_guests_is_not_cancelled(
        keys, event, ticket, ann, sendgrid, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    attendee_create(account=keys.account, mode="live", id=uuid.uuid4(), event_id=event.pk,
                    email="bob@example.com")
    deliveries = _scheduled(event, ticket, None, capture)  # sent at once
    anns = next(d for d in deliveries if d.recipient.startswith("ann"))
    bobs = next(d for d in deliveries if d.recipient.startswith("bob"))
    assert {d.status for d in Delivery.objects.all()} == {Status.SENT}
    client = member_client(keys.account, "stella")
    url = reverse("admin:guests_attendee_cancel_ticket", args=[ann.pk])

    with capture(execute=True):  # each followed to the guest's page, which says it
        sent = client.post(url, {"delivery": str(anns.pk)}, follow=True)
        theirs = client.post(url, {"delivery": str(bobs.pk)}, follow=True)
        junk = client.post(url, {"delivery": "not-an-id"}, follow=True)
    assert _shown(sent) == ["Not cancelled: it was already sent or stopped. Its history is "
                            "below."]
    assert _shown(theirs) == _shown(junk) == [
        "Not cancelled: that message is not one of this guest's."]
    page = sent.content.decode()
    assert "data-cancel=" not in page  # nothing left to cancel: no button
    assert {d.status for d in Delivery.objects.all()} == {Status.SENT}
    assert not DeliveryEvent.objects.filter(name="comms.cancelled").exists()

    other = member_client(account_create(name="Other Org").account, "olga",
                          role=Membership.Role.OWNER)
    assert other.post(url, {"delivery": str(anns.pk)}).status_code == 404


def test_the_deliveries_list_shows_the_time_and_staff_cancel_what_is_not_sent(
        keys, event, ticket, ann, sendgrid, django_capture_on_commit_callbacks, settings):
    capture = django_capture_on_commit_callbacks
    settings.TIME_ZONE = "Europe/Paris"  # the site's zone, which the engine's list speaks in
    attendee_create(account=keys.account, mode="live", id=uuid.uuid4(), event_id=event.pk,
                    email="bob@example.com")
    local = _in_paris(4, 17, 19)
    later = _scheduled(event, ticket, local, capture)
    now = _scheduled(event, ticket, None, capture)
    client = member_client(keys.account, "stella")
    url = reverse("admin:comms_delivery_changelist")

    listed = client.get(url).content.decode()
    assert listed.count(f"Scheduled for {_when(local)}") == 2
    filtered = client.get(url, {"status__exact": "scheduled"})
    assert len(filtered.context["cl"].result_list) == 2
    labels = [choice["display"] for spec in filtered.context["cl"].filter_specs
              if getattr(spec, "field_path", "") == "status"
              for choice in spec.choices(filtered.context["cl"])]
    assert {"Scheduled", "Cancelled before it was sent", "Sent to the mail provider"} <= set(
        labels)

    with capture(execute=True):
        response = client.post(url, {"action": "cancel_deliveries", "_selected_action": [
            str(d.pk) for d in [*later, *now]]})
    assert _said(response) == ["Cancelled 2 of 4 selected deliveries; 2 could not be: "
                               "already being sent, sent, or final."]
    assert sorted(Delivery.objects.values_list("status", flat=True)) == [
        Status.CANCELLED, Status.CANCELLED, Status.SENT, Status.SENT]
    assert set(Delivery.objects.filter(status=Status.CANCELLED).values_list(
        "failure_reason", flat=True)) == {"Cancelled by stella in the admin."}
    assert DeliveryEvent.objects.filter(name="comms.cancelled").count() == 2
    detail = client.get(reverse("admin:comms_delivery_change", args=[later[0].pk]))
    assert "Cancelled by stella in the admin" in detail.content.decode()

    with capture(execute=True):
        again = client.post(url, {"action": "cancel_deliveries",
                                  "_selected_action": [str(d.pk) for d in later]})
    assert _said(again) == ["None of the 2 selected deliveries could be cancelled: each is "
                            "already being sent, sent, or final."]


def test_support_cannot_cancel_from_the_deliveries_list(
        keys, event, ticket, ann, django_capture_on_commit_callbacks):
    [delivery] = _scheduled(event, ticket, _in_paris(4, 17, 19),
                            django_capture_on_commit_callbacks)
    support = member_client(keys.account, "sam", role=Membership.Role.SUPPORT)
    url = reverse("admin:comms_delivery_changelist")
    assert "cancel_deliveries" not in support.get(url).content.decode()  # not offered
    support.post(url, {"action": "cancel_deliveries", "_selected_action": [str(delivery.pk)]})
    delivery.refresh_from_db()
    assert delivery.status == Status.SCHEDULED
