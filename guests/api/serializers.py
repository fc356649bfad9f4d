from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.fields import Email, Guid, SendAt, Str, StrictSerializer
from common.times import iso
from comms.models import Delivery, DeliveryEvent, Status
from guests.event_times import RANGE_WORDS, event_time_problem
from guests.models import Attendee, Event, time_zone_names


class EventTimeField(serializers.DateTimeField):
    """An event's start or end, within ``guests.event_times``' range (a 400 outside it)."""

    def to_internal_value(self, value: Any) -> Any:
        moment = super().to_internal_value(value)
        problem = event_time_problem(moment)
        if problem:
            raise serializers.ValidationError(problem)
        return moment


class EventIn(StrictSerializer):
    id = Guid(required=False)
    name = Str(max_length=200)
    venue = Str(max_length=200, required=False, allow_blank=True, default="")
    startsAt = EventTimeField(required=False, allow_null=True, source="starts_at",
                         help_text=f"ISO 8601, {RANGE_WORDS}.")
    endsAt = EventTimeField(required=False, allow_null=True, source="ends_at",
                       help_text=f"ISO 8601, {RANGE_WORDS}; not before startsAt.")
    timeZone = Str(max_length=64, required=False, source="time_zone", help_text=(
        "Where the event takes place, an IANA name such as Europe/London: messages show its "
        "times in this zone. Default: the server's (UTC)."))

    def validate_timeZone(self, value: str) -> str:
        if value not in time_zone_names():
            raise serializers.ValidationError("An IANA time zone name, such as Europe/London.")
        return value

    def validate(self, attrs: dict) -> dict:
        starts, ends = attrs.get("starts_at"), attrs.get("ends_at")
        if starts and ends and ends < starts:
            raise serializers.ValidationError({"endsAt": "Must not be before startsAt."})
        return attrs


class EventOut(serializers.ModelSerializer):
    startsAt = serializers.DateTimeField(source="starts_at", allow_null=True)
    endsAt = serializers.DateTimeField(source="ends_at", allow_null=True)
    timeZone = serializers.CharField(source="time_zone")
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Event
        fields = ["id", "name", "venue", "startsAt", "endsAt", "timeZone", "createdAt"]


class GuestIn(StrictSerializer):
    id = Guid(help_text="Your GUID for this attendee: the idempotency key.")
    firstName = Str(max_length=100, required=False, allow_blank=True,
                                      default="", source="first_name")
    lastName = Str(max_length=100, required=False, allow_blank=True,
                                     default="", source="last_name")
    email = Email(max_length=254)
    eventId = Guid(source="event_id")
    commsTemplateId = Guid(required=False, allow_null=True, default=None,
                                            source="comms_template_id")
    correlationId = Str(max_length=128, required=False, allow_null=True,
                                          allow_blank=False, default=None, trim_whitespace=False,
                                          source="correlation_id")
    sendAt = SendAt(source="send_at")

    def validate(self, attrs: dict) -> dict:
        if attrs.get("send_at") and not attrs.get("comms_template_id"):
            raise serializers.ValidationError(
                {"sendAt": "Only with commsTemplateId: without a template nothing is sent."})
        return attrs


class GuestOut(serializers.ModelSerializer):
    firstName = serializers.CharField(source="first_name")
    lastName = serializers.CharField(source="last_name")
    eventId = serializers.UUIDField(source="event_id")
    correlationId = serializers.CharField(source="correlation_id", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Attendee
        fields = ["id", "firstName", "lastName", "email", "eventId", "correlationId",
                  "createdAt"]


# --- the two-step send (/comms/v1/api/comms/send) ------------------------------------------

class SendIn(StrictSerializer):
    attendeeId = Guid(source="attendee_id")
    templateId = Guid(source="template_id")
    correlationId = Str(max_length=128, required=False, allow_null=True,
                                          allow_blank=False, default=None, trim_whitespace=False,
                                          source="correlation_id")
    sendAt = SendAt(source="send_at")


class SendOut(serializers.Serializer):
    attendeeInvitationId = serializers.UUIDField()
    status = serializers.ChoiceField(choices=["queued", "scheduled"], help_text=(
        "scheduled: waiting for sendAt (cancel it with DELETE on its id); queued: sent now."))
    sendAt = serializers.DateTimeField(allow_null=True, help_text=(
        "When it will be sent, if scheduled; null when sent now."))


class SendRejected(serializers.Serializer):
    error = serializers.CharField()
    message = serializers.CharField()
    failureType = serializers.ChoiceField(
        choices=["bounced", "dropped", "spam_reported", "unsubscribed"])
    lastFailureAt = serializers.DateTimeField()
    lastFailureReason = serializers.CharField(allow_null=True)


class TimelineEvent(serializers.ModelSerializer):
    occurredAt = serializers.DateTimeField(source="occurred_at")

    class Meta:
        model = DeliveryEvent
        fields = ["name", "status", "occurredAt", "detail"]


class InvitationOut(serializers.ModelSerializer):
    attendeeInvitationId = serializers.UUIDField(source="id")
    attendeeId = serializers.UUIDField(source="refs.attendeeId", allow_null=True)
    templateId = serializers.UUIDField(source="template_id")
    correlationId = serializers.CharField(source="correlation_id", allow_null=True)
    failureType = serializers.SerializerMethodField()
    lastFailureAt = serializers.SerializerMethodField()
    lastFailureReason = serializers.SerializerMethodField()
    queuedAt = serializers.DateTimeField(source="created_at")
    sentAt = serializers.DateTimeField(source="sent_at", allow_null=True)
    deliveredAt = serializers.DateTimeField(source="delivered_at", allow_null=True)
    sendAt = serializers.SerializerMethodField()
    events = TimelineEvent(many=True)

    class Meta:
        model = Delivery
        fields = ["attendeeInvitationId", "attendeeId", "templateId", "recipient", "status",
                  "correlationId", "attempts", "failureType", "lastFailureAt",
                  "lastFailureReason", "queuedAt", "sendAt", "sentAt", "deliveredAt",
                  "events"]

    @extend_schema_field(serializers.DateTimeField(allow_null=True, help_text=(
        "While scheduled: when it will be sent. null once it is due, sent or cancelled (a "
        "cancelled send's time is its lastFailureAt, failureType cancelled).")))
    def get_sendAt(self, delivery: Delivery) -> str | None:
        return iso(scheduled_for(delivery.status, delivery.next_attempt_at))

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_failureType(self, delivery: Delivery) -> str | None:
        return delivery.failure_type or None

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_lastFailureAt(self, delivery: Delivery) -> str | None:
        return iso(delivery.failed_at)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_lastFailureReason(self, delivery: Delivery) -> str | None:
        return delivery.failure_reason or None


def scheduled_for(status: str, next_attempt_at: Any) -> Any:
    """A delivery's send time while it is scheduled (its due time), else None."""
    return next_attempt_at if status == Status.SCHEDULED else None
