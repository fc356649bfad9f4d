"""SendGrid's Event Webhook: its callback view (signature check with the `sendgrid` package's
EventWebhook) and the normalization of every event type into Herald's vocabulary."""

import binascii
import functools
import hashlib
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from sendgrid.helpers.eventwebhook import EventWebhook

from comms.callbacks.views import CallbackRefused, CallbackView
from comms.providers.base import ProviderEvent

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE"
TIMESTAMP_HEADER = "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP"

EVENT_TYPES = {
    "processed": "sent",
    "dropped": "dropped",
    "deferred": "deferred",
    "delivered": "delivered",
    "bounce": "bounced",
    "open": "opened",
    "click": "clicked",
    "spamreport": "spam_reported",
    "unsubscribe": "unsubscribed",
    "group_unsubscribe": "unsubscribed",
    "group_resubscribe": "resubscribed",
}


def signature_valid(*, public_key: str, body: str, signature: str, timestamp: str,
                    max_age_seconds: int) -> bool:
    """True if SendGrid signed ``timestamp + body`` and the timestamp is fresh."""
    if not (public_key and signature and timestamp):
        return False
    try:
        if abs(time.time() - int(timestamp)) > max_age_seconds:
            return False
        return _verifier(public_key).verify_signature(body, signature, timestamp)
    except (ValueError, binascii.Error, TypeError):
        return False


@functools.lru_cache(maxsize=4)
def _verifier(public_key: str) -> EventWebhook:
    """The verifier of a public key, its PEM parsed once per process (keys rotate rarely)."""
    return EventWebhook(public_key)


def parse_batch(body: str) -> list[ProviderEvent]:
    """The JSON array SendGrid posts, as normalized events; unknown types are logged, skipped."""
    payload = json.loads(body)
    if not isinstance(payload, list):
        raise ValueError("a SendGrid event batch is a JSON array")
    events = []
    for item in payload:
        event = _normalize(item) if isinstance(item, dict) else None
        if event is None:
            log.warning("SendGrid event skipped (unknown type or shape): %.200r", item)
            continue
        events.append(event)
    return events


def _normalize(item: dict[str, Any]) -> ProviderEvent | None:
    kind = EVENT_TYPES.get(str(item.get("event", "")))
    if kind is None:
        return None
    message_id = str(item.get("sg_message_id", "")).split(".", 1)[0] or None
    reason = item.get("reason") or item.get("response") or ""
    try:
        occurred_at = datetime.fromtimestamp(int(item["timestamp"]), tz=UTC)
    except (KeyError, TypeError, ValueError, OverflowError):
        occurred_at = datetime.now(tz=UTC)
    return ProviderEvent(
        provider="sendgrid",
        provider_event_id=str(item.get("sg_event_id") or _fingerprint(item)),
        event=kind,
        occurred_at=occurred_at,
        delivery_id=item.get("herald_delivery_id"),
        provider_message_id=message_id,
        recipient=str(item.get("email", "")),
        reason=str(reason)[:1000],
        bounce_type=str(item.get("type", "bounce")) if kind == "bounced" else "",
        bounce_subtype=str(item.get("bounce_classification", "")) if kind == "bounced" else "",
        raw=item,
    )


def _fingerprint(item: dict[str, Any]) -> str:
    """A stable id for an event without ``sg_event_id``, so a re-post is still deduplicated."""
    return "fp-" + hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()[:40]


class SendGridCallbacks(CallbackView):
    """``POST /callbacks/sendgrid``: SendGrid's signed Event Webhook, a JSON array of events.
    Forged, missing or stale signatures: 403."""

    provider = "sendgrid"
    parse_events = staticmethod(parse_batch)

    @staticmethod
    def unsubscribes_everything(event: ProviderEvent) -> bool:
        """``unsubscribe`` is SendGrid's global unsubscribe; ``group_unsubscribe`` one
        unsubscribe group's (the email's topic)."""
        return event.raw.get("event") == "unsubscribe"

    def verify(self, request: HttpRequest, body: str) -> None:
        if not signature_valid(
            public_key=settings.SENDGRID_WEBHOOK_PUBLIC_KEY, body=body,
            signature=request.META.get(SIGNATURE_HEADER, ""),
            timestamp=request.META.get(TIMESTAMP_HEADER, ""),
            max_age_seconds=settings.SENDGRID_WEBHOOK_MAX_AGE_SECONDS,
        ):
            log.warning("SendGrid callback with a missing, forged or stale signature refused")
            raise CallbackRefused(403, "invalid signature")

    def read(self, body: str) -> Any:
        payload = super().read(body)
        if not isinstance(payload, list):
            raise CallbackRefused(400, "expected a JSON array of events")
        return payload

    def count(self, payload: Any) -> int:
        return len(payload)
