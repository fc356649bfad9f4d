"""Spec 003: SendAt per message of POST /v1/Email/ (its own 400 in Results when bad), the
history's scheduled and cancelled states, and DELETE /v1/Email/{MessageId}."""

import pytest

from comms.dispatch import delivery_dispatch
from comms.models import Delivery
from tests.emails.test_api import brand_id, token_message
from tests.scheduling.helpers import ahead, delete, later, release_at


@pytest.fixture
def brand(api) -> str:
    return brand_id(api)


def send(api, *messages):
    response = api.post("/v1/Email/", {"Messages": list(messages)})
    assert response.status_code == 200, response.content
    return response.json()["Results"]


def test_each_message_has_its_own_time_and_a_bad_one_only_fails_itself(
        api, brand, sendgrid, django_capture_on_commit_callbacks):
    when = ahead(hours=5)
    later_one, now_one, bad, past = send(
        api, token_message(brand, "later@example.com", SendAt=when),
        token_message(brand, "now@example.com"),
        token_message(brand, "bad@example.com", SendAt="2027-04-17 19:00"),
        token_message(brand, "past@example.com", SendAt=ahead(days=-1)))

    assert later_one["State"] == "scheduled" and isinstance(later_one["SendAt"], int)
    assert set(now_one) == set(past) == {"Status", "MessageId"}
    assert bad["Status"] == 400 and bad["Error"].startswith("SendAt: ")
    assert sorted(r.email for r in sendgrid.recipients()) == ["now@example.com",
                                                              "past@example.com"]
    history = {e["MessageId"]: e for e in api.get("/v1/Email/").json()["Emails"]}
    assert history[later_one["MessageId"]]["State"] == "scheduled"
    assert history[later_one["MessageId"]]["SendAt"] == later_one["SendAt"]
    assert "SendAt" not in history[now_one["MessageId"]]
    scheduled = api.get("/v1/Email/?State=scheduled").json()["Emails"]
    assert [e["MessageId"] for e in scheduled] == [later_one["MessageId"]]
    delivery_dispatch(delivery_id=None)
    assert len(sendgrid.recipients()) == 2

    release_at(later(hours=6), django_capture_on_commit_callbacks)
    assert "later@example.com" in [r.email for r in sendgrid.recipients()]


@pytest.mark.parametrize("value", [ahead(days=370), "2027-04-17T19:00:00", 5, True])
def test_a_bad_send_at_is_that_message_s_400(api, brand, value):
    [result] = send(api, token_message(brand, SendAt=value))
    assert result["Status"] == 400 and "MessageId" not in result
    assert Delivery.objects.count() == 0


def test_delete_cancels_it_and_the_history_says_cancelled(
        api, brand, sendgrid, django_capture_on_commit_callbacks):
    [result] = send(api, token_message(brand, SendAt=ahead(hours=1)))

    response = delete(api, f"/v1/Email/{result['MessageId']}")

    assert response.status_code == 200, response.content
    email = response.json()["Email"]
    assert (email["MessageId"], email["State"]) == (result["MessageId"], "cancelled")
    assert "SendAt" not in email
    release_at(later(hours=2), django_capture_on_commit_callbacks)
    assert sendgrid.attempts == 0
    cancelled = api.get("/v1/Email/?State=cancelled").json()["Emails"]
    assert [e["MessageId"] for e in cancelled] == [result["MessageId"]]


def test_a_sent_one_is_409_and_others_404(api, other_api, sandbox_api, brand):
    [sent] = send(api, token_message(brand))
    [waiting] = send(api, token_message(brand, SendAt=ahead(hours=1)))

    refused = delete(api, f"/v1/Email/{sent['MessageId']}")
    assert refused.status_code == 409
    assert refused.json() == {"Error": "This delivery can no longer be cancelled: it is sent."}
    for caller in (other_api, sandbox_api):
        response = delete(caller, f"/v1/Email/{waiting['MessageId']}")
        assert response.status_code == 404
        assert response.json() == {"Error": "No message with this id."}
    assert delete(api, "/v1/Email/nope").status_code == 404
    assert Delivery.objects.get(id=waiting["MessageId"]).status == "scheduled"


def test_a_check_in_send_is_not_cancelled_here(api, event_id, template_id):
    from tests.conftest import guest

    ticket = api.post("/checkin/v1/api/guest", guest(event_id, template_id,
                                                     sendAt=ahead(hours=1))).json()
    assert delete(api, f"/v1/Email/{ticket['attendeeInvitationId']}").status_code == 404
