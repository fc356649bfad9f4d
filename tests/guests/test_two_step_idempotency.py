"""The two-step send takes idempotency keys as every POST does (``api.idempotency``):
either header, replays marked ``Idempotent-Replayed``, a key on another request refused, and
racing retries making one send."""

import pytest

from accounts.models import IdempotentRequest
from comms.models import Delivery
from tests.conftest import concurrently, guest, make_client
from tests.faults.test_races import _setup

SEND = "/comms/v1/api/comms/send"


def _guest(api, event_id) -> str:
    body = guest(event_id)
    assert api.post("/checkin/v1/api/guest", body).status_code == 200
    return body["id"]


def test_a_retry_with_either_header_replays_the_first_send(api, event_id, template_id):
    send = {"attendeeId": _guest(api, event_id), "templateId": template_id}
    first = api.post(SEND, send, HTTP_X_IDEMPOTENCY_KEY="s-1")
    again = api.post(SEND, send, HTTP_IDEMPOTENCY_KEY="s-1")
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert Delivery.objects.count() == 1
    # The answer was stored with the send, in its transaction.
    assert IdempotentRequest.objects.get(key="s-1").status == 200


def test_the_key_on_another_request_is_a_409(api, event_id, template_id):
    send = {"attendeeId": _guest(api, event_id), "templateId": template_id}
    api.post(SEND, send, HTTP_X_IDEMPOTENCY_KEY="s-2")
    other = api.post(SEND, {**send, "correlationId": "x"}, HTTP_X_IDEMPOTENCY_KEY="s-2")
    assert other.status_code == 409 and other.json()["error"] == "idempotency_key_reused"
    assert Delivery.objects.count() == 1


def test_a_refused_send_keeps_no_key(sandbox_api, event_id, template_id):
    """The 422 rule changed nothing: the key is released, so a retry is judged again."""
    body = guest(event_id, template_id, email="bounce@example.com")
    sandbox_api.post("/checkin/v1/api/guest", body)
    send = {"attendeeId": body["id"], "templateId": template_id}
    refused = sandbox_api.post(SEND, send, HTTP_IDEMPOTENCY_KEY="s-3")
    assert refused.status_code == 422
    assert not IdempotentRequest.objects.filter(key="s-3").exists()


@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_sends_with_one_key_make_one_delivery(keys):
    event_id, template_id = _setup(keys)
    body = guest(event_id)
    assert make_client(keys).post("/checkin/v1/api/guest", body,
                                  format="json").status_code == 200
    send = {"attendeeId": body["id"], "templateId": template_id}
    responses = concurrently(10, lambda i: make_client(keys).post(
        SEND, send, format="json", HTTP_X_IDEMPOTENCY_KEY="race"))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 409} and 200 in statuses, statuses
    sent = {r.json()["attendeeInvitationId"] for r in responses if r.status_code == 200}
    assert Delivery.objects.filter(owner_id=body["id"]).count() == 1
    assert sent == {str(Delivery.objects.get(owner_id=body["id"]).id)}
    late = make_client(keys).post(SEND, send, format="json", HTTP_IDEMPOTENCY_KEY="race")
    assert late.status_code == 200 and late["Idempotent-Replayed"] == "true"
