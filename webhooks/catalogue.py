"""The two event catalogues an endpoint can subscribe to, and their payloads.

``comms.*`` is spec 000's lifecycle (payload ``{type, timestamp, data{attendeeInvitationId,
…, correlationId}}``); ``delivery.*`` is spec 004's (payload ``{event, delivery{…},
request_id, timestamp}``). One recorded DeliveryEvent becomes at most one of each.
"""

from datetime import datetime
from typing import Any

from common.times import iso

# Lifecycle events customers receive; comms.processed/retry_scheduled/resubscribed stay internal.
COMMS_EVENTS = (
    "comms.sent", "comms.failed", "comms.delivered", "comms.deferred", "comms.opened",
    "comms.clicked", "comms.bounced", "comms.dropped", "comms.spam_reported",
    "comms.unsubscribed",
)
# Spec 004's documented catalogue, fed by the comms event on the left.
DELIVERY_EVENT_FOR = {
    "comms.sent": "delivery.sent",
    "comms.delivered": "delivery.delivered",
    "comms.failed": "delivery.failed",
    "comms.dropped": "delivery.failed",
    "comms.bounced": "delivery.bounced",
    "comms.spam_reported": "delivery.complained",
}
DELIVERY_EVENTS = ("delivery.sent", "delivery.delivered", "delivery.failed",
                   "delivery.bounced", "delivery.complained")
# Account-level events, not tied to one delivery.
ACCOUNT_EVENTS = ("domain.verified",)
ALL_EVENTS = COMMS_EVENTS + DELIVERY_EVENTS + ACCOUNT_EVENTS
TEST_EVENT = "webhook.test"  # sent on request from the admin or the API, whatever is enabled



def event_types_for(name: str) -> list[str]:
    """The webhook event types one DeliveryEvent name produces."""
    if name not in COMMS_EVENTS:
        return []
    delivery = DELIVERY_EVENT_FOR.get(name)
    return [name, delivery] if delivery else [name]


def _status(event) -> str:
    return event.status or event.name.split(".", 1)[1]


def _reason(event) -> str | None:
    delivery = event.delivery
    reason = (event.detail or {}).get("reason")
    if not reason and event.name in ("comms.failed", "comms.bounced", "comms.dropped"):
        reason = delivery.failure_reason
    return reason or None


def comms_payload(event, *, now: datetime) -> dict[str, Any]:
    delivery = event.delivery
    attendee = delivery.attendee
    return {
        "type": event.name,
        "timestamp": iso(now),
        "data": {
            "attendeeInvitationId": str(delivery.id),
            "attendeeId": str(attendee.id) if attendee else None,
            "templateId": str(delivery.template_id) if delivery.template_id else None,
            "eventId": str(attendee.event_id) if attendee else None,
            "email": delivery.recipient,
            "correlationId": delivery.correlation_id,
            "status": _status(event),
            "reason": _reason(event),
            "occurredAt": iso(event.occurred_at),
        },
    }


def delivery_payload(event, event_type: str, *, now: datetime) -> dict[str, Any]:
    delivery = event.delivery
    failed = event_type in ("delivery.failed", "delivery.bounced", "delivery.complained")
    return {
        "event": event_type,
        "delivery": {
            "uuid": str(delivery.id),
            "channel": delivery.channel,
            "status": _status(event),
            "event_name": delivery.event_name or None,  # spec 004's sends carry one
            "message_id": delivery.provider_message_id or None,
            "sent_at": iso(delivery.sent_at),
            "delivered_at": iso(delivery.delivered_at),
            "error": (_reason(event) or event.name.split(".", 1)[1]) if failed else None,
        },
        # The caller's reference for the request that made the send (spec 000's correlationId).
        "request_id": delivery.correlation_id,
        "timestamp": iso(event.occurred_at),
    }


def payload_for(event, event_type: str, *, now: datetime) -> dict[str, Any]:
    if event_type.startswith("comms."):
        return comms_payload(event, now=now)
    return delivery_payload(event, event_type, now=now)


def test_payload(*, endpoint_id: str, now: datetime) -> dict[str, Any]:
    return {"type": TEST_EVENT, "timestamp": iso(now),
            "data": {"webhookUuid": endpoint_id, "message": "Test event from Herald."}}
