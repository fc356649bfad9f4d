"""Spec 004: send_at on POST /v1/send/{event}, the delivery's pending/scheduled status and
time in its listing and trace, and DELETE /v1/deliveries/{uuid}."""

import pytest

from comms.dispatch import delivery_dispatch
from comms.models import Delivery
from tests.notifications.test_api import V004
from tests.scheduling.helpers import ahead, later, release_at

WELCOME = {"identifier": "user.welcome", "name": "Welcome", "channels": ["email"],
           "templates": [{"channel": "email", "subject": "Welcome {{name | friend}}",
                          "body": "Hello {{name | friend}}."}]}


@pytest.fixture
def v4(keys, django_capture_on_commit_callbacks, settings) -> V004:
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0
    client = V004(keys.live_key, django_capture_on_commit_callbacks)
    assert client.post("/v1/events", WELCOME).status_code == 201
    return client


@pytest.fixture
def sandbox(keys, django_capture_on_commit_callbacks, v4) -> V004:
    return V004(keys.test_key, django_capture_on_commit_callbacks)


@pytest.fixture
def other(db, django_capture_on_commit_callbacks) -> V004:
    from accounts.services import account_create

    return V004(account_create(name="Other Org").live_key, django_capture_on_commit_callbacks)


def schedule(client: V004, **fields) -> str:
    response = client.post("/v1/send/user.welcome", {
        "to": ["ann@example.com", "bob@example.com"], "send_at": ahead(hours=3), **fields})
    assert response.status_code == 200, response.content
    return response.json()


def test_a_send_at_ahead_answers_pending_scheduled_with_its_time(v4, sendgrid,
                                                                  django_capture_on_commit_callbacks):
    body = schedule(v4)

    assert body["success"] is True and len(body["deliveries"]) == 2
    assert (body["status"], body["detailed_status"]) == ("pending", "scheduled")
    ids = [d["email"] for d in body["deliveries"]]
    listed = v4.get("/v1/deliveries", {"status": "pending"}).json()["data"]["deliveries"]
    assert {d["uuid"] for d in listed} == set(ids)
    assert all(d["detailed_status"] == "scheduled" and d["send_at"] == body["send_at"]
               for d in listed)
    trace = v4.get(f"/v1/deliveries/{ids[0]}/trace").json()["data"]["delivery"]
    assert trace["send_at"] == body["send_at"]
    delivery_dispatch(delivery_id=None)
    assert sendgrid.messages == []

    assert release_at(later(hours=4), django_capture_on_commit_callbacks) == 2
    assert sorted(r.email for r in sendgrid.recipients()) == ["ann@example.com",
                                                              "bob@example.com"]
    sent = v4.get(f"/v1/deliveries/{ids[0]}/trace").json()["data"]["delivery"]
    assert (sent["status"], sent["send_at"]) == ("sent", None)


def test_a_send_now_has_no_schedule_fields(v4):
    body = v4.post("/v1/send/user.welcome", {"to": "ann@example.com",
                                              "send_at": ahead(minutes=-5)}).json()
    assert set(body) == {"success", "deliveries"}


@pytest.mark.parametrize("value", ["2027-04-17T19:00:00", ahead(days=367), "soon", 17, {}])
def test_a_bad_send_at_is_a_validation_error_and_queues_nothing(v4, value):
    response = v4.post("/v1/send/user.welcome", {"to": "ann@example.com", "send_at": value})

    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "VALIDATION_ERROR" and error["error"].startswith("send_at: ")
    assert Delivery.objects.count() == 0


def test_delete_cancels_one_and_the_other_is_still_sent(v4, sendgrid,
                                                        django_capture_on_commit_callbacks):
    ann, bob = (d["email"] for d in schedule(v4)["deliveries"])

    response = v4.delete(f"/v1/deliveries/{ann}")

    assert response.status_code == 200, response.content
    delivery = response.json()["data"]["delivery"]
    assert (delivery["status"], delivery["detailed_status"]) == ("failed", "cancelled")
    assert delivery["send_at"] is None
    release_at(later(hours=4), django_capture_on_commit_callbacks)
    assert [r.email for r in sendgrid.recipients()] == ["bob@example.com"]
    refused = v4.delete(f"/v1/deliveries/{bob}")
    assert refused.status_code == 409
    assert refused.json() == {"error": "This delivery can no longer be cancelled: it is sent.",
                              "code": "CONFLICT"}


def test_another_account_or_a_test_key_gets_404(v4, sandbox, other):
    ann = schedule(v4)["deliveries"][0]["email"]

    for client in (other, sandbox):
        response = client.delete(f"/v1/deliveries/{ann}")
        assert response.status_code == 404
        assert response.json()["code"] == "NOT_FOUND"
    assert v4.delete("/v1/deliveries/nope").status_code == 404
    assert Delivery.objects.get(id=ann).status == "scheduled"


def test_a_test_key_cancels_its_own_rehearsal(sandbox):
    ann = schedule(sandbox)["deliveries"][0]["email"]
    assert sandbox.delete(f"/v1/deliveries/{ann}").status_code == 200


def test_another_family_s_delivery_is_not_found_here(api, event_id, template_id, v4):
    from tests.conftest import guest

    ticket = api.post("/checkin/v1/api/guest", guest(event_id, template_id,
                                                     sendAt=ahead(hours=1))).json()
    response = v4.delete(f"/v1/deliveries/{ticket['attendeeInvitationId']}")
    assert response.status_code == 404
