"""Check-in (spec 000): sendAt on the atomic guest create and the two-step send, the scheduled
send's status and time in every answer, DELETE on its id, and the 422 rule beside them."""

import uuid
from datetime import timedelta

import pytest

from comms.dispatch import delivery_dispatch
from comms.models import Delivery, DeliveryEvent
from tests.conftest import guest
from tests.scheduling.helpers import ahead, delete, later, release_at

SEND = "/comms/v1/api/comms/send"


def two_step(api, attendee_id, template_id, **fields):
    return api.post(SEND, {"attendeeId": attendee_id, "templateId": template_id, **fields})


@pytest.fixture
def attendee(api, event_id) -> str:
    body = guest(event_id)
    assert api.post("/checkin/v1/api/guest", body).status_code == 200
    return body["id"]


def test_guest_created_with_a_future_send_at_waits_scheduled(api, event_id, template_id,
                                                              sendgrid):
    body = guest(event_id, template_id, sendAt=ahead(hours=2))
    response = api.post("/checkin/v1/api/guest", body)

    assert response.status_code == 200, response.content
    data = response.json()
    delivery = Delivery.objects.get(id=data["attendeeInvitationId"])
    assert delivery.status == "scheduled"
    assert data["sendAt"] == delivery.next_attempt_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    delivery_dispatch(delivery_id=None)  # a worker's kick claims nothing not due
    assert sendgrid.messages == []
    # The retry of the create and the guest's GET show it scheduled, at the same time.
    assert api.post("/checkin/v1/api/guest", body).json()["sendAt"] == data["sendAt"]
    assert api.get(f"/checkin/v1/api/guest/{body['id']}").json()["sendAt"] == data["sendAt"]
    invitation = api.get(f"{SEND}/{delivery.id}").json()
    assert (invitation["status"], invitation["sendAt"]) == ("scheduled", data["sendAt"])


def test_a_scheduled_ticket_is_sent_once_due(api, event_id, template_id, sendgrid,
                                             django_capture_on_commit_callbacks):
    data = api.post("/checkin/v1/api/guest",
                    guest(event_id, template_id, sendAt=ahead(minutes=30))).json()

    assert release_at(later(minutes=29), django_capture_on_commit_callbacks) == 0
    assert sendgrid.messages == []
    assert release_at(later(minutes=31), django_capture_on_commit_callbacks) == 1

    delivery = Delivery.objects.get(id=data["attendeeInvitationId"])
    assert delivery.status == "sent"
    assert [r.email for r in sendgrid.recipients()] == ["jane@example.com"]
    assert api.get(f"{SEND}/{delivery.id}").json()["sendAt"] is None


def test_a_past_send_at_sends_now(api, event_id, template_id):
    data = api.post("/checkin/v1/api/guest",
                    guest(event_id, template_id, sendAt=ahead(hours=-3))).json()
    assert data["sendAt"] is None
    assert Delivery.objects.get(id=data["attendeeInvitationId"]).status == "sent"


@pytest.mark.parametrize("value, words", [
    ("2027-04-17T19:00:00", "offset"),
    (ahead(days=400), "at most a year"),
    ("next tuesday", "ISO 8601"),
    (1807000000, "ISO 8601"),
])
def test_a_bad_send_at_is_a_400_and_creates_nothing(api, event_id, template_id, value, words):
    body = guest(event_id, template_id, sendAt=value)
    response = api.post("/checkin/v1/api/guest", body)

    assert response.status_code == 400
    error = response.json()
    assert error["error"] == "validation_error" and words in error["fields"]["sendAt"]
    assert api.get(f"/checkin/v1/api/guest/{body['id']}").status_code == 404
    refused = two_step(api, str(uuid.uuid4()), template_id, sendAt=value)
    assert refused.status_code == 400 and "sendAt" in refused.json()["fields"]
    assert Delivery.objects.count() == 0


def test_send_at_without_a_template_is_refused(api, event_id):
    response = api.post("/checkin/v1/api/guest", guest(event_id, sendAt=ahead(hours=1)))
    assert response.status_code == 400
    assert "commsTemplateId" in response.json()["fields"]["sendAt"]


def test_two_step_send_scheduled_then_cancelled_never_reaches_the_provider(
        api, attendee, template_id, sendgrid, django_capture_on_commit_callbacks):
    response = two_step(api, attendee, template_id, sendAt=ahead(days=1))
    assert response.status_code == 200, response.content
    sent = response.json()
    assert sent["status"] == "scheduled" and sent["sendAt"].endswith("Z")

    cancelled = delete(api, f"{SEND}/{sent['attendeeInvitationId']}")

    assert cancelled.status_code == 200, cancelled.content
    body = cancelled.json()
    assert (body["status"], body["failureType"], body["sendAt"]) == (
        "cancelled", "cancelled", None)
    assert [e["name"] for e in body["events"]] == ["comms.cancelled"]
    assert release_at(later(days=2), django_capture_on_commit_callbacks) == 0
    delivery_dispatch(delivery_id=None)
    assert sendgrid.attempts == 0
    assert api.get(f"{SEND}/{sent['attendeeInvitationId']}").json()["status"] == "cancelled"
    again = delete(api, f"{SEND}/{sent['attendeeInvitationId']}")
    assert again.status_code == 409
    assert again.json() == {"error": "not_cancellable", "message": "This delivery can no "
                            "longer be cancelled: it is cancelled."}


def test_cancel_a_sent_one_is_409_saying_so(api, attendee, template_id):
    sent = two_step(api, attendee, template_id).json()
    assert sent == {"attendeeInvitationId": sent["attendeeInvitationId"], "status": "queued",
                    "sendAt": None}

    response = delete(api, f"{SEND}/{sent['attendeeInvitationId']}")

    assert response.status_code == 409
    assert response.json()["message"].endswith("it is sent.")


def test_cancel_loses_to_a_worker_that_claimed_it(api, attendee, template_id,
                                                  django_capture_on_commit_callbacks):
    sent = two_step(api, attendee, template_id, sendAt=ahead(hours=1)).json()
    delivery = Delivery.objects.get(id=sent["attendeeInvitationId"])
    # Released and claimed by a worker (its row is `sending`) before the DELETE arrives.
    Delivery.objects.filter(id=delivery.id).update(status="sending",
                                                   claimed_at=later(seconds=0))

    response = delete(api, f"{SEND}/{delivery.id}")

    assert response.status_code == 409
    assert response.json()["message"] == ("This delivery can no longer be cancelled: it is "
                                          "sending (a worker is sending it now).")
    assert not DeliveryEvent.objects.filter(name="comms.cancelled").exists()


def test_another_account_or_mode_cannot_cancel(api, other_api, sandbox_api, attendee,
                                               template_id):
    sent = two_step(api, attendee, template_id, sendAt=ahead(hours=1)).json()
    path = f"{SEND}/{sent['attendeeInvitationId']}"

    for caller in (other_api, sandbox_api):
        response = delete(caller, path)
        assert response.status_code == 404
        assert response.json()["error"] == "invitation_not_found"
    assert delete(api, f"{SEND}/not-a-guid").status_code == 404
    assert Delivery.objects.get(id=sent["attendeeInvitationId"]).status == "scheduled"


def test_a_scheduled_send_does_not_block_another(api, attendee, template_id):
    first = two_step(api, attendee, template_id, sendAt=ahead(hours=1))
    second = two_step(api, attendee, template_id, sendAt=ahead(hours=2))
    now = two_step(api, attendee, template_id)

    assert [r.status_code for r in (first, second, now)] == [200, 200, 200]
    assert Delivery.objects.filter(status="scheduled").count() == 2


def test_a_cancelled_send_does_not_hide_the_bounce_before_it(sandbox_api, event_id,
                                                             template_id):
    body = guest(event_id, email="bounce@example.com")
    sandbox_api.post("/checkin/v1/api/guest", body)
    scheduled = two_step(sandbox_api, body["id"], template_id, sendAt=ahead(hours=1)).json()
    bounced = two_step(sandbox_api, body["id"], template_id).json()
    assert Delivery.objects.get(id=bounced["attendeeInvitationId"]).status == "bounced"
    # The bounce was the earlier send: the scheduled one, made after it, is the latest...
    scheduled_at = Delivery.objects.get(id=scheduled["attendeeInvitationId"]).created_at
    Delivery.objects.filter(id=bounced["attendeeInvitationId"]).update(
        created_at=scheduled_at - timedelta(minutes=5))
    # ...until it is cancelled: then the bounce before it decides again.
    assert delete(sandbox_api, f"{SEND}/{scheduled['attendeeInvitationId']}").status_code == 200

    refused = two_step(sandbox_api, body["id"], template_id)

    assert refused.status_code == 422
    assert refused.json()["failureType"] == "bounced"


def test_a_cancelled_send_is_no_failure(api, attendee, template_id):
    sent = two_step(api, attendee, template_id, sendAt=ahead(hours=1)).json()
    delete(api, f"{SEND}/{sent['attendeeInvitationId']}")

    assert two_step(api, attendee, template_id).status_code == 200


def test_a_rehearsal_send_of_a_live_guest_keeps_its_send_at(api, sandbox_api, event_id,
                                                           template_id):
    body = guest(event_id)
    api.post("/checkin/v1/api/guest", body)  # live, no ticket yet

    rehearsal = sandbox_api.post("/checkin/v1/api/guest",
                                 {**body, "commsTemplateId": template_id,
                                  "sendAt": ahead(hours=2)}).json()

    delivery = Delivery.objects.get(id=rehearsal["attendeeInvitationId"])
    assert (delivery.mode, delivery.status) == ("test", "scheduled")
    assert rehearsal["sendAt"] == delivery.next_attempt_at.strftime("%Y-%m-%dT%H:%M:%SZ")
