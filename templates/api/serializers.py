from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.fields import Guid, Str, StrictBool, StrictSerializer
from templates.categories import MAX_LENGTH, PROBLEM, TOPIC, category_clean
from templates.models import TRANSACTIONAL, MessageTemplate


@extend_schema_field({"type": "string", "pattern": f"^{TOPIC.pattern}$", "maxLength": MAX_LENGTH,
                      "default": TRANSACTIONAL})
class Category(Str):
    """``transactional`` or a topic (a lower-case slug), stored trimmed and lower-cased."""

    default_error_messages = {"not_a_category": PROBLEM}

    def to_internal_value(self, data):
        try:
            return category_clean(super().to_internal_value(data))
        except ValueError:
            self.fail("not_a_category")


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
    # Left out of a PUT: kept as they are (a caller that does not know them changes nothing).
    category = Category(required=False, help_text=(
        f'"{TRANSACTIONAL}" (the default: tickets, receipts; never unsubscribable) or a topic '
        "such as event-updates: its emails carry one-click unsubscribe (RFC 8058) and stop "
        "for whoever unsubscribed from the topic."))
    attachQr = StrictBool(required=False, source="attach_qr",
                          help_text="Attach the guest's check-in QR code (a ticket).")
    attachIcs = StrictBool(required=False, source="attach_ics",
                           help_text="Attach the event as a calendar invite (.ics).")

    def validate(self, attrs: dict) -> dict:
        if not attrs.get("html_body") and not attrs.get("text_body"):
            raise serializers.ValidationError({"htmlBody": "Give htmlBody, textBody or both."})
        attrs.pop("channel", None)
        return attrs


class TemplateOut(serializers.ModelSerializer):
    htmlBody = serializers.CharField(source="html_body")
    textBody = serializers.CharField(source="text_body")
    attachQr = serializers.BooleanField(source="attach_qr")
    attachIcs = serializers.BooleanField(source="attach_ics")
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")

    class Meta:
        model = MessageTemplate
        fields = ["id", "name", "channel", "language", "subject", "htmlBody", "textBody",
                  "category", "attachQr", "attachIcs", "version", "createdAt", "updatedAt"]
