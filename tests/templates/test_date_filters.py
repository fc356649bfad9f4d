"""Dates in guest templates (#18 item 5): an event's times print in the event's time zone, in
words ("Saturday 17 April 2027, 19:00"), with ``|date``, ``|time`` and ``|datetime``; an unset
date prints nothing, never "None"; a ticket sent to a guest shows them so."""

import pytest

from comms.models import Delivery
from guests.models import Event
from templates.rendering import TemplateCompileError, render, template_check
from tests.conftest import guest


def _render(source: str, event: dict, fallback: bool = False) -> str:
    context = {"firstName": "Jane", "event": {"name": "Gala", **event}}
    return render(cache_key=(f"dates-{source}-{fallback}", 1), subject="s", html_body=source,
                  text_body=source, context=context, fallback=fallback).text


PARIS = {"startsAt": "2027-04-17 17:00:00+00:00", "endsAt": "2027-04-17T21:30:00Z",
         "timeZone": "Europe/Paris"}


def test_an_event_time_prints_in_words_in_the_event_zone_by_default():
    assert _render("{{ event.startsAt }}", PARIS) == "Saturday 17 April 2027, 19:00"
    assert _render("{{ event.endsAt }}", PARIS) == "Saturday 17 April 2027, 23:30"
    assert "+00:00" not in _render("<p>{{ event.startsAt }}</p>", PARIS)


def test_date_time_and_datetime_filters_use_the_event_zone():
    assert _render("{{ event.startsAt|date }}", PARIS) == "Saturday 17 April 2027"
    assert _render("{{ event.startsAt|time }}", PARIS) == "19:00"
    assert _render("{{ event.startsAt|datetime }}", PARIS) == "Saturday 17 April 2027, 19:00"
    new_york = {**PARIS, "timeZone": "America/New_York"}
    assert _render("{{ event.startsAt|datetime }}", new_york) == "Saturday 17 April 2027, 13:00"
    # Past midnight in the zone is the next day.
    tokyo = {**PARIS, "timeZone": "Asia/Tokyo"}
    assert _render("{{ event.endsAt|date }} {{ event.endsAt|time }}", tokyo) == (
        "Sunday 18 April 2027 06:30")


def test_a_date_filter_takes_a_strftime_format_of_bounded_size():
    assert _render('{{ event.startsAt|date("%d/%m/%Y %H:%M") }}', PARIS) == "17/04/2027 19:00"
    with pytest.raises(TemplateCompileError, match="date format"):
        template_check(subject="x", html_body="", text_body="{{ event.startsAt|date('"
                       + "%c" * 40 + "') }}")


def test_an_unset_date_prints_nothing_never_none():
    unset = {"startsAt": None, "endsAt": None, "timeZone": "Europe/Paris"}
    assert _render("[{{ event.startsAt }}][{{ event.endsAt|date }}][{{ event.startsAt|time }}]"
                   "{% if event.startsAt %}dated{% endif %}", unset) == "[][][]"
    assert _render("[{{ nothing|datetime }}]", PARIS) == "[]"


def test_dates_without_a_zone_are_utc_and_an_unknown_zone_is_the_server_one(settings):
    settings.TIME_ZONE = "UTC"
    assert _render("{{ event.startsAt }}", {"startsAt": "2027-04-17 17:00:00"}) == (
        "Saturday 17 April 2027, 17:00")
    assert _render("{{ event.startsAt|time }}", {**PARIS, "timeZone": "Mars/Olympus"}) == "17:00"


def test_text_that_is_no_date_passes_through_the_filters_unchanged():
    assert _render("{{ firstName|date }} {{ event.name|time }}", PARIS) == "Jane Gala"


def test_notification_event_templates_keep_their_payload_and_fallbacks():
    """Spec 004's Handlebars templates print their payload as given; ``{{x | date}}`` there
    is still the fallback text "date"."""
    assert _render("{{event.startsAt}}", PARIS, fallback=True) == "2027-04-17 17:00:00+00:00"
    assert _render("{{missing | date}}", PARIS, fallback=True) == "date"


def test_the_events_api_takes_and_shows_an_iana_time_zone(api, settings):
    settings.TIME_ZONE = "UTC"
    created = api.post("/checkin/v1/api/event", {"name": "Gala", "timeZone": "Europe/Paris"})
    assert created.status_code == 201 and created.json()["timeZone"] == "Europe/Paris"
    assert api.post("/checkin/v1/api/event", {"name": "Fair"}).json()["timeZone"] == "UTC"
    refused = api.post("/checkin/v1/api/event", {"name": "Moon", "timeZone": "Mars/Olympus"})
    assert refused.status_code == 400 and "timeZone" in refused.json()["fields"]
    assert not Event.objects.filter(name="Moon").exists()


def test_a_ticket_shows_the_event_time_in_the_event_zone(api):
    event = api.post("/checkin/v1/api/event", {"name": "Gala", "timeZone": "Europe/Paris",
                                               "startsAt": "2027-04-17T17:00:00Z"})
    template = api.post("/comms/v1/api/comms/template", {
        "name": "Ticket", "subject": "{{ event.name }} on {{ event.startsAt|date }}",
        "textBody": "Doors at {{ event.startsAt|time }}, ends {{ event.endsAt }}.",
        "htmlBody": "<p>{{ event.startsAt }}</p>"}).json()["id"]
    assert api.post("/checkin/v1/api/guest", guest(event.json()["id"], template)
                    ).status_code == 200
    delivery = Delivery.objects.get()
    assert delivery.subject == "Gala on Saturday 17 April 2027"
    assert delivery.text_body == "Doors at 19:00, ends ."
    assert delivery.html_body == "<p>Saturday 17 April 2027, 19:00</p>"


def test_a_moment_at_the_end_of_time_east_of_utc_renders_instead_of_failing():
    from templates.rendering import event_time

    assert "9999" in str(event_time("9999-12-31T23:30:00+00:00", "Asia/Tokyo"))
