from typing import Any

from rest_framework import serializers

from api.fields import Str, StrictSerializer
from webhooks.models import Attempt, Endpoint, Message


class Bool(serializers.BooleanField):
    """A JSON boolean: ``"yes"`` or ``1`` are errors, not truthy."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class EventNames(serializers.ListField):
    child = Str(max_length=64)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_empty=False, max_length=50, **kwargs)


class WebhookIn(StrictSerializer):
    url = Str(max_length=2048)
    enabled_events = EventNames(required=False)
    description = Str(required=False, allow_blank=True, max_length=500)
    # Also receive test keys' sandbox deliveries' events (their payloads say "mode": "test").
    include_test_events = Bool(required=False)


class WebhookPatch(StrictSerializer):
    url = Str(required=False, max_length=2048)
    enabled_events = EventNames(required=False)
    description = Str(required=False, allow_blank=True, max_length=500)
    is_active = Bool(required=False)
    include_test_events = Bool(required=False)


class ResendFailedIn(StrictSerializer):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField(required=False)


class MessagesQuery(StrictSerializer):
    status = serializers.ChoiceField(choices=Message.Status.choices, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=100, default=20)
    offset = serializers.IntegerField(min_value=0, default=0)


class WebhookOut(serializers.ModelSerializer):
    uuid = serializers.UUIDField(source="id")
    enabled_events = serializers.ListField(child=serializers.CharField())  # a JSON list

    class Meta:
        model = Endpoint
        fields = ["uuid", "url", "description", "enabled_events", "include_test_events",
                  "is_active", "disabled_reason", "created_at", "updated_at"]


class WebhookCreatedOut(WebhookOut):
    signing_secret = serializers.SerializerMethodField()

    class Meta(WebhookOut.Meta):
        fields = [*WebhookOut.Meta.fields, "signing_secret"]

    def get_signing_secret(self, endpoint: Endpoint) -> str:
        return self.context["signing_secret"]


class WebhookEnvelope(serializers.Serializer):
    success = serializers.BooleanField()
    webhook = WebhookOut(allow_null=True)


class WebhookCreatedEnvelope(serializers.Serializer):
    success = serializers.BooleanField()
    webhook = WebhookCreatedOut()


class AttemptOut(serializers.ModelSerializer):
    class Meta:
        model = Attempt
        fields = ["created_at", "status_code", "duration_ms", "response_body", "error",
                  "succeeded"]


class MessageOut(serializers.ModelSerializer):
    id = serializers.CharField(source="webhook_id")
    attempt_log = AttemptOut(many=True)

    class Meta:
        model = Message
        fields = ["id", "event_type", "status", "attempts", "payload", "created_at",
                  "next_attempt_at", "last_attempt_at", "succeeded_at", "last_error",
                  "attempt_log"]
