"""Amazon SES events through SNS: the ``/callbacks/ses`` endpoint and the event parser.

Every SNS message is signature-checked; only allow-listed topics
(``HERALD_SES_SNS_TOPIC_ARNS``) are confirmed or accepted. A Notification is stored raw and
answered at once; ``parse_message`` later turns it into normalized events.
"""

import hashlib
import json
import logging
import re
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from comms.callbacks import sns
from comms.callbacks.views import CallbackRefused, CallbackView, callback_error
from comms.providers.base import ProviderEvent

log = logging.getLogger(__name__)

# SES eventType (or notificationType) → the key of its detail object.
DETAIL_KEYS = {
    "Send": "send", "Delivery": "delivery", "Bounce": "bounce", "Complaint": "complaint",
    "Reject": "reject", "Open": "open", "Click": "click", "DeliveryDelay": "deliveryDelay",
    "Subscription": "subscription", "Rendering Failure": "failure",
}
SIMPLE_EVENTS = {"Send": "sent", "Delivery": "delivered", "Reject": "dropped",
                 "Open": "opened", "Click": "clicked", "Rendering Failure": "failed",
                 "Complaint": "spam_reported", "DeliveryDelay": "deferred"}
SUBSCRIBE_PATH = re.compile(r"/?")
CONFIRM_TIMEOUT_SECONDS = 5.0


# --- the endpoint -----------------------------------------------------------------------------

class SesCallbacks(CallbackView):
    """``POST /callbacks/ses``: SNS posts here (HTTP/S subscription of the SES configuration
    set's topic): a Notification is stored, a SubscriptionConfirmation confirmed."""

    provider = "ses"
    undecodable = "body is not a JSON SNS message"
    envelope: dict[str, Any]

    @staticmethod
    def parse_events(body: str) -> list[ProviderEvent]:
        return parse_message(body)

    @staticmethod
    def unsubscribes_everything(event: ProviderEvent) -> bool:
        """SES list management: ``unsubscribeAll`` (or no preferences at all) is every topic;
        a topic's opt-out the email's topic."""
        preferences = event.raw.get("newTopicPreferences") or {}
        return bool(preferences.get("unsubscribeAll")) or not preferences

    def verify(self, request: HttpRequest, body: str) -> None:
        try:
            envelope = json.loads(body)
        except ValueError:
            raise CallbackRefused(400, self.undecodable) from None
        if not isinstance(envelope, dict):
            raise CallbackRefused(400, self.undecodable)
        try:
            if not sns.message_verify(envelope):
                log.warning("SNS message with an invalid signature or certificate URL refused")
                raise CallbackRefused(403, "invalid signature")
        except sns.CertificateUnavailable as exc:
            log.warning("SNS certificate unavailable: %s", exc)
            raise CallbackRefused(503, "signing certificate unavailable") from None
        if envelope.get("TopicArn") not in settings.HERALD_SES_SNS_TOPIC_ARNS:
            log.warning("SNS %s from a topic not allow-listed refused: %s",
                        envelope.get("Type"), envelope.get("TopicArn"))
            raise CallbackRefused(403, "topic not allowed")
        self.envelope = envelope

    def read(self, body: str) -> dict[str, Any]:
        return self.envelope

    def accept(self, body: str, payload: dict[str, Any]) -> HttpResponse:
        if payload["Type"] == "Notification":
            return super().accept(body, payload)
        return _HANDLERS[payload["Type"]](payload)


def _subscription(envelope: dict[str, Any]) -> HttpResponse:
    url = str(envelope.get("SubscribeURL", ""))
    if not subscribe_url_valid(url):
        log.warning("SNS SubscribeURL refused: %.300s", url)
        return callback_error(403, "SubscribeURL not an SNS URL")
    try:
        _confirm(url)
    except OSError as exc:
        log.error("SNS subscription to %s not confirmed: %s", envelope.get("TopicArn"), exc)
        return callback_error(502, "could not confirm the subscription")
    log.info("SNS subscription to %s confirmed", envelope.get("TopicArn"))
    return JsonResponse({"confirmed": True})


def _unsubscribe(envelope: dict[str, Any]) -> HttpResponse:
    log.warning("SNS unsubscribed Herald from %s (not re-subscribing)", envelope.get("TopicArn"))
    return JsonResponse({"unsubscribed": True})


_HANDLERS: dict[str, Callable[[dict[str, Any]], HttpResponse]] = {
    "SubscriptionConfirmation": _subscription,
    "UnsubscribeConfirmation": _unsubscribe,
}


def subscribe_url_valid(url: str) -> bool:
    """``https://sns.<region>.amazonaws.com/?Action=ConfirmSubscription&…`` only."""
    query = parse_qs(urlsplit(url).query) if url else {}
    return sns.sns_url_valid(url, SUBSCRIBE_PATH) and query.get("Action") == [
        "ConfirmSubscription"]


def subscribe_url_fetch(url: str) -> None:
    """GET the SubscribeURL: that is how SNS subscriptions are confirmed."""
    with urllib.request.urlopen(url, timeout=CONFIRM_TIMEOUT_SECONDS) as response:
        response.read(64 * 1024)


_confirm: Callable[[str], None] = subscribe_url_fetch


def subscribe_url_fetcher_set(fetcher: Callable[[str], None] | None) -> Callable[[str], None]:
    """Replace how SubscribeURLs are fetched (``None``: HTTPS); returns the old fetcher."""
    global _confirm
    previous, _confirm = _confirm, fetcher or subscribe_url_fetch
    return previous


# --- the parser -----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Outcome:
    event: str
    recipient: str = ""
    reason: str = ""
    bounce_type: str = ""
    bounce_subtype: str = ""


def parse_message(body: str) -> list[ProviderEvent]:
    """A stored SNS Notification whose ``Message`` is an SES event, as normalized events.

    Non-SES notifications (SES's own "Successfully validated…" test) and unknown event types
    are logged and yield nothing; a body that is not an SNS JSON object is a ``ValueError``.
    """
    envelope = json.loads(body)
    if not isinstance(envelope, dict):
        raise ValueError("an SNS message is a JSON object")
    event = _ses_event(envelope)
    if event is None:
        return []
    kind = event.get("eventType") or event.get("notificationType")
    if kind not in DETAIL_KEYS:
        log.warning("SES event type %r skipped (SNS %s)", kind, envelope.get("MessageId"))
        return []
    detail = event.get(DETAIL_KEYS[kind]) or {}
    mail = event.get("mail") or {}
    outcomes = _outcomes(kind, detail, mail)
    base_id = str(envelope.get("MessageId") or _fingerprint(body))
    return [_provider_event(envelope, kind, detail, mail, outcome,
                            base_id if len(outcomes) == 1 else f"{base_id}#{index}")
            for index, outcome in enumerate(outcomes)]


def _ses_event(envelope: dict[str, Any]) -> dict[str, Any] | None:
    try:
        event = json.loads(envelope.get("Message") or "")
    except (TypeError, ValueError):
        event = None
    if not isinstance(event, dict):
        log.info("SNS notification %s carries no SES event: %.200r",
                 envelope.get("MessageId"), envelope.get("Message"))
        return None
    return event


def _outcomes(kind: str, detail: dict[str, Any], mail: dict[str, Any]) -> list[_Outcome]:
    if kind == "Bounce":
        return _bounce(detail)
    if kind == "Subscription":
        return [_Outcome(_subscription_event(detail), _single(mail))]
    per_recipient = {
        "Delivery": [(r, "") for r in detail.get("recipients") or []],
        "Complaint": [(r.get("emailAddress", ""), detail.get("complaintFeedbackType") or
                       "Recipient reported spam") for r in detail.get("complainedRecipients")
                      or []],
        "DeliveryDelay": [(r.get("emailAddress", ""), r.get("diagnosticCode") or
                           detail.get("delayType", "")) for r in detail.get("delayedRecipients")
                          or []],
    }.get(kind)
    if per_recipient:
        return [_Outcome(SIMPLE_EVENTS[kind], str(to), str(why)) for to, why in per_recipient]
    reason = {"Reject": detail.get("reason"), "Rendering Failure": detail.get("errorMessage"),
              "DeliveryDelay": detail.get("delayType"),
              "Complaint": detail.get("complaintFeedbackType")}.get(kind) or ""
    return [_Outcome(SIMPLE_EVENTS[kind], _single(mail), str(reason))]


def _bounce(detail: dict[str, Any]) -> list[_Outcome]:
    """Permanent: the address is bad (bounced); Transient/Undetermined: may still arrive."""
    bounce_type = str(detail.get("bounceType", ""))
    subtype = str(detail.get("bounceSubType", ""))
    event = "bounced" if bounce_type == "Permanent" else "deferred"
    recipients = detail.get("bouncedRecipients") or [{}]
    return [_Outcome(event, str(r.get("emailAddress", "")),
                     str(r.get("diagnosticCode") or r.get("status") or
                         f"{bounce_type} bounce ({subtype})"), bounce_type, subtype)
            for r in recipients]


def _subscription_event(detail: dict[str, Any]) -> str:
    """SES list management: opted out of everything or of a topic, else a (re)subscription."""
    preferences = detail.get("newTopicPreferences") or {}
    opted_out = preferences.get("unsubscribeAll") or any(
        str(t.get("subscriptionStatus", "")).replace("_", "").upper() == "OPTOUT"
        for t in preferences.get("topicSubscriptionStatus") or [])
    return "unsubscribed" if opted_out or not preferences else "resubscribed"


def _single(mail: dict[str, Any]) -> str:
    destination = mail.get("destination") or []
    return str(destination[0]) if len(destination) == 1 else ""


def _provider_event(envelope: dict[str, Any], kind: str, detail: dict[str, Any],
                    mail: dict[str, Any], outcome: _Outcome, event_id: str) -> ProviderEvent:
    return ProviderEvent(
        provider="ses", provider_event_id=event_id, event=outcome.event,
        occurred_at=_time(detail.get("timestamp") or mail.get("timestamp")
                          or envelope.get("Timestamp")),
        delivery_id=_tag(mail, "herald_delivery_id"),
        provider_message_id=mail.get("messageId") or None,
        recipient=outcome.recipient, reason=outcome.reason[:1000],
        bounce_type=outcome.bounce_type, bounce_subtype=outcome.bounce_subtype,
        raw={**detail, "eventType": kind, "messageId": mail.get("messageId"),
             "snsMessageId": envelope.get("MessageId")},
    )


def _tag(mail: dict[str, Any], name: str) -> str | None:
    values = (mail.get("tags") or {}).get(name) or []
    return str(values[0]) if isinstance(values, list) and values else None


def _time(value: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return datetime.now(tz=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _fingerprint(body: str) -> str:
    return "fp-" + hashlib.sha256(body.encode()).hexdigest()[:40]
