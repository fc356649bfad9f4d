"""Spec 004's notification endpoints: events, send, deliveries (with their trace) and
integrations. Bearer keys (live_/test_), ``{success, …}`` envelopes, errors as
``{error, code}`` with the documented codes."""

from typing import Any

from django.conf import settings
from drf_spectacular.utils import (
    OpenApiParameter,
    PolymorphicProxySerializer,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.response import Response

from api.families import NOTIFICATIONS
from api.fields import SendAt, Str, StrictSerializer
from api.views import HeraldAPIView, get_owned
from common.errors import NotFound
from common.times import iso
from comms.models import FAILURES, PUBLIC_STATUS, Delivery, Integration, Status
from comms.providers.registry import CHANNELS
from comms.scheduling import delivery_cancel, scheduled
from notifications.api.serializers import (
    EVENT_EXAMPLE,
    SEND_EXAMPLES,
    DeliveriesEnvelope,
    DeliveryEnvelope,
    EventEnvelope,
    EventsEnvelope,
    IntegrationsEnvelope,
    RecipientField,
    SendOut,
    TraceEnvelope,
)
from notifications.services import notification_send
from templates.api.views import actor as template_actor
from templates.events import (
    EVENT_CHANNELS,
    TemplateIn,
    event_find,
    event_json,
    event_save,
    events_of,
)

TAGS = ["notifications"]
Error = inline_serializer("V004Error", {"error": serializers.CharField(),
                                        "code": serializers.CharField()})


def ok(data: Any, status: int = 200) -> Response:
    return Response({"success": True, "data": data}, status=status)


# --- events -------------------------------------------------------------------------------

class TemplateField(StrictSerializer):
    channel = serializers.ChoiceField(choices=EVENT_CHANNELS)
    language = Str(max_length=16, required=False, default="")
    subject = Str(max_length=998, required=False, allow_blank=True, default="")
    body = Str(max_length=100_000, required=False, allow_blank=True, default="")
    html = Str(max_length=1_000_000, required=False, allow_blank=True, default="")


class EventIn(StrictSerializer):
    identifier = Str(max_length=128)
    name = Str(max_length=200, required=False, allow_blank=True, default="")
    description = Str(max_length=2000, required=False, allow_blank=True, default="")
    channels = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_CHANNELS),
                                     allow_empty=False, max_length=len(EVENT_CHANNELS))
    default_language = Str(max_length=16, required=False, default="en")
    templates = serializers.ListField(child=TemplateField(), max_length=200)


class EventPut(EventIn):
    identifier = Str(max_length=128, required=False)


def _save(account, data: dict[str, Any], identifier: str, replace=None, actor: str = ""):
    language = data["default_language"]
    templates = [TemplateIn(t["channel"], t["language"] or language, t["subject"], t["body"],
                            t["html"]) for t in data["templates"]]
    return event_save(account=account, identifier=identifier, name=data["name"],
                      channels=data["channels"], templates=templates, default_language=language,
                      description=data["description"], replace=replace, actor=actor)


class Events(HeraldAPIView):
    family = NOTIFICATIONS

    configuration = True  # test keys read, never change

    @extend_schema(responses={200: EventsEnvelope}, tags=TAGS, summary="List notification events")
    def get(self, request):
        events = events_of(account=self.get_account())
        return ok({"events": [event_json(e) for e in events]})

    @extend_schema(request=EventIn, responses={201: EventEnvelope, 400: Error, 409: Error},
                   examples=[EVENT_EXAMPLE], tags=TAGS,
                   summary="Create an event with its templates (beyond the spec)")
    def post(self, request):
        data = EventIn(data=request.data)
        data.is_valid(raise_exception=True)
        event = _save(self.get_account(), data.validated_data,
                      data.validated_data["identifier"], actor=template_actor(request))
        return ok({"event": event_json(event, detail=True)}, status=201)


class EventDetail(HeraldAPIView):
    family = NOTIFICATIONS

    configuration = True  # test keys read, never change

    @extend_schema(responses={200: EventEnvelope, 404: Error}, tags=TAGS,
                   summary="An event with its templates and channels")
    def get(self, request, event_identifier):
        event = event_find(account=self.get_account(), identifier=event_identifier)
        if event is None:
            raise NotFound("event")
        return ok({"event": event_json(event, detail=True)})

    @extend_schema(request=EventPut, responses={200: EventEnvelope, 201: EventEnvelope,
                                                400: Error},
                   tags=TAGS, summary="Create or replace an event whole (beyond the spec)")
    def put(self, request, event_identifier):
        identifier = event_identifier
        data = EventPut(data=request.data)
        data.is_valid(raise_exception=True)
        given = data.validated_data.get("identifier")
        if given is not None and given != identifier:
            raise serializers.ValidationError(
                {"identifier": "Differs from the identifier in the path."})
        account = self.get_account()
        current = event_find(account=account, identifier=identifier)
        event = _save(account, data.validated_data, identifier, replace=current,
                      actor=template_actor(request))
        return ok({"event": event_json(event, detail=True)},
                  status=200 if current else 201)


# --- send ---------------------------------------------------------------------------------

class SendIn(StrictSerializer):
    to = RecipientField()
    payload = serializers.DictField(required=False, default=dict)
    language = Str(max_length=16, required=False, allow_null=True)
    overrides = serializers.DictField(required=False, default=dict)
    send_at = SendAt()

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = Str(max_length=254, required=False, allow_null=True)
        return fields

    def validate_payload(self, value: dict[str, Any]) -> dict[str, Any]:
        import json

        if len(json.dumps(value, default=str)) > 256_000:
            raise serializers.ValidationError("At most 256 kB of JSON.")
        return value


SendRefused = PolymorphicProxySerializer(
    component_name="V004SendRefused", serializers=[SendOut, Error],
    resource_type_field_name=None)


class Send(HeraldAPIView):
    family = NOTIFICATIONS

    @extend_schema(request=SendIn, responses={200: SendOut, 400: SendRefused, 402: Error,
                                              403: Error, 404: Error},
                   examples=SEND_EXAMPLES, tags=TAGS,
                   summary="Send an event's notification to one or more recipients")
    def post(self, request, event, channel=None):
        if channel is not None and channel not in EVENT_CHANNELS:
            raise serializers.ValidationError(
                {"channel": f"One of {', '.join(EVENT_CHANNELS)}."})
        data = SendIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        outcome = notification_send(
            key=request.auth, event_identifier=event, to=v["to"], payload=v["payload"],
            language=v.get("language"), sender=v.get("from"), channel=channel,
            overrides=v["overrides"], send_at=v["send_at"])
        # success: something was queued (listed in deliveries); errors: each refused part.
        # So success: false means nothing was queued: resending it never sends twice.
        body: dict[str, Any] = {
            "success": bool(outcome.deliveries),
            "deliveries": [{name: str(pk)} for name, pk in outcome.deliveries]}
        if outcome.deliveries and scheduled(v["send_at"]):
            body.update(status=PUBLIC_STATUS[Status.SCHEDULED],
                        detailed_status=Status.SCHEDULED, send_at=iso(v["send_at"]))
        if outcome.errors:
            body["errors"] = [{"code": e.code, "message": e.message, "channel": e.channel,
                               "recipient": e.recipient, "retryable": e.retryable}
                              for e in outcome.errors]
        return Response(body, status=200 if outcome.deliveries else 400)


# --- deliveries ---------------------------------------------------------------------------

# Spec 004's four statuses over ours: comms.models.PUBLIC_STATUS (its webhooks' too).
STATUS_FILTER = {public: [s for s, p in PUBLIC_STATUS.items() if p == public]
                 for public in ("pending", "sent", "delivered", "failed")}


class DeliveriesQuery(StrictSerializer):
    limit = serializers.IntegerField(min_value=1, max_value=100, default=20)
    offset = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)
    event = Str(max_length=128, required=False)
    channel = serializers.ChoiceField(choices=CHANNELS, required=False)
    status = serializers.ChoiceField(choices=list(STATUS_FILTER), required=False)


def delivery_json(d: Delivery) -> dict[str, Any]:
    failed = d.status in FAILURES
    return {
        "uuid": str(d.id), "channel": d.channel, "status": PUBLIC_STATUS[d.status],
        "detailed_status": d.status, "event_name": d.event_name or None,
        "recipient": d.recipient, "contact_uuid": (d.refs or {}).get("contactId"),
        "provider": d.provider or None, "message_id": d.provider_message_id or None,
        "sandbox": d.mode == Delivery.Mode.TEST, "created_at": iso(d.created_at),
        "sent_at": iso(d.sent_at), "delivered_at": iso(d.delivered_at),
        "error": (d.failure_reason or d.status) if failed else None,
        "send_at": iso(d.next_attempt_at) if d.status == Status.SCHEDULED else None,
    }


class Deliveries(HeraldAPIView):
    family = NOTIFICATIONS

    @extend_schema(parameters=[DeliveriesQuery], responses={200: DeliveriesEnvelope,
                                                            400: Error},
                   operation_id="v1_deliveries_list", tags=TAGS,
                   summary="Recent deliveries, newest first, with filters")
    def get(self, request):
        query = DeliveriesQuery(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        q = query.validated_data
        rows = Delivery.objects.filter(account=self.get_account(), mode=request.auth.mode)
        if q.get("event"):
            rows = rows.filter(event_name=q["event"])
        if q.get("channel"):
            rows = rows.filter(channel=q["channel"])
        if q.get("status"):
            rows = rows.filter(status__in=STATUS_FILTER[q["status"]])
        limit, offset = q["limit"], q["offset"]
        page = rows.order_by("-created_at", "-id")[offset:offset + limit]
        return ok({"deliveries": [delivery_json(d) for d in page], "total": rows.count(),
                   "limit": limit, "offset": offset})


class DeliveryDetail(HeraldAPIView):
    family = NOTIFICATIONS

    @extend_schema(request=None, responses={200: DeliveryEnvelope, 404: Error, 409: Error},
                   tags=TAGS, operation_id="v1_deliveries_cancel",
                   parameters=[OpenApiParameter("delivery_uuid", str, OpenApiParameter.PATH)],
                   summary="Cancel a delivery not sent yet (beyond the spec)",
                   description=NOTIFICATIONS.description + "\n\nA `pending` delivery "
                               "still `scheduled` or `queued` becomes "
                               "`failed` / `cancelled` and is never sent; `delivery.cancelled` "
                               "is emitted to webhooks. 409 CONFLICT once a worker has it or it "
                               "is sent; 404 for another account's or key mode's delivery.")
    def delete(self, request, delivery_uuid):
        # Spec 004's own deliveries (an event's notifications) in this key's mode.
        rows = Delivery.objects.filter(account=self.get_account(), mode=request.auth.mode
                                       ).exclude(event_name="")
        found = get_owned(rows, delivery_uuid, "delivery")
        return ok({"delivery": delivery_json(delivery_cancel(rows, found.id))})


class Trace(HeraldAPIView):
    family = NOTIFICATIONS

    @extend_schema(responses={200: TraceEnvelope, 404: Error}, tags=TAGS,
                   parameters=[OpenApiParameter("delivery_uuid", str, OpenApiParameter.PATH)],
                   summary="A delivery's timeline and the content as sent")
    def get(self, request, delivery_uuid):
        delivery = get_owned(Delivery.objects.filter(account=self.get_account(),
                                                     mode=request.auth.mode),
                             delivery_uuid, "delivery")
        timeline = [{"event": e.name, "status": e.status, "at": iso(e.occurred_at),
                     "detail": e.detail} for e in delivery.events.order_by("occurred_at", "id")]
        return ok({
            "delivery": delivery_json(delivery), "timeline": timeline,
            "content": {"subject": delivery.subject, "html": delivery.html_body,
                        "text": delivery.text_body, "template_version": delivery.template_version,
                        "template_uuid": str(delivery.template_id) if delivery.template_id
                        else None},
            "attempts": delivery.attempts,
        })


# --- integrations -------------------------------------------------------------------------

class IntegrationsQuery(StrictSerializer):
    channel = serializers.ChoiceField(choices=CHANNELS, required=False)


class Integrations(HeraldAPIView):
    family = NOTIFICATIONS

    @extend_schema(parameters=[IntegrationsQuery], responses={200: IntegrationsEnvelope,
                                                              400: Error},
                   operation_id="v1_integrations_list", tags=TAGS,
                   summary="Channel integrations, secrets stripped")
    def get(self, request):
        query = IntegrationsQuery(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        channel = query.validated_data.get("channel")
        rows = Integration.objects.filter(account=self.get_account())
        if channel:
            rows = rows.filter(channel=channel)
        out = [{"uuid": str(i.id), "channel": i.channel, "provider": i.provider,
                "name": i.name or None, "priority": i.priority,
                "status": "active" if i.is_active else "inactive",
                "config": {k: v for k, v in i.config.items() if not _secretish(k)}}
               for i in rows.order_by("channel", "priority", "created_at")]
        if channel in (None, "email"):  # the platform's provider: always there
            out.insert(0, {"uuid": None, "channel": "email",
                           "provider": settings.HERALD_EMAIL_PROVIDER, "name": "platform",
                           "priority": 0, "status": "active", "config": {}})
        return ok({"integrations": out})


def _secretish(name: str) -> bool:
    return any(word in name.lower() for word in ("secret", "token", "key", "password"))



