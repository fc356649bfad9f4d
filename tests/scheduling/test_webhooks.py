"""A cancel through the API reaches a customer's endpoint: comms.cancelled (spec 000's shape)
and delivery.cancelled (spec 004's), signed, from a real local receiver."""

from tests.conftest import guest
from tests.fakes.webhook_receiver import payloads
from tests.scheduling.helpers import ahead, delete
from tests.webhooks.test_delivery import endpoint, hooks, receiver  # noqa: F401 (fixtures)


def test_cancelling_a_check_in_send_emits_both_cancelled_events(api, event_id, template_id,
                                                                endpoint, receiver):  # noqa: F811
    created = api.post("/checkin/v1/api/guest", guest(event_id, template_id,
                                                      sendAt=ahead(hours=1))).json()
    invitation = created["attendeeInvitationId"]
    assert payloads(receiver) == []  # scheduling itself is no lifecycle event

    assert delete(api, f"/comms/v1/api/comms/send/{invitation}").status_code == 200

    by_type = {p.get("type") or p["event"]: p for p in payloads(receiver)}
    assert set(by_type) == {"comms.cancelled", "delivery.cancelled"}
    comms = by_type["comms.cancelled"]["data"]
    assert (comms["attendeeInvitationId"], comms["status"], comms["mode"]) == (
        invitation, "cancelled", "live")
    assert comms["attendeeId"] == created["id"] and comms["eventId"] == event_id
    assert comms["correlationId"] == "order-2026-0042"
    delivery = by_type["delivery.cancelled"]["delivery"]
    assert (delivery["uuid"], delivery["status"], delivery["detailed_status"]) == (
        invitation, "failed", "cancelled")
    assert delivery["sent_at"] is None


def test_cancelling_a_notification_emits_delivery_cancelled(hooks, endpoint,  # noqa: F811
                                                           receiver):  # noqa: F811
    hooks.post("/v1/events", {"identifier": "order.shipped", "channels": ["email"],
                              "templates": [{"channel": "email", "subject": "Shipped",
                                             "body": "On its way."}]})
    sent = hooks.post("/v1/send/order.shipped", {"to": "ann@example.com",
                                                  "send_at": ahead(hours=1)}).json()
    uuid = sent["deliveries"][0]["email"]

    assert hooks.delete(f"/v1/deliveries/{uuid}").status_code == 200

    [cancelled] = [p for p in payloads(receiver) if p.get("event") == "delivery.cancelled"]
    assert cancelled["delivery"]["uuid"] == uuid
    assert cancelled["delivery"]["event_name"] == "order.shipped"
    assert cancelled["delivery"]["detailed_status"] == "cancelled"
    assert receiver.verified and all(r.verifies_with(receiver.secret) for r in receiver.verified)
