"""Concurrency on the real database: the idempotency race and concurrent resends."""

import uuid

import pytest

from comms.models import Delivery
from guests.models import Attendee
from tests.conftest import TICKET, concurrently, guest, make_client

pytestmark = pytest.mark.django_db(transaction=True)



def _setup(keys):
    client = make_client(keys)
    event_id = client.post("/checkin/v1/api/event", {"name": "Race"}, format="json").json()["id"]
    template_id = client.post("/comms/v1/api/comms/template", TICKET, format="json").json()["id"]
    return event_id, template_id


def test_twenty_identical_posts_make_one_attendee_and_one_send(keys):
    event_id, template_id = _setup(keys)
    body = guest(event_id, template_id)
    responses = concurrently(
        20, lambda i: make_client(keys).post("/checkin/v1/api/guest", body, format="json"))
    assert [r.status_code for r in responses] == [200] * 20
    assert {r.json()["attendeeInvitationId"] for r in responses} != {None}
    assert len({r.json()["attendeeInvitationId"] for r in responses}) == 1
    assert Attendee.objects.filter(id=body["id"]).count() == 1
    assert Delivery.objects.filter(owner_id=body["id"]).count() == 1


def test_concurrent_resends_after_bounce_are_all_refused(keys):
    client = make_client(keys, test_mode=True)
    event_id, template_id = _setup(keys)
    body = guest(event_id, template_id, email="bounce@example.com")
    client.post("/checkin/v1/api/guest", body, format="json")
    assert Delivery.objects.get(owner_id=body["id"]).status == "bounced"
    send = {"attendeeId": body["id"], "templateId": template_id}
    responses = concurrently(
        10, lambda i: make_client(keys, test_mode=True).post(
            "/comms/v1/api/comms/send", send, format="json"))
    assert [r.status_code for r in responses] == [422] * 10
    assert Delivery.objects.filter(owner_id=body["id"]).count() == 1


def test_concurrent_distinct_guests_all_created(keys):
    event_id, template_id = _setup(keys)
    ids = [str(uuid.uuid4()) for _ in range(20)]
    responses = concurrently(20, lambda i: make_client(keys).post(
        "/checkin/v1/api/guest", guest(event_id, template_id, id=ids[i]), format="json"))
    assert [r.status_code for r in responses] == [200] * 20
    assert Delivery.objects.count() == 20
