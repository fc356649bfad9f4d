"""Template authoring in the admin without traps (#18 item 5): the token picker, unknown tokens
named at save, the preview with a real guest of an event, "Send a test to…" any address, the
notification-event field named for what it is; events with a time zone that cannot end before
they start (#18 item 10)."""

import uuid
from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Membership
from accounts.services import account_create, membership_add
from comms.models import Delivery
from guests.models import Event
from guests.services import attendee_create, event_create
from templates.models import MessageTemplate
from templates.services import (
    TEST_SEND_CORRELATION,
    TEST_SEND_REF,
    TEST_SENDS_PER_MINUTE,
    template_create,
    template_unknown_tokens,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def test_send_counters_in_this_process(settings) -> None:
    """The test-send limit counts per user id, which a new test database gives again: in
    Redis the counts of an earlier run would still be there."""
    settings.HERALD_RATE_LIMIT_REDIS_URL = ""


@pytest.fixture
def account():
    return account_create(name="Acme Events").account


def _client(account, username: str, role: str = Membership.Role.STAFF) -> Client:
    membership = membership_add(account=account, username=username, role=role)
    membership.user.email = f"{username}@acme.example"
    membership.user.save(update_fields=["email"])
    client = Client()
    client.force_login(membership.user)
    return client


@pytest.fixture
def staff(account) -> Client:
    return _client(account, "stella")


@pytest.fixture
def ticket(account) -> MessageTemplate:
    return template_create(account=account, name="Ticket",
                           subject="Your ticket for {{ event.name }}",
                           text_body="Hi {{ firstName }}, doors open {{ event.startsAt }}.",
                           html_body="<p>{{ event.startsAt|date }} at "
                                     "{{ event.startsAt|time }}</p>")


@pytest.fixture
def gala(account) -> Event:
    event = event_create(account=account, name="Spring Gala",
                         starts_at=datetime(2027, 4, 17, 17, 0, tzinfo=UTC))
    Event.objects.filter(pk=event.pk).update(time_zone="Europe/Paris")
    return Event.objects.get(pk=event.pk)


def _guest(account, event, first: str, email: str):
    return attendee_create(account=account, mode="live", id=uuid.uuid4(), event_id=event.pk,
                           email=email, first_name=first, last_name="Smith").attendee


def _form(account, **fields) -> dict:
    return {"name": "Ticket", "account": str(account.pk), "channel": "email", "language": "en",
            "subject": "Hello", "text_body": "", "html_body": "",
            "versions-TOTAL_FORMS": "0", "versions-INITIAL_FORMS": "0", **fields}


ADD = "admin:templates_messagetemplate_add"


def _change(template) -> str:
    return reverse("admin:templates_messagetemplate_change", args=[template.pk])


def _send_test(template) -> str:
    return reverse("admin:templates_messagetemplate_send_test", args=[template.pk])


# --- the form: token picker, unknown tokens, the notification event --------------------------

def test_the_template_form_offers_the_guest_tokens_to_insert(staff):
    page = staff.get(reverse(ADD)).content.decode()
    for token in ("{{ firstName }}", "{{ event.name }}", "{{ event.startsAt|date }}",
                  "{{ correlationId }}"):
        assert f'data-token="{token}"' in page
    assert "templates/token_picker.js" in page
    assert 'name="event"' not in page  # the notification event is not chosen here


def test_a_typo_of_a_known_token_stops_the_save_once_naming_the_token_it_resembles(staff,
                                                                                   account):
    said = staff.post(reverse(ADD), _form(account, subject="Hello {{ fristName }}"))
    page = said.content.decode()
    assert said.status_code == 200 and not MessageTemplate.objects.exists()
    assert "Unknown token fristName — did you mean firstName?" in page
    assert 'name="keep_tokens" value="fristName"' in page
    kept = staff.post(reverse(ADD), _form(account, subject="Hello {{ fristName }}",
                                          keep_tokens="fristName"), follow=True)
    assert MessageTemplate.objects.get().subject == "Hello {{ fristName }}"
    assert "Unknown token fristName — did you mean firstName?" in kept.content.decode()


def test_other_unknown_tokens_are_a_warning_after_the_save(staff, account):
    said = staff.post(reverse(ADD), _form(account, text_body="Total: {{ orderTotal }}, "
                                          "{{ event.nmae }}"), follow=True)
    # event.nmae is a typo of event.name: it stops the save; orderTotal alone would not.
    assert "Unknown token event.nmae — did you mean event.name?" in said.content.decode()
    assert not MessageTemplate.objects.exists()
    said = staff.post(reverse(ADD), _form(account, text_body="Total: {{ orderTotal }}"),
                      follow=True)
    assert MessageTemplate.objects.get().text_body == "Total: {{ orderTotal }}"
    assert "Unknown token orderTotal: no guest message fills it in" in said.content.decode()


def test_known_tokens_loop_variables_and_filters_are_not_unknown():
    assert template_unknown_tokens(
        subject="{{ firstName }} {{ lastName|upper }}", html_body="{{ event['venue'] }}",
        text_body="{% set n = 1 %}{% for x in range(3) %}{{ x }}{{ n }}{% endfor %}"
                  "{{ event.startsAt|datetime }} {{ email }} {{ attendeeInvitationId }}") == []
    found = template_unknown_tokens(subject="{{ Firstname }}", html_body="", text_body="")
    assert [(t.token, t.suggestion) for t in found] == [("Firstname", "firstName")]


def test_a_notification_events_template_shows_its_event_under_its_own_name(staff, account,
                                                                            ticket):
    from templates.models import NotificationEvent

    event = NotificationEvent.objects.create(account=account, identifier="order.confirmed",
                                             name="Order confirmed", channels=["email"])
    MessageTemplate.objects.filter(pk=ticket.pk).update(event=event)
    page = staff.get(_change(ticket)).content.decode()
    assert "Notification event (API)" in page and "not a guest event" in page
    assert "data-token=" not in page  # its tokens are its contacts' and payload's
    listing = staff.get(reverse("admin:templates_messagetemplate_changelist")).content.decode()
    assert "notification event (API)" in listing


# --- the preview with a real guest -----------------------------------------------------------

def test_the_preview_renders_the_latest_guest_with_the_event_dates_in_its_zone(staff, account,
                                                                              ticket, gala):
    _guest(account, gala, "Jane", "jane@example.com")
    _guest(account, gala, "Omar", "omar@example.com")
    page = staff.get(_change(ticket)).content.decode()
    assert "Hi Omar, doors open Saturday 17 April 2027, 19:00." in page
    assert "Saturday 17 April 2027 at 19:00" in page  # the HTML part, in the iframe
    assert "Europe/Paris" in page and "None" not in page.split('id="herald-preview"')[1]


def test_the_preview_takes_a_chosen_guest_of_the_account_only(staff, account, ticket, gala):
    jane = _guest(account, gala, "Jane", "jane@example.com")
    _guest(account, gala, "Omar", "omar@example.com")
    other = account_create(name="Other Org").account
    theirs = _guest(other, event_create(account=other, name="Their Gala"), "Eve",
                    "eve@example.com")
    assert "Hi Jane," in staff.get(_change(ticket), {"guest": jane.pk}).content.decode()
    page = staff.get(_change(ticket), {"guest": theirs.pk}).content.decode()
    assert "eve@example.com" not in page and "Hi Omar," in page


def test_an_event_without_a_date_previews_without_none(staff, account, ticket):
    undated = event_create(account=account, name="Undated")
    _guest(account, undated, "Jane", "jane@example.com")
    page = staff.get(_change(ticket)).content.decode()
    preview = page.split('id="herald-preview"')[1]
    assert "Hi Jane, doors open ." in preview and "None" not in preview


def test_without_guests_the_preview_uses_sample_data_with_dates(staff, ticket):
    preview = staff.get(_change(ticket)).content.decode().split('id="herald-preview"')[1]
    assert "sample data" in preview and "Hi Jane, doors open Saturday 17 April 2027" in preview


# --- "Send a test to…" -------------------------------------------------------------------------

def test_send_a_test_to_any_address_with_a_guests_data_never_as_the_guests_send(
        staff, account, ticket, gala, django_capture_on_commit_callbacks):
    jane = _guest(account, gala, "Jane", "jane@example.com")
    Delivery.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        said = staff.post(_send_test(ticket), {"to": "qa@agency.example", "guest": jane.pk},
                          follow=True)
    assert "Test sent to qa@agency.example with the data of Jane Smith" in said.content.decode()
    delivery = Delivery.objects.get()
    assert delivery.recipient == "qa@agency.example" and delivery.mode == "live"
    assert delivery.correlation_id == TEST_SEND_CORRELATION
    assert delivery.owner_id is None  # no guest's, no event's figures
    assert list(delivery.refs) == [TEST_SEND_REF]  # marked where no API caller can write
    assert delivery.text_body == "Hi Jane, doors open Saturday 17 April 2027, 19:00."
    assert not jane.deliveries.exists()


def test_a_test_send_refuses_a_bad_address_and_more_than_ten_a_minute(staff, ticket):
    said = staff.post(_send_test(ticket), {"to": "not an address"}, follow=True)
    assert "Enter an email address" in said.content.decode()
    assert not Delivery.objects.exists()
    for _ in range(TEST_SENDS_PER_MINUTE):
        said = staff.post(_send_test(ticket), {"to": "qa@agency.example"}, follow=True)
        assert "Test sent to qa@agency.example with sample data" in said.content.decode()
    said = staff.post(_send_test(ticket), {"to": "qa@agency.example"}, follow=True)
    assert f"At most {TEST_SENDS_PER_MINUTE} test sends a minute" in said.content.decode()
    assert Delivery.objects.count() == TEST_SENDS_PER_MINUTE


def test_support_may_not_send_tests_and_another_accounts_template_is_a_404(account, ticket):
    support = _client(account, "sam", Membership.Role.SUPPORT)
    assert support.post(_send_test(ticket), {"to": "qa@agency.example"}).status_code == 403
    assert "Send a test" not in support.get(_change(ticket)).content.decode()
    other = account_create(name="Other Org").account
    stranger = _client(other, "otto")
    assert stranger.post(_send_test(ticket), {"to": "qa@agency.example"}).status_code == 404
    assert not Delivery.objects.exists()


# --- events: a time zone, and no end before the start ----------------------------------------

def _event_form(account, **fields) -> dict:
    return {"account": str(account.pk), "name": "Gala", "venue": "",
            "starts_at_0": "2027-04-17", "starts_at_1": "19:00:00",
            "ends_at_0": "2027-04-17", "ends_at_1": "23:00:00", "time_zone": "Europe/Paris",
            **fields}


def _event_add(client, data):
    return client.post(reverse("admin:guests_event_add"), data, follow=True)


def test_an_event_has_a_time_zone_chosen_from_a_list(staff, account):
    page = staff.get(reverse("admin:guests_event_add")).content.decode()
    assert '<option value="Europe/Paris">Europe/Paris</option>' in page
    assert '<option value="America/New_York">America/New York</option>' in page
    _event_add(staff, _event_form(account))
    assert Event.objects.get(name="Gala").time_zone == "Europe/Paris"
    said = _event_add(staff, _event_form(account, name="Elsewhere", time_zone="Mars/Olympus"))
    assert not Event.objects.filter(name="Elsewhere").exists()
    assert "Mars/Olympus is not one of the available choices" in said.content.decode()


def test_an_event_cannot_end_before_it_starts(staff, account):
    said = _event_add(staff, _event_form(account, ends_at_1="18:00:00"))
    assert "The event ends before it starts" in said.content.decode()
    assert not Event.objects.exists()


def test_test_sends_count_in_no_live_figures(staff, account, ticket,
                                             django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        staff.post(_send_test(ticket), {"to": "qa@agency.example"})
    assert Delivery.objects.get().status == "sent"
    home = staff.get(reverse("admin:index"))
    assert home.context["today"]["total"] == 0 and home.context["today"]["sent"] == 0
    dashboard = staff.get(reverse("admin:comms_dashboard_changelist")).content.decode()
    assert "Account: Acme Events" not in dashboard


def test_an_account_not_verified_for_sending_sends_no_test(staff, account, ticket):
    account.verified_for_sending = False
    account.save(update_fields=["verified_for_sending"])
    said = staff.post(_send_test(ticket), {"to": "qa@agency.example"}, follow=True)
    assert "not verified for sending" in said.content.decode()
    assert not Delivery.objects.exists()


def test_an_api_send_with_the_test_sends_correlation_id_still_counts(
        staff, account, ticket, django_capture_on_commit_callbacks):
    """The marker is the refs key, not the correlation id an API caller may choose."""
    from comms.messages import Message
    from comms.services import message_queue

    with django_capture_on_commit_callbacks(execute=True):
        message_queue(Message(account_id=account.pk, template_id=ticket.pk, mode="live",
                              recipient="ann@example.com", context={},
                              correlation_id=TEST_SEND_CORRELATION))
    assert staff.get(reverse("admin:index")).context["today"]["total"] == 1


def test_choosing_an_event_without_guests_keeps_the_choice_and_says_sample_data(staff, account,
                                                                               ticket, gala):
    _guest(account, gala, "Olga", "olga@example.com")
    empty = event_create(account=account, name="Autumn Fair")
    preview = staff.get(_change(ticket), {"event": empty.pk}).content.decode().split(
        'id="herald-preview"')[1]
    assert f'<option value="{empty.pk}" selected>Autumn Fair</option>' in preview
    assert f'<option value="{gala.pk}">Spring Gala</option>' in preview
    assert "no guest yet in Autumn Fair" in preview and "Olga" not in preview
