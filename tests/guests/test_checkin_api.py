"""``POST /checkin/v1/api/checkin``: a scanned ticket lets its guest in once; the second scan
is a 409 saying when and by whom; forged, other account's, other mode's, cancelled (deleted),
wrong-event and closed tickets are refused and change nothing; ``guest.checked_in`` reaches a
real receiver."""

import re
import uuid
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import IdempotentRequest
from guests.models import Attendee
from guests.tokens import checkin_token, ticket_token
from tests.conftest import concurrently, guest, make_client
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.webhooks.test_delivery import Hooks
from webhooks.models import Message

CHECKIN = "/checkin/v1/api/checkin"


def _guest(api, event_id: str, **fields) -> Attendee:
    body = guest(event_id, firstName="Ann", lastName="Lee", **fields)
    assert api.post("/checkin/v1/api/guest", body).status_code == 200
    return Attendee.objects.get(id=body["id"])


def _nobody_in() -> bool:
    return not Attendee.objects.filter(checked_in_at__isnull=False).exists()


def test_a_scanned_ticket_lets_the_guest_in_once(api, event_id):
    ann = _guest(api, event_id)
    token = ticket_token(ann)

    first = api.post(CHECKIN, {"token": token, "door": "door 2", "eventId": event_id})

    assert first.status_code == 200, first.content
    ann.refresh_from_db()
    assert ann.checked_in_at is not None and ann.checked_in_by == "door 2"
    body = first.json()
    assert body == {"attendeeId": str(ann.id), "firstName": "Ann", "lastName": "Lee",
                    "correlationId": "order-2026-0042", "eventId": event_id,
                    "eventName": "Spring Gala", "checkedInBy": "door 2",
                    "checkedInAt": ann.checked_in_at.strftime("%Y-%m-%dT%H:%M:%SZ")}

    second = api.post(CHECKIN, {"token": token, "door": "door 5"})

    assert second.status_code == 409
    clock = ann.checked_in_at.astimezone(ZoneInfo(ann.event.time_zone)).strftime("%H:%M")
    assert second.json() == {
        "error": "already_checked_in", "message": f"Already checked in at {clock} (door 2).",
        "attendeeId": str(ann.id), "checkedInAt": body["checkedInAt"],
        "checkedInBy": "door 2"}
    again = Attendee.objects.get(id=ann.id)
    assert (again.checked_in_at, again.checked_in_by) == (ann.checked_in_at, "door 2")


def test_without_a_door_the_key_is_who_let_the_guest_in(api, event_id):
    ann = _guest(api, event_id)
    response = api.post(CHECKIN, {"token": ticket_token(ann), "scannedBy": "Sam"})
    assert response.json()["checkedInBy"] == "Sam"
    bea = _guest(api, event_id)
    prefix = api.keys.live_key[:12]
    assert api.post(CHECKIN, {"token": ticket_token(bea)}).json()["checkedInBy"] == (
        f"key {prefix}…")


@pytest.mark.django_db(transaction=True)
def test_two_doors_scanning_at_once_let_the_guest_in_once(keys):
    event = make_client(keys).post("/checkin/v1/api/event", {"name": "Gala"}, format="json")
    body = guest(event.json()["id"])
    assert make_client(keys).post("/checkin/v1/api/guest", body, format="json").status_code == 200
    token = ticket_token(Attendee.objects.get(id=body["id"]))

    responses = concurrently(6, lambda i: make_client(keys).post(
        CHECKIN, {"token": token, "door": f"door {i}"}, format="json"))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 409, 409, 409, 409, 409], statuses
    winner = next(r.json() for r in responses if r.status_code == 200)
    ann = Attendee.objects.get(id=body["id"])
    assert ann.checked_in_by == winner["checkedInBy"]
    # Every refused door names the one that let the guest in.
    assert {r.json()["checkedInBy"] for r in responses if r.status_code == 409} == {
        winner["checkedInBy"]}


@pytest.mark.parametrize(("token", "error"), [
    ("tampered", "invalid_token"),
    ("not a ticket", "invalid_token"),
    ("", "validation_error"),
    ("x" * 201, "validation_error"),
    (12345, "validation_error"),
    (None, "validation_error"),
])
def test_a_forged_or_damaged_token_is_a_400_and_lets_no_one_in(api, event_id, token, error):
    ann = _guest(api, event_id)
    if token == "tampered":  # one character of the signature changed
        real = ticket_token(ann)
        token = real[:-1] + ("A" if real[-1] != "A" else "B")
    response = api.post(CHECKIN, {"token": token})
    assert response.status_code == 400, response.content
    assert response.json()["error"] == error
    assert _nobody_in()


def test_a_ticket_signed_for_no_guest_of_ours_is_a_404(api, event_id):
    """A guest deleted since the ticket was sent (a cancelled ticket), or never ours."""
    ann = _guest(api, event_id)
    token = ticket_token(ann)
    ann.delete()
    for scanned in (token, checkin_token(uuid.uuid4(), "")):
        response = api.post(CHECKIN, {"token": scanned})
        assert response.status_code == 404
        assert response.json() == {"error": "ticket_not_found",
                                   "message": "No ticket with this id."}


def test_a_deleted_guests_ticket_stays_refused_when_its_id_is_added_again(api, event_id):
    """Guest ids are the caller's (a re-imported file gives the same ones): the guest added
    again under the deleted one's id has a ticket of its own, and the old one lets no one in."""
    ann = _guest(api, event_id, id="5f1b5c0e-0000-4000-8000-00000000beef")
    old = ticket_token(ann)
    ann.delete()
    again = _guest(api, event_id, id="5f1b5c0e-0000-4000-8000-00000000beef",
                   email="someone.else@example.com")
    assert ticket_token(again) != old
    assert api.post(CHECKIN, {"token": old}).status_code == 404
    assert _nobody_in()
    assert api.post(CHECKIN, {"token": ticket_token(again)}).status_code == 200


def test_another_accounts_ticket_is_not_found_and_not_let_in(api, other_api, event_id):
    ann = _guest(api, event_id)
    response = other_api.post(CHECKIN, {"token": ticket_token(ann)})
    # The same answer as a ticket of nobody's: no oracle of another account's guests.
    assert response.status_code == 404 and response.json()["error"] == "ticket_not_found"
    assert _nobody_in()
    assert api.post(CHECKIN, {"token": ticket_token(ann)}).status_code == 200


def test_a_test_key_rehearses_on_test_guests_and_a_live_key_lets_real_guests_in(
        api, sandbox_api, event_id):
    rehearsal = _guest(sandbox_api, event_id)
    real = _guest(api, event_id, email="real@example.com")
    assert (rehearsal.mode, real.mode) == ("test", "live")

    assert api.post(CHECKIN, {"token": ticket_token(rehearsal)}).status_code == 404
    assert sandbox_api.post(CHECKIN, {"token": ticket_token(real)}).status_code == 404
    assert _nobody_in()

    assert sandbox_api.post(CHECKIN, {"token": ticket_token(rehearsal)}).status_code == 200
    assert api.post(CHECKIN, {"token": ticket_token(real)}).status_code == 200


def test_by_attendee_id_needs_an_admin_key(api, event_id):
    ann = _guest(api, event_id)
    refused = api.post(CHECKIN, {"attendeeId": str(ann.id)})
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    assert _nobody_in()
    admin = APIClient()
    admin.credentials(HTTP_AUTHORIZATION=f"Bearer {api.keys.admin_key}",
                      HTTP_OCP_APIM_SUBSCRIPTION_KEY=api.keys.subscription_key)
    with api.capture(execute=True):
        response = admin.post(CHECKIN, {"attendeeId": str(ann.id), "door": "desk"},
                              format="json")
    assert response.status_code == 200 and response.json()["checkedInBy"] == "desk"
    with api.capture(execute=True):
        unknown = admin.post(CHECKIN, {"attendeeId": str(uuid.uuid4())}, format="json")
    assert unknown.status_code == 404 and unknown.json()["error"] == "attendee_not_found"


@pytest.mark.parametrize("body", [
    {}, {"door": "door 2"},
    {"token": "x", "attendeeId": "0b5f7c1e-8d2a-4e43-9a57-3f1c2d4e5f60"},
    {"token": "x", "tokn": "y"},
    {"token": "x", "eventId": "not-a-guid"},
    {"token": "x", "door": "d" * 101},
])
def test_a_malformed_request_is_a_400_naming_the_problem(api, body):
    response = api.post(CHECKIN, body)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "validation_error" and response.json()["message"]


def test_a_ticket_for_another_event_is_refused_at_this_events_door(api, event_id):
    ann = _guest(api, event_id)
    other = api.post("/checkin/v1/api/event", {"name": "Autumn Fair"}).json()["id"]
    response = api.post(CHECKIN, {"token": ticket_token(ann), "eventId": other})
    assert response.status_code == 422
    assert response.json()["error"] == "wrong_event"
    assert response.json()["message"] == "Not a ticket for this event: it is for “Spring Gala”."
    assert _nobody_in()


def test_check_in_closes_a_day_after_the_event(api):
    now = timezone.now()

    def event(**times) -> str:
        body = {"name": "Past", **{k: v.isoformat() for k, v in times.items()}}
        return api.post("/checkin/v1/api/event", body).json()["id"]

    ended = _guest(api, event(startsAt=now - timedelta(days=3), endsAt=now - timedelta(hours=25)))
    started = _guest(api, event(startsAt=now - timedelta(hours=25)))
    response = api.post(CHECKIN, {"token": ticket_token(ended)})
    assert response.status_code == 422 and response.json()["error"] == "checkin_closed"
    assert re.fullmatch(r"Check-in for “Past” closed (at|on \d+ \w+ at) \d\d:\d\d, a day after "
                        r"the event\.", response.json()["message"]), response.json()
    assert api.post(CHECKIN, {"token": ticket_token(started)}).status_code == 422
    assert _nobody_in()
    # Still open 23 h after the end; an event without dates never closes.
    late = _guest(api, event(startsAt=now - timedelta(hours=30), endsAt=now - timedelta(hours=23)))
    undated = _guest(api, event())
    assert api.post(CHECKIN, {"token": ticket_token(late)}).status_code == 200
    assert api.post(CHECKIN, {"token": ticket_token(undated)}).status_code == 200


def test_a_replayed_idempotency_key_answers_the_first_200(api, event_id):
    ann = _guest(api, event_id)
    scan = {"token": ticket_token(ann), "door": "door 1"}
    first = api.post(CHECKIN, scan, HTTP_IDEMPOTENCY_KEY="scan-1")
    again = api.post(CHECKIN, scan, HTTP_IDEMPOTENCY_KEY="scan-1")
    assert first.status_code == again.status_code == 200
    assert again.content == first.content and again["Idempotent-Replayed"] == "true"
    # Without the key (or with another) the second scan is the 409 it is.
    assert api.post(CHECKIN, scan, HTTP_IDEMPOTENCY_KEY="scan-2").status_code == 409
    assert not IdempotentRequest.objects.filter(key="scan-2").exists()


@pytest.fixture
def receiver(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    with WebhookReceiver() as server:
        yield server


def _endpoint(keys, capture, receiver, **fields) -> None:
    hooks = Hooks(keys, capture)
    response = hooks.post("/v1/webhooks", {"url": receiver.url,
                                           "enabled_events": ["guest.checked_in"], **fields})
    assert response.status_code == 201, response.content
    receiver.secret = response.json()["webhook"]["signing_secret"]


def test_the_guest_checked_in_webhook_reaches_the_receiver(api, sandbox_api, event_id,
                                                           receiver):
    _endpoint(api.keys, api.capture, receiver)
    ann = _guest(api, event_id)
    rehearsal = _guest(sandbox_api, event_id)

    answer = api.post(CHECKIN, {"token": ticket_token(ann), "door": "door 2"}).json()
    sandbox_api.post(CHECKIN, {"token": ticket_token(rehearsal)})

    assert [r.error for r in receiver.received] == [""]  # verified; the rehearsal held back
    payload = receiver.verified[0].payload
    assert payload["type"] == "guest.checked_in"
    assert payload["data"] == {"attendeeId": str(ann.id), "eventId": event_id,
                               "checkedInAt": answer["checkedInAt"], "checkedInBy": "door 2",
                               "correlationId": "order-2026-0042", "mode": "live"}


def test_a_refused_scan_emits_nothing(api, event_id, receiver):
    _endpoint(api.keys, api.capture, receiver)
    ann = _guest(api, event_id)
    api.post(CHECKIN, {"token": ticket_token(ann)})
    api.post(CHECKIN, {"token": ticket_token(ann)})  # 409
    api.post(CHECKIN, {"token": checkin_token(uuid.uuid4(), "")})  # 404
    assert Message.objects.filter(event_type="guest.checked_in").count() == 1
    assert len(receiver.received) == 1


def test_a_rehearsal_reaches_an_endpoint_that_includes_test_events(sandbox_api, event_id,
                                                                   receiver):
    _endpoint(sandbox_api.keys, sandbox_api.capture, receiver, include_test_events=True)
    rehearsal = _guest(sandbox_api, event_id)
    sandbox_api.post(CHECKIN, {"token": ticket_token(rehearsal)})
    assert [r.payload["data"]["mode"] for r in receiver.verified] == ["test"]


def test_the_schema_documents_every_answer_in_the_familys_shape():
    from drf_spectacular.generators import SchemaGenerator

    operation = SchemaGenerator().get_schema(request=None, public=True)["paths"][
        CHECKIN]["post"]
    answers = operation["responses"]
    assert set(answers) >= {"200", "400", "401", "403", "404", "409", "422", "429"}
    assert answers["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CheckInOut"}
    # Already in, or the idempotency layer's own 409s (a key reused, still running).
    assert answers["409"]["content"]["application/json"]["schema"] == {"anyOf": [
        {"$ref": "#/components/schemas/AlreadyCheckedInOut"},
        {"$ref": "#/components/schemas/CommsError"}]}
    for status in ("400", "403", "404"):
        assert answers[status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/CommsError"}, status
    assert answers["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CheckInRefusedOut"}  # its ids and closedAt declared
    assert "wrong_event" in answers["422"]["description"]
    assert "Idempotency-Key" in {p["name"] for p in operation["parameters"]}
