"""Spec 004's bodies as the schema documents them: what a generated client sends and parses.

The answers are built as dicts in the views (``event_json``, ``delivery_json``); these
serializers only describe them (``extend_schema``), each a typed component of its own."""

from drf_spectacular.utils import OpenApiExample, extend_schema_field, inline_serializer
from rest_framework import serializers

from comms.providers.registry import CHANNELS
from templates.events import EVENT_CHANNELS

_RECIPIENT = {
    "type": "object", "additionalProperties": True,
    "description": "A contact by its fields (email, phone, name, externalId, …); the "
                   "others are its custom fields.",
    "properties": {"email": {"type": "string"}, "phone": {"type": "string"},
                   "name": {"type": "string"}, "externalId": {"type": "string"}}}


@extend_schema_field({
    "description": "An email, a phone (E.164), a contact's UUID or external id; a contact "
                   "object; or a list of them.",
    "oneOf": [{"type": "string", "minLength": 1}, _RECIPIENT,
              {"type": "array", "minItems": 1, "items": {"oneOf": [
                  {"type": "string", "minLength": 1}, _RECIPIENT]}}]})
class RecipientField(serializers.JSONField):
    """Spec 004's flexible ``to``."""


def _envelope(name: str, data: serializers.Serializer) -> serializers.Serializer:
    return inline_serializer(name, {"success": serializers.BooleanField(), "data": data})


_TEMPLATE = inline_serializer("V004EventTemplate", {
    "channel": serializers.ChoiceField(choices=EVENT_CHANNELS),
    "language": serializers.CharField(), "subject": serializers.CharField(),
    "body": serializers.CharField(), "html": serializers.CharField(),
    "version": serializers.IntegerField()})


def _event_fields() -> dict[str, serializers.Field]:
    """Fresh fields each time: a serializer class takes its declared fields out of the dict."""
    return {"identifier": serializers.CharField(), "name": serializers.CharField(),
            "channels": serializers.ListField(
                child=serializers.ChoiceField(choices=EVENT_CHANNELS))}


EventSummary = inline_serializer("V004EventSummary", _event_fields())
EventDetail = inline_serializer("V004Event", {
    **_event_fields(), "description": serializers.CharField(),
    "default_language": serializers.CharField(), "templates": _TEMPLATE.__class__(many=True)})
EventsEnvelope = _envelope("V004EventsEnvelope", inline_serializer(
    "V004Events", {"events": EventSummary.__class__(many=True)}))
EventEnvelope = _envelope("V004EventEnvelope", inline_serializer(
    "V004EventData", {"event": EventDetail}))

PUBLIC_STATUSES = ("pending", "sent", "delivered", "failed")
_DELIVERY = inline_serializer("V004Delivery", {
    "uuid": serializers.UUIDField(), "channel": serializers.ChoiceField(choices=CHANNELS),
    "status": serializers.ChoiceField(choices=PUBLIC_STATUSES,
                                      help_text="Spec 004's four statuses."),
    "detailed_status": serializers.CharField(
        help_text="Herald's own status word (bounced, spam_reported, opened, …)."),
    "event_name": serializers.CharField(allow_null=True),
    "recipient": serializers.CharField(),
    "contact_uuid": serializers.UUIDField(allow_null=True),
    "provider": serializers.CharField(allow_null=True),
    "message_id": serializers.CharField(allow_null=True),
    "sandbox": serializers.BooleanField(),
    "created_at": serializers.DateTimeField(),
    "sent_at": serializers.DateTimeField(allow_null=True),
    "delivered_at": serializers.DateTimeField(allow_null=True),
    "error": serializers.CharField(allow_null=True),
    "send_at": serializers.DateTimeField(allow_null=True, help_text=(
        "While `scheduled` (status pending): when it will be sent; null otherwise."))})
DeliveriesEnvelope = _envelope("V004DeliveriesEnvelope", inline_serializer("V004Deliveries", {
    "deliveries": _DELIVERY.__class__(many=True), "total": serializers.IntegerField(),
    "limit": serializers.IntegerField(), "offset": serializers.IntegerField()}))
DeliveryEnvelope = _envelope("V004DeliveryEnvelope", inline_serializer(
    "V004DeliveryData", {"delivery": _DELIVERY}))
TraceEnvelope = _envelope("V004TraceEnvelope", inline_serializer("V004Trace", {
    "delivery": _DELIVERY,
    "timeline": inline_serializer("V004TraceStep", {
        "event": serializers.CharField(), "status": serializers.CharField(),
        "at": serializers.DateTimeField(), "detail": serializers.JSONField()}, many=True),
    "content": inline_serializer("V004TraceContent", {
        "subject": serializers.CharField(), "html": serializers.CharField(),
        "text": serializers.CharField(),
        "template_version": serializers.IntegerField(allow_null=True),
        "template_uuid": serializers.UUIDField(allow_null=True)}),
    "attempts": serializers.IntegerField()}))
IntegrationsEnvelope = _envelope("V004IntegrationsEnvelope", inline_serializer(
    "V004Integrations", {"integrations": inline_serializer("V004Integration", {
        "uuid": serializers.UUIDField(allow_null=True,
                                      help_text="None for the platform's own provider."),
        "channel": serializers.ChoiceField(choices=CHANNELS),
        "provider": serializers.CharField(), "name": serializers.CharField(allow_null=True),
        "priority": serializers.IntegerField(),
        "status": serializers.ChoiceField(choices=("active", "inactive")),
        "config": serializers.DictField(help_text="Secrets stripped.")}, many=True)}))

SendOut = inline_serializer("V004SendResult", {
    "success": serializers.BooleanField(help_text=(
        "True when at least one delivery was queued (all of them are in `deliveries`); "
        "false only when nothing was sent (HTTP 400), so retrying a `success: false` never "
        "sends anything twice. A partial send is `success: true` with the refused parts in "
        "`errors`: resend only those (e.g. POST /v1/send/{event}/{channel}) once fixed. A "
        "retry of the same request with the same X-Idempotency-Key replays this answer "
        "(Idempotent-Replayed: true) and queues nothing.")),
    "deliveries": inline_serializer("V004SendDelivery", {
        channel: serializers.UUIDField(required=False) for channel in EVENT_CHANNELS},
        many=True, help_text="One ``{channel: delivery uuid}`` each."),
    "errors": inline_serializer("V004SendError", {
        "code": serializers.CharField(help_text=(
            "INTEGRATION_MISSING, TEMPLATE_MISSING (the whole channel) or MISSING_IDENTIFIER "
            "(one recipient).")),
        "message": serializers.CharField(),
        "channel": serializers.ChoiceField(choices=EVENT_CHANNELS,
                                           help_text="The channel of the refused part."),
        "recipient": serializers.CharField(allow_null=True, help_text=(
            "The refused recipient: its contact uuid (a test key's unknown recipient: the "
            "address given); null when the whole channel was refused.")),
        "retryable": serializers.BooleanField(help_text=(
            "Whether the same request, unchanged, could succeed later. False for every "
            "refusal today: fix the integration, template or contact first.")),
    }, many=True, required=False, help_text="The parts not queued; absent when everything was."),
    "status": serializers.CharField(required=False, help_text=(
        "With a `send_at` still ahead: pending (every delivery waits for it); absent when "
        "sent now.")),
    "detailed_status": serializers.CharField(required=False, help_text=(
        "With a `send_at` still ahead: scheduled.")),
    "send_at": serializers.DateTimeField(required=False, help_text=(
        "When the deliveries will be sent, if scheduled: cancel one with "
        "DELETE /v1/deliveries/{uuid} until then.")),
})

SEND_EXAMPLES = [
    OpenApiExample("Send to an email address", request_only=True, value={
        "to": "user@example.com", "payload": {"orderNumber": "ORD-123"}, "language": "en",
        "from": "billing@yourcompany.com",
        "overrides": {"email": {"subject": "Custom subject", "reply_to": "support@co.com"},
                      "sms": {"sender_id": "MYAPP"}}}),
    OpenApiExample("Send tomorrow morning", request_only=True, value={
        "to": "user@example.com", "payload": {"orderNumber": "ORD-123"},
        "send_at": "2027-04-17T09:00:00+02:00"}),
    OpenApiExample("Scheduled", response_only=True, status_codes=["200"], value={
        "success": True, "deliveries": [{"email": "d4e5f6a7-b8c9-4d0e-a1f2-3b4c5d6e7f8a"}],
        "status": "pending", "detailed_status": "scheduled",
        "send_at": "2027-04-17T07:00:00Z"}),
    OpenApiExample("Send to several contacts", request_only=True, value={
        "to": [{"email": "user1@example.com"}, {"email": "user2@example.com"}],
        "payload": {"orderNumber": "ORD-123"}}),
    OpenApiExample("Queued", response_only=True, status_codes=["200"], value={
        "success": True, "deliveries": [
            {"email": "d4e5f6a7-b8c9-4d0e-a1f2-3b4c5d6e7f8a"},
            {"sms": "a1b2c3d4-e5f6-7890-abcd-ef1234567890"}]}),
    OpenApiExample("Partly queued", response_only=True, status_codes=["200"], value={
        "success": True,
        "deliveries": [{"email": "d4e5f6a7-b8c9-4d0e-a1f2-3b4c5d6e7f8a"}],
        "errors": [{"code": "MISSING_IDENTIFIER",
                    "message": "Contact user@example.com has no phone for sms",
                    "channel": "sms", "recipient": "550e8400-e29b-41d4-a716-446655440000",
                    "retryable": False}]}),
    OpenApiExample("Refused", response_only=True, status_codes=["400"], value={
        "success": False, "deliveries": [], "errors": [
            {"code": "INTEGRATION_MISSING", "message": "No email integration configured",
             "channel": "email", "recipient": None, "retryable": False}]}),
]
EVENT_EXAMPLE = OpenApiExample("An event with an email template", request_only=True, value={
    "identifier": "user.welcome", "name": "User Welcome", "channels": ["email"],
    "templates": [{"channel": "email", "language": "en",
                   "subject": "Welcome, {{contact.name}}",
                   "html": "<p>{{#if contact.name}}Hi {{contact.name}}{{else}}Hi{{/if}}</p>"}]})
