from rest_framework import serializers

from api.fields import Str, StrictSerializer


class SuppressionOut(serializers.Serializer):
    email = serializers.CharField(source="address")
    channel = serializers.CharField()
    reason = serializers.CharField()
    topic = serializers.CharField(help_text=(
        'What it stops: "" every message (a bounce, a spam report), a template category\'s '
        'topic, or "*" every topic (an unsubscribe; transactional mail still goes).'))
    detail = serializers.CharField()
    attendeeInvitationId = serializers.UUIDField(source="delivery_id", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")
    removedAt = serializers.DateTimeField(source="removed_at", allow_null=True)
    removedReason = serializers.CharField(source="removed_reason")


class SuppressionRemoveIn(StrictSerializer):
    reason = Str(max_length=500)
    topic = Str(required=False, allow_blank=True, default="", max_length=64, help_text=(
        'Which suppression: "" (the default) the one that stops every message, a topic or "*" '
        "an unsubscribe."))
