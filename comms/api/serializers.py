from rest_framework import serializers

from api.fields import Str, StrictSerializer


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
