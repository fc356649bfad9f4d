"""Spec 000's atomic path: create a guest with commsTemplateId, the ticket is rendered and sent."""

import re
import uuid

from django.db import connection
from django.test.utils import CaptureQueriesContext

from comms.models import Delivery, DeliveryEvent
from guests.models import Attendee
from tests.conftest import guest


def test_spec_example_creates_attendee_and_sends_ticket(api, event_id, template_id):
    body = guest(event_id, template_id)
    response = api.post("/checkin/v1/api/guest", body)
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["id"] == body["id"]
    assert data["firstName"] == "Jane" and data["email"] == "jane@example.com"
    assert data["correlationId"] == "order-2026-0042"
    # The APIs' one timestamp format: whole seconds, UTC, "Z" (common.times.iso).
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", data["createdAt"])
    assert api.get(f"/checkin/v1/api/guest/{body['id']}").json()["createdAt"] == data["createdAt"]
    delivery = Delivery.objects.get(id=data["attendeeInvitationId"])
    assert delivery.status == "sent"
    assert delivery.provider == "outbox"
    assert delivery.subject == "Your ticket for Spring Gala"
    assert "Hi Jane, see you at Spring Gala." in delivery.html_body
    sent = DeliveryEvent.objects.get(delivery=delivery, name="comms.sent")
    assert sent.correlation_id == "order-2026-0042"


def test_guest_without_template_sends_nothing(api, event_id):
    response = api.post("/checkin/v1/api/guest", guest(event_id))
    assert response.status_code == 200
    assert response.json()["attendeeInvitationId"] is None
    assert Delivery.objects.count() == 0


def test_same_id_returns_existing_attendee_without_new_send(api, event_id, template_id):
    body = guest(event_id, template_id)
    first = api.post("/checkin/v1/api/guest", body).json()
    again = api.post("/checkin/v1/api/guest", {**body, "firstName": "Changed"})
    assert again.status_code == 200
    assert again.json() == first
    assert Delivery.objects.count() == 1


def test_id_owned_by_another_account_is_409(api, other_api, event_id, template_id):
    body = guest(event_id, template_id)
    api.post("/checkin/v1/api/guest", body)
    other_event = other_api.post("/checkin/v1/api/event", {"name": "Theirs"}).json()["id"]
    response = other_api.post("/checkin/v1/api/guest", {**body, "eventId": other_event})
    assert response.status_code == 409
    assert response.json()["error"] == "id_conflict"


def test_get_guest_and_other_accounts_guest_is_404(api, other_api, event_id, template_id):
    body = guest(event_id, template_id)
    api.post("/checkin/v1/api/guest", body)
    assert api.get(f"/checkin/v1/api/guest/{body['id']}").json()["email"] == "jane@example.com"
    assert other_api.get(f"/checkin/v1/api/guest/{body['id']}").status_code == 404
    assert api.get("/checkin/v1/api/guest/not-a-guid").status_code == 404


def test_unknown_or_foreign_template_creates_nothing(api, other_api, event_id):
    foreign = other_api.post("/comms/v1/api/comms/template", {
        "name": "x", "subject": "s", "textBody": "t"}).json()["id"]
    for template in (foreign, str(uuid.uuid4())):
        response = api.post("/checkin/v1/api/guest", guest(event_id, template))
        assert response.status_code == 404
        assert response.json()["error"] == "template_not_found"
    assert Attendee.objects.count() == 0


def test_unknown_event_is_404(api, template_id):
    response = api.post("/checkin/v1/api/guest", guest(str(uuid.uuid4()), template_id))
    assert response.status_code == 404
    assert response.json()["error"] == "event_not_found"


def test_unverified_account_cannot_send_and_creates_nothing(api, event_id, template_id):
    account = api.keys.account
    account.verified_for_sending = False
    account.save()
    response = api.post("/checkin/v1/api/guest", guest(event_id, template_id))
    assert response.status_code == 403
    assert response.json()["error"] == "account_not_verified"
    assert Attendee.objects.count() == 0 and Delivery.objects.count() == 0


def test_correlation_id_up_to_128_characters(api, event_id, template_id):
    ok = api.post("/checkin/v1/api/guest", guest(event_id, template_id, correlationId="x" * 128))
    assert ok.status_code == 200
    too_long = api.post("/checkin/v1/api/guest",
                        guest(event_id, template_id, correlationId="x" * 129))
    assert too_long.status_code == 400
    assert "correlationId" in too_long.json()["fields"]


def test_correlation_id_is_optional_and_null(api, event_id, template_id):
    body = guest(event_id, template_id)
    del body["correlationId"]
    data = api.post("/checkin/v1/api/guest", body).json()
    assert data["correlationId"] is None
    assert DeliveryEvent.objects.get(name="comms.sent").correlation_id is None


def test_the_atomic_path_writes_guest_and_send_in_one_statement(api, event_id, template_id):
    """On PostgreSQL the guest and its queued send are one ``WITH … INSERT`` (one round trip,
    no BEGIN/COMMIT of its own): both rows or neither, with the ORM's defaults."""
    body = guest(event_id, template_id)
    with CaptureQueriesContext(connection) as queries:
        response = api.post("/checkin/v1/api/guest", body)
    assert response.status_code == 200, response.content
    inserts = [q["sql"] for q in queries if 'INSERT INTO "guests_attendee"' in q["sql"]
               or 'INSERT INTO "comms_delivery"' in q["sql"]]
    assert len(inserts) == 1
    assert 'INSERT INTO "guests_attendee"' in inserts[0]
    assert 'INSERT INTO "comms_delivery"' in inserts[0]
    attendee = Attendee.objects.get(id=body["id"])
    delivery = Delivery.objects.get(attendee=attendee)
    assert attendee.created_at is not None and delivery.created_at is not None
    assert (delivery.recipient, delivery.mode, delivery.attempts) == ("jane@example.com",
                                                                       "live", 1)
