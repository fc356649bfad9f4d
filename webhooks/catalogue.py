"""The two event catalogues an endpoint can subscribe to, and their payloads.

``comms.*`` is spec 000's lifecycle (payload ``{type, timestamp, data{attendeeInvitationId,
…, correlationId, mode, requestId}}``); ``delivery.*`` is spec 004's (payload ``{event, delivery{…,
status, detailed_status, mode}, request_id, timestamp}``: ``status`` in spec 004's words,
pending | sent | delivered | failed, ``detailed_status`` ours, as ``GET /v1/deliveries`` shows
them; ``request_id`` the X-Request-Id of the API request that made the delivery). One
recorded DeliveryEvent becomes at most one of each.
``mode`` is the delivery's, ``live`` or ``test``; test ones reach only the endpoints that
include test events.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from common.times import iso
from comms.models import PUBLIC_STATUS

# Lifecycle events customers receive; comms.processed/retry_scheduled/resubscribed stay internal.
COMMS_EVENTS = (
    "comms.sent", "comms.failed", "comms.delivered", "comms.deferred", "comms.opened",
    "comms.clicked", "comms.bounced", "comms.dropped", "comms.spam_reported",
    "comms.unsubscribed", "comms.cancelled",
)
# Spec 004's documented catalogue, fed by the comms event on the left.
DELIVERY_EVENT_FOR = {
    "comms.sent": "delivery.sent",
    "comms.delivered": "delivery.delivered",
    "comms.failed": "delivery.failed",
    "comms.dropped": "delivery.failed",
    "comms.bounced": "delivery.bounced",
    "comms.spam_reported": "delivery.complained",
    "comms.cancelled": "delivery.cancelled",
}
DELIVERY_EVENTS = ("delivery.sent", "delivery.delivered", "delivery.failed",
                   "delivery.bounced", "delivery.complained", "delivery.cancelled")
# Account-level events, not tied to one delivery.
ACCOUNT_EVENTS = ("domain.verified", "guest.checked_in", "recipient.unsubscribed",
                  "recipient.resubscribed")
ALL_EVENTS = COMMS_EVENTS + DELIVERY_EVENTS + ACCOUNT_EVENTS
TEST_EVENT = "webhook.test"  # sent on request from the admin or the API, whatever is enabled



def event_types_for(name: str) -> list[str]:
    """The webhook event types one DeliveryEvent name produces."""
    if name not in COMMS_EVENTS:
        return []
    delivery = DELIVERY_EVENT_FOR.get(name)
    return [name, delivery] if delivery else [name]


@dataclass(frozen=True, slots=True)
class Occurrence:
    """What the payloads say of one recorded DeliveryEvent: its own fields and its delivery's
    (ids as text), read in one query by ``webhooks.services``."""

    name: str
    status: str
    reason: Any  # the event detail's "reason", if any
    occurred_at: datetime
    delivery_id: str
    attendee_id: str | None
    attendee_event_id: str | None
    template_id: str | None
    recipient: str
    correlation_id: str | None  # the delivery's
    channel: str
    event_name: str
    provider_message_id: str
    sent_at: datetime | None
    delivered_at: datetime | None
    failure_reason: str
    mode: str  # the delivery's: "live", or "test" (a test key's sandbox rehearsal)
    request_id: str | None = None  # the delivery's: the API request that made it


def _status(event: Occurrence) -> str:
    return event.status or event.name.split(".", 1)[1]


def _reason(event: Occurrence) -> Any:
    reason = event.reason
    if not reason and event.name in ("comms.failed", "comms.bounced", "comms.dropped"):
        reason = event.failure_reason
    return reason or None


def comms_payload(event: Occurrence, *, now: datetime) -> dict[str, Any]:
    return {
        "type": event.name,
        "timestamp": iso(now),
        "data": {
            "attendeeInvitationId": event.delivery_id,
            "attendeeId": event.attendee_id,
            "templateId": event.template_id,
            "eventId": event.attendee_event_id,
            "email": event.recipient,
            "correlationId": event.correlation_id,
            "status": _status(event),
            "reason": _reason(event),
            "occurredAt": iso(event.occurred_at),
            "mode": event.mode,
            # Beyond spec 000's fields as mode is: the X-Request-Id of the request that made
            # the send (spec 004's request_id), beside the caller's own correlationId.
            "requestId": event.request_id,
        },
    }


# The status a delivery.* event type stands for, should an event's own word have none.
_TYPE_STATUS = {"delivery.sent": "sent", "delivery.delivered": "delivered"}


def delivery_payload(event: Occurrence, event_type: str, *, now: datetime) -> dict[str, Any]:
    failed = event_type in ("delivery.failed", "delivery.bounced", "delivery.complained")
    detail = _status(event)
    return {
        "event": event_type,
        "delivery": {
            "uuid": event.delivery_id,
            "channel": event.channel,
            "status": PUBLIC_STATUS.get(detail) or _TYPE_STATUS.get(event_type, "failed"),
            "detailed_status": detail,  # ours: bounced, dropped, spam_reported, opened…
            "event_name": event.event_name or None,  # spec 004's sends carry one
            "message_id": event.provider_message_id or None,
            "sent_at": iso(event.sent_at),
            "delivered_at": iso(event.delivered_at),
            "error": (_reason(event) or event.name.split(".", 1)[1]) if failed else None,
            "mode": event.mode,  # "test": a test key's sandbox rehearsal (opted-in endpoints)
        },
        "request_id": event.request_id,
        "timestamp": iso(event.occurred_at),
    }


def payload_for(event: Occurrence, event_type: str, *, now: datetime) -> dict[str, Any]:
    if event_type.startswith("comms."):
        return comms_payload(event, now=now)
    return delivery_payload(event, event_type, now=now)


def test_payload(*, endpoint_id: str, now: datetime) -> dict[str, Any]:
    return {"type": TEST_EVENT, "timestamp": iso(now),
            "data": {"webhookUuid": endpoint_id, "message": "Test event from Herald."}}
