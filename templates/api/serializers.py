from rest_framework import serializers

from api.fields import Guid, Str, StrictSerializer
from templates.models import MessageTemplate


class TemplateIn(StrictSerializer):
    id = Guid(required=False)
    name = Str(max_length=200)
    channel = serializers.ChoiceField(choices=["email"], default="email", required=False)
    language = serializers.RegexField(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", max_length=16,
                                      required=False, default="en")
    subject = Str(max_length=998)
    htmlBody = Str(required=False, allow_blank=True, default="",
                                     max_length=200_000, source="html_body")
    textBody = Str(required=False, allow_blank=True, default="",
                                     max_length=200_000, source="text_body")

    def validate(self, attrs: dict) -> dict:
        if not attrs.get("html_body") and not attrs.get("text_body"):
            raise serializers.ValidationError({"htmlBody": "Give htmlBody, textBody or both."})
        attrs.pop("channel", None)
        return attrs


class TemplateOut(serializers.ModelSerializer):
    htmlBody = serializers.CharField(source="html_body")
    textBody = serializers.CharField(source="text_body")
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")

    class Meta:
        model = MessageTemplate
        fields = ["id", "name", "channel", "language", "subject", "htmlBody", "textBody",
                  "version", "createdAt", "updatedAt"]
