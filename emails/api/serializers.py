"""Spec 003's PascalCase shapes: input checks, hand-built outputs, and their OpenAPI schemas."""

import uuid
from datetime import datetime
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.fields import Email as EmailAddress
from api.fields import HeaderStr, SendAt, Str, StrictBool, StrictSerializer
from comms.models import Delivery, Status
from domains.models import Brand
from emails.messages import MAX_NUM_PHOTOS, TYPES
from emails.models import Email, EmailType
from emails.selectors import STATE_OF, STATES
from emails.services import MAX_BATCH, EmailResult

MAX_UNIX = 253402300799  # 9999-12-31T23:59:59Z


def unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment else None


# --- POST /v1/Email/ ------------------------------------------------------------------------

class EmailBatchIn(StrictSerializer):
    """Only the batch's shape: each message is checked on its own by ``emails.messages``."""

    Messages = serializers.ListField(child=serializers.JSONField(), allow_empty=False,
                                     max_length=MAX_BATCH)


class EmailMessageDoc(serializers.Serializer):
    To = serializers.EmailField(help_text="Email address to send to.")
    Type = serializers.ChoiceField(choices=TYPES)
    BrandId = serializers.UUIDField(help_text="The Brand this email is sent from.")
    Token = serializers.CharField(required=False, allow_null=True, max_length=255,
                                  help_text="Required with token and tokenAndGroup.")
    GroupId = serializers.CharField(required=False, allow_null=True, max_length=255,
                                    help_text="Required with group and tokenAndGroup.")
    NumPhotos = serializers.IntegerField(required=False, allow_null=True, min_value=-1,
                                         max_value=MAX_NUM_PHOTOS,
                                         help_text="token, tokenAndGroup: -1 is unlimited.")
    OrderId = serializers.UUIDField(required=False, allow_null=True,
                                    help_text="Required with purchase (beyond the spec).")
    SendAt = SendAt(help_text="Beyond the spec: when to send this message, ISO 8601 with an "
                              "offset, at most a year ahead; null, absent or past: now. An "
                              "invalid one is this message's 400 in Results.")


class EmailBatchDoc(serializers.Serializer):
    Messages = EmailMessageDoc(many=True, help_text=f"1 to {MAX_BATCH} messages.")


class EmailResultOut(serializers.Serializer):
    Status = serializers.IntegerField(help_text="200, or the 4xx of this message.")
    MessageId = serializers.UUIDField(required=False)
    Error = serializers.CharField(required=False)
    State = serializers.CharField(required=False, help_text=(
        "Beyond the spec: \"scheduled\", only for a message given a SendAt still ahead."))
    SendAt = serializers.IntegerField(required=False, help_text=(
        "Beyond the spec: the Unix time it will be sent at, when scheduled (cancel it with "
        "DELETE /v1/Email/{MessageId} until then)."))


class EmailSendOut(serializers.Serializer):
    Results = EmailResultOut(many=True)


def result_out(result: EmailResult) -> dict[str, Any]:
    if result.message_id is not None and result.send_at is not None:
        return {"Status": result.status, "MessageId": str(result.message_id),
                "State": "scheduled", "SendAt": unix(result.send_at)}
    if result.message_id is not None:
        return {"Status": result.status, "MessageId": str(result.message_id)}
    return {"Status": result.status, "Error": result.error}


# --- GET /v1/Email/ -------------------------------------------------------------------------

class HistoryQuery(serializers.Serializer):
    BrandId = serializers.UUIDField(required=False, help_text="Only this brand's emails.")
    State = serializers.ChoiceField(choices=list(STATES), required=False)
    After = serializers.IntegerField(required=False, min_value=0, max_value=MAX_UNIX,
                                     help_text="Unix time: only emails last updated at or "
                                               "before it. Default: now.")
    Email = serializers.CharField(required=False, max_length=254,
                                  help_text="Exact address (letter case aside); the other "
                                            "filters are then ignored.")
    Next = serializers.CharField(required=False, max_length=4096,
                                 help_text="The Next of the previous page.")
    Limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=100,
                                     help_text="Emails per page (beyond the spec).")


class MsgDetailsOut(serializers.Serializer):
    To = serializers.CharField()
    Type = serializers.ChoiceField(choices=TYPES)
    BrandId = serializers.UUIDField()
    Token = serializers.CharField(required=False)
    GroupId = serializers.CharField(required=False)
    NumPhotos = serializers.IntegerField(required=False)
    OrderId = serializers.UUIDField(required=False)


class EmailOut(serializers.Serializer):
    Email = serializers.CharField()
    Type = serializers.ChoiceField(choices=TYPES)
    MessageId = serializers.UUIDField()
    SentAt = serializers.IntegerField(help_text="Unix time (accepted time until sent).")
    LastUpdated = serializers.IntegerField()
    State = serializers.ChoiceField(choices=list(STATES))
    BrandId = serializers.UUIDField()
    OwnerId = serializers.UUIDField()
    MsgDetails = MsgDetailsOut()
    ComplaintType = serializers.CharField(allow_blank=True)
    BounceType = serializers.CharField(allow_blank=True)
    BounceSubType = serializers.CharField(allow_blank=True)
    BounceDetails = serializers.CharField(allow_blank=True)
    DeliveredDate = serializers.IntegerField(allow_null=True)
    SendAt = serializers.IntegerField(required=False, help_text=(
        "Beyond the spec, only while State is scheduled: the Unix time it will be sent at."))


class HistoryOut(serializers.Serializer):
    Emails = EmailOut(many=True)
    Next = serializers.CharField(allow_null=True, help_text="null on the last page.")


class ErrorOut(serializers.Serializer):
    Error = serializers.CharField()


class EmailEnvelope(serializers.Serializer):
    Email = EmailOut(help_text="The message as the history shows it.")


# Bounce and complaint vocabulary: Amazon SES's, whatever provider reported the event.
_PERMANENT = {"hard", "bounce", "permanent"}
_TRANSIENT = {"soft", "blocked", "transient"}
_FEEDBACK_TYPES = {"abuse", "auth-failure", "fraud", "not-spam", "other", "virus"}


def _bounce(delivery: Delivery) -> tuple[str, str]:
    if delivery.status == Status.SUPPRESSED:
        return "Permanent", "OnAccountSuppressionList"
    if delivery.status == Status.DROPPED:
        return "Permanent", "Suppressed"
    kind = delivery.bounce_type.lower()
    bounce_type = ("Permanent" if kind in _PERMANENT
                   else "Transient" if kind in _TRANSIENT else "Undetermined")
    return bounce_type, delivery.bounce_subtype or "General"


def _complaint(delivery: Delivery) -> str:
    reason = delivery.failure_reason.strip().lower()
    return reason if reason in _FEEDBACK_TYPES else "abuse"


def msg_details(email: Email) -> dict[str, Any]:
    details: dict[str, Any] = {"To": email.delivery.recipient, "Type": email.type,
                               "BrandId": str(email.brand.uuid)}
    if email.type in (EmailType.TOKEN, EmailType.TOKEN_AND_GROUP):
        details["Token"] = email.token
        if email.num_photos is not None:
            details["NumPhotos"] = email.num_photos
    if email.type in (EmailType.GROUP, EmailType.TOKEN_AND_GROUP):
        details["GroupId"] = email.group_id
    if email.type == EmailType.PURCHASE and email.order_id:
        details["OrderId"] = str(email.order_id)
    return details


def email_out(email: Email) -> dict[str, Any]:
    """One entry of ``Emails``, built by hand (a page holds up to 1,000)."""
    delivery = email.delivery
    state = STATE_OF.get(delivery.status, "sent")
    bounce_type, bounce_subtype = _bounce(delivery) if state == "bounced" else ("", "")
    last = max(email.created_at, getattr(email, "last_event_at", None) or email.created_at)
    return {
        "Email": delivery.recipient,
        "Type": email.type,
        "MessageId": str(delivery.id),
        "SentAt": unix(delivery.sent_at or email.created_at),
        "LastUpdated": unix(last),
        "State": state,
        "BrandId": str(email.brand.uuid),
        "OwnerId": str(email.account_id),
        "MsgDetails": msg_details(email),
        "ComplaintType": _complaint(delivery) if state == "complaint" else "",
        "BounceType": bounce_type,
        "BounceSubType": bounce_subtype,
        "BounceDetails": delivery.failure_reason if state == "bounced" else "",
        "DeliveredDate": unix(delivery.delivered_at),
        **({"SendAt": unix(delivery.next_attempt_at)} if state == "scheduled" else {}),
    }


# --- /v1/Brand/ -----------------------------------------------------------------------------

INLINE_TEMPLATE = {
    "type": "object", "additionalProperties": False, "required": ["Subject"],
    "properties": {"Subject": {"type": "string", "minLength": 1, "maxLength": 998},
                   "HtmlBody": {"type": "string"}, "TextBody": {"type": "string"}},
}


@extend_schema_field({"oneOf": [{"type": "string", "format": "uuid"}, INLINE_TEMPLATE],
                      "nullable": True,
                      "description": "A MessageTemplate id, inline content (stored as a new "
                                     "template), or null for Herald's default."})
class TemplateRef(serializers.Field):
    default_error_messages = {
        "invalid": "Must be a template id, an object with Subject, HtmlBody and TextBody, "
                   "or null.",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, allow_null=True, **kwargs)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str):
            try:
                return uuid.UUID(data)
            except ValueError:
                self.fail("invalid")
        if not isinstance(data, dict) or set(data) - {"Subject", "HtmlBody", "TextBody"}:
            self.fail("invalid")
        content = {key: data.get(name, "") for key, name in (
            ("subject", "Subject"), ("html_body", "HtmlBody"), ("text_body", "TextBody"))}
        if not all(isinstance(v, str) for v in content.values()) or not content["subject"]:
            self.fail("invalid")
        if len(content["subject"]) > 998:
            raise serializers.ValidationError("Subject is longer than 998 characters.")
        return content

    def to_representation(self, value: Any) -> Any:
        return value


class BrandTemplatesIn(StrictSerializer):
    token = TemplateRef()
    group = TemplateRef()
    tokenAndGroup = TemplateRef()
    purchase = TemplateRef()


class BrandIn(StrictSerializer):
    Name = Str(max_length=100)
    FromEmail = EmailAddress(max_length=254)
    FromName = HeaderStr(max_length=200, allow_blank=True, required=False, default="")
    IsDefault = StrictBool(required=False, default=False,
                           help_text="Send the account's mail from this brand once its "
                                     "address is at the verified, enabled sender domain.")
    Templates = BrandTemplatesIn(required=False,
                                 help_text="Per email type; a type left out uses Herald's "
                                           "default content.")

    def to_brand_fields(self) -> dict[str, Any]:
        names = {"Name": "name", "FromEmail": "from_email", "FromName": "from_name",
                 "IsDefault": "is_default", "Templates": "templates"}
        return {names[k]: v for k, v in self.validated_data.items()}


class BrandUpdateIn(BrandIn):
    """PUT: the fields given change, the others stay; in Templates, the types named."""

    Name = Str(max_length=100, required=False)
    FromEmail = EmailAddress(max_length=254, required=False)
    FromName = Str(max_length=200, allow_blank=True, required=False)
    IsDefault = StrictBool(required=False)


class BrandTemplatesOut(serializers.Serializer):
    token = serializers.UUIDField(allow_null=True)
    group = serializers.UUIDField(allow_null=True)
    tokenAndGroup = serializers.UUIDField(allow_null=True)
    purchase = serializers.UUIDField(allow_null=True)


class BrandOut(serializers.Serializer):
    BrandId = serializers.UUIDField()
    OwnerId = serializers.UUIDField()
    Name = serializers.CharField()
    FromName = serializers.CharField(allow_blank=True)
    FromEmail = serializers.CharField()
    IsDefault = serializers.BooleanField()
    Templates = BrandTemplatesOut(help_text="null: Herald's default content for the type.")
    CreatedAt = serializers.IntegerField()
    LastUpdated = serializers.IntegerField()


class BrandEnvelope(serializers.Serializer):
    Brand = BrandOut()


class BrandsEnvelope(serializers.Serializer):
    Brands = BrandOut(many=True)


def brand_out(brand: Brand) -> dict[str, Any]:
    templates = brand.templates if isinstance(brand.templates, dict) else {}
    return {
        "BrandId": str(brand.uuid), "OwnerId": str(brand.account_id), "Name": brand.name,
        "FromName": brand.from_name, "FromEmail": brand.from_email,
        "IsDefault": brand.is_default,
        "Templates": {t: _uuid_or_none(templates.get(t)) for t in TYPES},
        "CreatedAt": unix(brand.created_at), "LastUpdated": unix(brand.updated_at),
    }


def _uuid_or_none(value: Any) -> str | None:
    try:
        return str(uuid.UUID(str(value))) if value else None
    except ValueError:
        return None
