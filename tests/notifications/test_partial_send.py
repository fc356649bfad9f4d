"""Spec 004's partial send: some parts queued, others refused. ``success`` says whether
anything was queued; ``deliveries`` lists what was (with ids), ``errors`` what was not, each
with its channel, recipient and whether an unchanged retry could help. A retry with the
same ``X-Idempotency-Key`` replays the answer and queues nothing again; a send of only the
refused part (its channel, its recipient) queues only that."""

from comms import channels
from comms.models import Delivery
from contacts.models import Contact
from tests.notifications.test_api import order, v4  # noqa: F401 (fixtures)

TO = [{"email": "ann@example.com", "phone": "+14155550101"}, {"email": "bob@example.com"}]


def test_a_partial_send_is_a_success_listing_both_parts(v4, order):  # noqa: F811
    response = v4.post("/v1/send/order.confirmed", {"to": TO},
                       HTTP_X_IDEMPOTENCY_KEY="order-1")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True
    queued = [next(iter(d.items())) for d in body["deliveries"]]
    assert sorted(c for c, _ in queued) == ["email", "email"]
    assert {str(pk) for pk in Delivery.objects.values_list("id", flat=True)} == {
        pk for _, pk in queued}
    assert body["errors"] == [{"code": "INTEGRATION_MISSING",
                               "message": "No sms integration configured", "channel": "sms",
                               "recipient": None, "retryable": False}]

    again = v4.post("/v1/send/order.confirmed", {"to": TO}, HTTP_X_IDEMPOTENCY_KEY="order-1")
    assert again.status_code == 200 and again.json() == body
    assert again["Idempotent-Replayed"] == "true"
    assert Delivery.objects.count() == 2  # nothing queued twice


def test_the_refused_part_alone_is_sent_once_fixed(v4, order, keys):  # noqa: F811
    first = v4.post("/v1/send/order.confirmed", {"to": TO}).json()
    channels.integration_save(account=keys.account, provider="twilio",
                              config={"from_number": "+15005550006"},
                              credentials={"account_sid": "AC1", "auth_token": "x"})
    # The caller resends only what errors named: the sms channel, to every recipient.
    [refusal] = first["errors"]
    retry = v4.post(f"/v1/send/order.confirmed/{refusal['channel']}", {"to": TO}).json()
    assert retry["success"] is True
    bob = Contact.objects.get(email="bob@example.com")
    assert [next(iter(d)) for d in retry["deliveries"]] == ["sms"]
    assert retry["errors"] == [{
        "code": "MISSING_IDENTIFIER", "message": "Contact bob@example.com has no phone for sms",
        "channel": "sms", "recipient": str(bob.id), "retryable": False}]
    assert sorted(Delivery.objects.values_list("channel", flat=True)) == [
        "email", "email", "sms"]


def test_nothing_queued_is_success_false_and_sends_nothing(v4, order):  # noqa: F811
    response = v4.post("/v1/send/order.confirmed/sms", {"to": "ann@example.com"})
    assert response.status_code == 400
    assert response.json() == {"success": False, "deliveries": [], "errors": [
        {"code": "INTEGRATION_MISSING", "message": "No sms integration configured",
         "channel": "sms", "recipient": None, "retryable": False}]}
    assert not Delivery.objects.exists()
