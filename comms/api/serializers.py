from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.api import Guid, Str, StrictSerializer
from common.times import iso
from comms.models import Delivery, DeliveryEvent


class SendIn(StrictSerializer):
    attendeeId = Guid(source="attendee_id")
    templateId = Guid(source="template_id")
    correlationId = Str(max_length=128, required=False, allow_null=True,
                                          allow_blank=False, default=None, trim_whitespace=False,
                                          source="correlation_id")


class SendOut(serializers.Serializer):
    attendeeInvitationId = serializers.UUIDField()
    status = serializers.CharField()


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
    attendeeId = serializers.UUIDField(source="attendee_id", allow_null=True)
    templateId = serializers.UUIDField(source="template_id")
    correlationId = serializers.CharField(source="correlation_id", allow_null=True)
    failureType = serializers.SerializerMethodField()
    lastFailureAt = serializers.SerializerMethodField()
    lastFailureReason = serializers.SerializerMethodField()
    queuedAt = serializers.DateTimeField(source="created_at")
    sentAt = serializers.DateTimeField(source="sent_at", allow_null=True)
    deliveredAt = serializers.DateTimeField(source="delivered_at", allow_null=True)
    events = TimelineEvent(many=True)

    class Meta:
        model = Delivery
        fields = ["attendeeInvitationId", "attendeeId", "templateId", "recipient", "status",
                  "correlationId", "attempts", "failureType", "lastFailureAt",
                  "lastFailureReason", "queuedAt", "sentAt", "deliveredAt", "events"]

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_failureType(self, delivery: Delivery) -> str | None:
        return delivery.failure_type or None

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_lastFailureAt(self, delivery: Delivery) -> str | None:
        return iso(delivery.failed_at)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_lastFailureReason(self, delivery: Delivery) -> str | None:
        return delivery.failure_reason or None


class SuppressionOut(serializers.Serializer):
    email = serializers.CharField(source="address")
    channel = serializers.CharField()
    reason = serializers.CharField()
    detail = serializers.CharField()
    attendeeInvitationId = serializers.UUIDField(source="delivery_id", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")
    removedAt = serializers.DateTimeField(source="removed_at", allow_null=True)
    removedReason = serializers.CharField(source="removed_reason")


class SuppressionRemoveIn(StrictSerializer):
    reason = Str(max_length=500)
