"""Spec 002: sendAt on POST /api/v1/communications/send queues the channels scheduled instead
of sending now (each result says so, with its id), and DELETE /api/v1/communications/send/{id}
withdraws one until its time."""

import pytest

from accounts.models import ApiKey
from accounts.services import account_create, api_key_create
from comms.dispatch import delivery_dispatch
from comms.models import Delivery
from contacts.services import contact_upsert
from tests.multichannel.test_api import URL, Client, body
from tests.scheduling.helpers import ahead, later, release_at


@pytest.fixture
def admin(keys, django_capture_on_commit_callbacks) -> Client:
    return Client(keys.admin_key, django_capture_on_commit_callbacks)


def cancel(client: Client, delivery_id: str):
    with client.capture(execute=True):
        return client.client.delete(f"{URL}/{delivery_id}")


def email_only(**changes):
    return body(channels=["Email"], phoneNumber=None, userId=None, **changes)


def test_a_send_at_ahead_schedules_each_channel(admin, sendgrid,
                                                django_capture_on_commit_callbacks):
    response = admin.post(URL, body(channels=["Email", "InApp"], sendAt=ahead(hours=2)))

    assert response.status_code == 200, response.content
    email, inapp = response.json()["results"]
    assert (email["success"], email["status"], email["error"]) == (True, "scheduled", None)
    assert email["sendAt"].endswith("Z")
    assert (inapp["success"], inapp["error"]) == (False, "User not found")
    assert "id" not in inapp
    assert Delivery.objects.get(id=email["id"]).status == "scheduled"
    delivery_dispatch(delivery_id=None)
    assert sendgrid.attempts == 0

    assert release_at(later(hours=3), django_capture_on_commit_callbacks) == 1
    assert [r.email for r in sendgrid.recipients()] == ["user@example.com"]


def test_a_scheduled_in_app_message_is_not_in_the_inbox_before_its_time(admin, keys):
    contact_upsert(account=keys.account, data={"externalId": "u-1"})
    response = admin.post(URL, body(channels=["InApp"], userId="u-1", sendAt=ahead(hours=1)))
    [result] = response.json()["results"]
    assert result["status"] == "scheduled"

    inbox = admin.get("/api/v1/communications/inapp", userId="u-1").json()

    assert inbox["items"] == []


@pytest.mark.parametrize("value", ["2027-04-17T19:00:00", ahead(days=400), "tomorrow", 3])
def test_a_bad_send_at_is_a_problem_and_sends_nothing(admin, value):
    response = admin.post(URL, email_only(sendAt=value))

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert "sendAt" in response.json()["errors"]
    assert Delivery.objects.count() == 0


def test_cancel_then_nothing_is_sent(admin, sendgrid, django_capture_on_commit_callbacks):
    [result] = admin.post(URL, email_only(sendAt=ahead(hours=1))).json()["results"]

    response = cancel(admin, result["id"])

    assert response.status_code == 200, response.content
    assert response.json() == {"id": result["id"], "channel": "Email", "status": "cancelled",
                               "sendAt": None, "createdAt": response.json()["createdAt"]}
    release_at(later(hours=2), django_capture_on_commit_callbacks)
    assert sendgrid.attempts == 0


def test_cancel_a_sent_one_is_409_and_others_404(admin, keys, sendgrid,
                                                 django_capture_on_commit_callbacks):
    admin.post(URL, email_only())
    sent = Delivery.objects.get()
    [waiting] = admin.post(URL, email_only(sendAt=ahead(hours=1))).json()["results"]

    refused = cancel(admin, sent.id)
    assert refused.status_code == 409
    assert refused.json()["detail"] == "This delivery can no longer be cancelled: it is sent."
    other = Client(account_create(name="Other").admin_key, django_capture_on_commit_callbacks)
    test_admin = Client(api_key_create(account=keys.account, name="t", mode=ApiKey.Mode.TEST,
                                       is_admin=True), django_capture_on_commit_callbacks)
    for client in (other, test_admin):
        assert cancel(client, waiting["id"]).status_code == 404
    live_not_admin = Client(keys.live_key, django_capture_on_commit_callbacks)
    assert cancel(live_not_admin, waiting["id"]).status_code == 403
    assert Delivery.objects.get(id=waiting["id"]).status == "scheduled"
