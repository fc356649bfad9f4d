"""Tickets end to end: a template with the QR code and the calendar invite, sent to a guest
through the real providers' fakes; what arrived parsed with the ``email`` package, the QR
code read back from its PNG (zxing-cpp) and let in at the door once, the invite read with
icalendar."""

import base64
import re
import urllib.request
from datetime import datetime, timedelta
from email import message_from_string, policy
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import icalendar
import png
import pytest
import zxingcpp
from django.urls import reverse
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from accounts.models import Membership
from comms.models import Delivery
from guests.models import Attendee, Event
from guests.tokens import checkin_token_read
from tests.conftest import member_client
from tests.fakes.smtp_server import Recorder

PARIS = ZoneInfo("Europe/Paris")
TICKET = {
    "name": "Ticket with QR",
    "subject": "Your ticket for {{ event.name }}",
    "htmlBody": '<p>Hi {{ firstName }}</p><img src="{{ ticket_qr_src }}" alt="Your QR code">',
    "textBody": "Hi {{ firstName }}, your code: {{ checkinToken }}",
    "attachQr": True, "attachIcs": True,
}


@pytest.fixture
def event(api) -> dict[str, Any]:
    response = api.post("/checkin/v1/api/event", {
        "name": "Spring Gala", "venue": "Grand Hall, 1 Rue de Rivoli",
        "startsAt": "2027-04-17T19:00:00+02:00", "endsAt": "2027-04-17T23:30:00+02:00",
        "timeZone": "Europe/Paris"})
    assert response.status_code == 201, response.content
    return response.json()


def ticket_template(api, **changes: Any) -> str:
    response = api.post("/comms/v1/api/comms/template", {**TICKET, **changes})
    assert response.status_code == 201, response.content
    return response.json()["id"]


def add_guest(api, event_id: str, template_id: str, **fields: Any) -> Delivery:
    body = {"id": fields.pop("id", "0b5f7c1e-8d2a-4e43-9a57-3f1c2d4e5f60"), "firstName": "Jane",
            "lastName": "Smith", "email": "jane@example.com", "eventId": event_id,
            "commsTemplateId": template_id, **fields}
    response = api.post("/checkin/v1/api/guest", body)
    assert response.status_code == 200, response.content
    return Delivery.objects.get(id=response.json()["attendeeInvitationId"])


def resend(api, attendee_id: str, template_id: str) -> Delivery:
    response = api.post("/comms/v1/api/comms/send", {"attendeeId": attendee_id,
                                                    "templateId": template_id})
    assert response.status_code == 200, response.content
    return Delivery.objects.get(id=response.json()["attendeeInvitationId"])


def qr_text(data: bytes) -> str:
    """The text of the one QR code in a PNG, as a door's scanner reads it."""
    width, height, rows, info = png.Reader(bytes=data).asDirect()
    assert info["planes"] == 1, info  # greyscale, as segno writes it
    top = 2 ** info["bitdepth"] - 1
    pixels = bytes(v * 255 // top for row in rows for v in row)
    [found] = zxingcpp.read_barcodes(memoryview(pixels).cast("B", (height, width)))
    assert found.format == zxingcpp.BarcodeFormat.QRCode
    return found.text


def files(message: Any) -> dict[str, Any]:
    return {part.get_filename(): part for part in message.walk() if part.get_filename()}


def invite(data: bytes) -> tuple[icalendar.Calendar, icalendar.Event]:
    calendar = icalendar.Calendar.from_ical(data)
    [vevent] = calendar.walk("VEVENT")
    return calendar, vevent


# --- the QR code ---------------------------------------------------------------------------


def test_a_tickets_qr_code_lets_its_guest_in_once(api, event, smtp: Recorder):
    delivery = add_guest(api, event["id"], ticket_template(api))
    assert delivery.status == "sent", delivery.failure_reason
    [message] = smtp.messages
    html = message.get_body(("html",)).get_content()
    assert '<img src="cid:ticket-qr"' in html
    related = next(p for p in message.walk() if p.get_content_type() == "multipart/related")
    [inline] = [p for p in related.iter_parts() if p["Content-ID"] == "<ticket-qr>"]
    attached = files(message)["ticket.png"]
    assert attached.get_content_disposition() == "attachment"
    token = qr_text(inline.get_content())
    assert qr_text(attached.get_content()) == token
    assert str(checkin_token_read(token).attendee_id) == "0b5f7c1e-8d2a-4e43-9a57-3f1c2d4e5f60"
    assert token in message.get_body(("plain",)).get_content()  # {{ checkinToken }}

    first = api.post("/checkin/v1/api/checkin", {"token": token})
    again = api.post("/checkin/v1/api/checkin", {"token": token})
    assert first.status_code == 200, first.content
    assert first.json()["attendeeId"] == "0b5f7c1e-8d2a-4e43-9a57-3f1c2d4e5f60"
    assert again.status_code == 409 and again.json()["error"] == "already_checked_in"
    assert Attendee.objects.get(id=first.json()["attendeeId"]).checked_in_at is not None


def test_a_template_that_does_not_show_the_qr_code_gets_it_as_a_file_only(
        api, event, smtp: Recorder):
    add_guest(api, event["id"], ticket_template(
        api, htmlBody="<p>Hi {{ firstName }}</p>", attachIcs=False))
    [message] = smtp.messages
    assert list(files(message)) == ["ticket.png"]
    assert not any(p["Content-ID"] for p in message.walk())
    assert qr_text(files(message)["ticket.png"].get_content())


def test_a_template_without_ticket_flags_sends_plain_mail(api, event, template_id,
                                                         smtp: Recorder):
    delivery = add_guest(api, event["id"], template_id)
    [message] = smtp.messages
    assert message.get_content_type() == "multipart/alternative" and not files(message)
    assert delivery.context["checkinToken"]  # stored all the same: a later resend may use it


# --- the calendar invite ---------------------------------------------------------------------


def test_the_invite_is_the_event_in_its_zone_and_a_later_one_replaces_it(
        api, event, smtp: Recorder):
    template_id = ticket_template(api)
    first = add_guest(api, event["id"], template_id)
    stored = Event.objects.get(id=event["id"])  # staff move the event an hour later
    stored.starts_at += timedelta(hours=1)
    stored.save()
    second = resend(api, str(first.owner_id), template_id)
    assert (first.status, second.status) == ("sent", "sent")

    invites = [files(m)["invite.ics"] for m in smtp.messages]
    assert all(p.get_content_type() == "text/calendar" and p.get_param("method") == "REQUEST"
               for p in invites)
    (calendar, one), (_, two) = (invite(p.get_payload(decode=True)) for p in invites)
    assert calendar["METHOD"] == "REQUEST"
    [zone] = calendar.walk("VTIMEZONE")
    assert zone["TZID"] == "Europe/Paris"
    assert one["DTSTART"].params["TZID"] == "Europe/Paris"
    assert one["DTSTART"].dt == datetime(2027, 4, 17, 19, 0, tzinfo=PARIS)
    assert one["DTEND"].dt == datetime(2027, 4, 17, 23, 30, tzinfo=PARIS)
    assert two["DTSTART"].dt == datetime(2027, 4, 17, 20, 0, tzinfo=PARIS)
    assert str(one["SUMMARY"]) == "Spring Gala"
    assert str(one["LOCATION"]) == "Grand Hall, 1 Rue de Rivoli"
    assert str(one["ORGANIZER"]) == "mailto:tickets@herald.localhost"
    assert one["ORGANIZER"].params["CN"] == "Acme Events"
    assert str(one["ATTENDEE"]) == "mailto:jane@example.com"
    assert one["ATTENDEE"].params["CN"] == "Jane Smith"
    uid = f"{event['id']}-0b5f7c1e-8d2a-4e43-9a57-3f1c2d4e5f60@herald"
    assert str(one["UID"]) == str(two["UID"]) == uid
    assert two["SEQUENCE"] > one["SEQUENCE"]


def test_an_event_without_a_start_has_no_invite_and_the_outbox_says_so(api, keys):
    event_id = api.post("/checkin/v1/api/event", {"name": "Date to follow"}).json()["id"]
    delivery = add_guest(api, event_id, ticket_template(api))
    assert delivery.status == "sent" and delivery.provider == "outbox"
    client = member_client(keys.account, "support", Membership.Role.SUPPORT)
    page = client.get(reverse("admin:comms_outboxmessage_change", args=[delivery.id]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "No calendar invite: the event has no start time." in text
    assert "ticket.png" in text and "invite.ics" not in text


# --- every provider, and the outbox ------------------------------------------------------------


def test_the_outbox_page_shows_and_offers_each_file(api, event, keys):
    delivery = add_guest(api, event["id"], ticket_template(api))
    client = member_client(keys.account, "support", Membership.Role.SUPPORT)
    page = client.get(reverse("admin:comms_outboxmessage_change", args=[delivery.id]))
    links = dict((name, base64.b64decode(data)) for data, name in re.findall(
        r'href="data:[^;"]+;base64,([^"]+)" download="([^"]+)"', page.content.decode()))
    assert set(links) == {"ticket-qr.png", "ticket.png", "invite.ics"}
    assert checkin_token_read(qr_text(links["ticket.png"])) is not None
    _, vevent = invite(links["invite.ics"])
    assert str(vevent["SUMMARY"]) == "Spring Gala"
    assert '<img src="data:image/png;base64,' in page.content.decode()
    other = member_client(_other_account(), "stranger")
    assert other.get(reverse("admin:comms_outboxmessage_change",
                             args=[delivery.id])).status_code in (302, 404)


def _other_account():
    from accounts.services import account_create

    return account_create(name="Someone Else").account


def test_a_ticket_through_sendgrid(api, event, sendgrid):
    delivery = add_guest(api, event["id"], ticket_template(api))
    assert delivery.status == "sent", delivery.failure_reason
    [request] = sendgrid.messages
    attached = {a["filename"]: a for a in request.body["attachments"]}
    assert attached["ticket-qr.png"]["content_id"] == "ticket-qr"
    assert attached["ticket-qr.png"]["disposition"] == "inline"
    assert checkin_token_read(qr_text(base64.b64decode(attached["ticket.png"]["content"])))
    assert attached["invite.ics"]["type"] == "text/calendar; method=REQUEST"
    _, vevent = invite(base64.b64decode(attached["invite.ics"]["content"]))
    assert vevent["DTSTART"].params["TZID"] == "Europe/Paris"


@pytest.fixture
def ses(settings, moto_url) -> str:
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"))
    boto3.client("sesv2", region_name="us-east-1", endpoint_url=moto_url).create_email_identity(
        EmailIdentity="herald.localhost")
    settings.HERALD_EMAIL_PROVIDER = "ses"
    settings.HERALD_SES_REGION = "us-east-1"
    settings.HERALD_SES_ENDPOINT_URL = moto_url
    settings.HERALD_SES_CONFIGURATION_SET = ""
    return moto_url


def test_a_ticket_through_ses(api, event, ses):
    delivery = add_guest(api, event["id"], ticket_template(api))
    assert delivery.status == "sent", delivery.failure_reason
    [sent] = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    message = message_from_string(sent.raw_data, policy=policy.default)
    assert set(files(message)) == {"ticket-qr.png", "ticket.png", "invite.ics"}
    assert checkin_token_read(qr_text(files(message)["ticket.png"].get_content()))
    invite(files(message)["invite.ics"].get_payload(decode=True))


# --- size limits ------------------------------------------------------------------------------


def test_a_ticket_over_the_attachment_limit_fails_without_calling_the_provider(
        api, event, smtp: Recorder, settings):
    settings.HERALD_MAX_ATTACHMENT_BYTES = 500
    delivery = add_guest(api, event["id"], ticket_template(api))
    assert (delivery.status, delivery.failure_type) == ("failed", "attachments_too_large")
    assert "over the 500 bytes allowed (HERALD_MAX_ATTACHMENT_BYTES)" in delivery.failure_reason
    assert "ticket.png" in delivery.failure_reason
    assert smtp.messages == []
