"""Spec 002: ``POST /api/v1/communications/send`` (admin keys; RFC 9457 problem details),
and, beyond the spec, the in-app inbox an app shows: a user's messages, newest first
(keyset-paginated), and marking one read."""

import re
import uuid
from datetime import datetime
from typing import Any

from django.db.models import OuterRef, Subquery
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    inline_serializer,
)
from rest_framework import exceptions, serializers
from rest_framework.response import Response

from accounts.models import ApiKey
from api.families import MULTICHANNEL, PROBLEM, problem
from api.fields import Email as EmailField
from api.fields import HeaderStr, SendAt, Str, StrictSerializer
from api.views import HeraldAPIView, get_owned
from common import ssrf
from common.cursor import CursorInvalid, Position, cursor_decode, cursor_encode
from common.errors import HeraldError, NotFound
from common.times import iso
from comms.channels import BODY_LIMITS, SMS_MAX_SEGMENTS, sms_segments
from comms.lifecycle import provider_events_apply
from comms.models import Delivery, DeliveryEvent, Status
from comms.providers.base import ProviderEvent
from comms.scheduling import delivery_cancel
from comms.services import owner_type_id
from contacts.identifiers import EXPO_TOKEN, FCM_TOKEN, phone_parse
from contacts.models import Contact
from multichannel.services import (
    ADDRESS_FIELD,
    CHANNEL_NAMES,
    communications_of,
    communications_send,
    webhook_secret,
)

TAGS = ["communications"]
_CANONICAL = {name.lower(): name for name in CHANNEL_NAMES}
_HTML = re.compile(r"<\s*/?\s*[a-zA-Z][a-zA-Z0-9-]*(\s[^<>]*)?/?\s*>")
SUBJECT_MAX = 998


class OptionalStr(Str):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, allow_null=True, allow_blank=True, **kwargs)


class SendIn(StrictSerializer):
    subject = HeaderStr(max_length=SUBJECT_MAX)
    body = Str(max_length=BODY_LIMITS["email"], trim_whitespace=False)
    channels = serializers.ListField(child=Str(max_length=32), allow_empty=False,
                                     max_length=len(CHANNEL_NAMES))
    emailAddress = EmailField(required=False, allow_null=True, allow_blank=True)
    phoneNumber = OptionalStr(max_length=32)
    userId = OptionalStr(max_length=255)
    pushToken = OptionalStr(max_length=512)
    webhookUrl = OptionalStr(max_length=ssrf.MAX_URL_LENGTH)
    isHtml = serializers.BooleanField(required=False, default=False)
    sendAt = SendAt()

    def validate_channels(self, value: list[str]) -> list[str]:
        names = []
        for given in value:
            name = _CANONICAL.get(given.lower())
            if name is None:
                raise serializers.ValidationError(
                    f"Unknown channel {given!r}; valid: {', '.join(CHANNEL_NAMES)}.")
            if name in names:
                raise serializers.ValidationError(f"{name} is listed twice.")
            names.append(name)
        return names

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, str] = {}
        channels = [CHANNEL_NAMES[n] for n in data["channels"]]
        for channel in channels:
            field = ADDRESS_FIELD[channel]
            if not data.get(field):
                errors[field] = f"Required when {_name(channel)} is in channels."
        if not data.get("isHtml") and _HTML.search(data["body"]):
            errors["body"] = "The body contains HTML: set isHtml to true to send HTML."
        for channel in channels:
            error = _check_length(channel, data["subject"], data["body"])
            if error:
                errors.setdefault("body", error)
        if "sms" in channels and data.get("phoneNumber") and "phoneNumber" not in errors:
            try:
                data["phoneNumber"] = e164(data["phoneNumber"])
            except ValueError as exc:
                errors["phoneNumber"] = str(exc)
        if "push" in channels and data.get("pushToken") and not push_token_valid(
                data["pushToken"]):
            errors["pushToken"] = ("Not a push token: expected ExponentPushToken[…] or an "
                                   "FCM registration token.")
        if "webhook" in channels and data.get("webhookUrl"):
            try:
                ssrf.url_resolve(data["webhookUrl"])
            except ssrf.UnsafeUrl as exc:
                errors["webhookUrl"] = str(exc)
        if errors:
            raise serializers.ValidationError(errors)
        return data


def _name(channel: str) -> str:
    return next(k for k, v in CHANNEL_NAMES.items() if v == channel)


def _check_length(channel: str, subject: str, body: str) -> str | None:
    if channel == "sms":  # the subject is not sent by SMS
        if sms_segments(body) > SMS_MAX_SEGMENTS:
            return (f"Too long for Sms: {sms_segments(body)} segments, "
                    f"{SMS_MAX_SEGMENTS} at most.")
        return None
    if len(body) > BODY_LIMITS[channel]:
        return f"Too long for {_name(channel)}: {BODY_LIMITS[channel]} characters at most."
    return None


def e164(raw: str) -> str:
    """The number, which must be written in E.164 and be valid; else ValueError."""
    if not raw.startswith("+"):
        raise ValueError("Use E.164: + then country code and number, e.g. +97455555555.")
    formatted = phone_parse(raw)
    if formatted is None:
        raise ValueError("Not a valid phone number (E.164, e.g. +97455555555).")
    if formatted != raw:
        raise ValueError(f"Use E.164 without spaces or punctuation: {formatted}.")
    return formatted


def push_token_valid(token: str) -> bool:
    return bool(EXPO_TOKEN.match(token) or FCM_TOKEN.match(token))


RESULT_FIELDS = {
    "channel": serializers.CharField(), "success": serializers.BooleanField(),
    "error": serializers.CharField(allow_null=True),
    # Beyond the spec, only in a scheduled channel's result (sendAt still ahead).
    "id": serializers.UUIDField(required=False, help_text=(
        "Only when scheduled: the channel's message, to cancel with "
        "DELETE /api/v1/communications/send/{id} until it is sent.")),
    "status": serializers.CharField(required=False, help_text="Only when scheduled: "
                                    "\"scheduled\"."),
    "sendAt": serializers.DateTimeField(required=False, help_text=(
        "Only when scheduled: when it will be sent."))}
ResultDto = type(inline_serializer("CommunicationResultDto", RESULT_FIELDS))
BatchOut = inline_serializer("CommunicationBatchResponseDto", {"results": ResultDto(many=True)})
PROBLEM_FIELDS = {
    "type": serializers.CharField(), "title": serializers.CharField(),
    "status": serializers.IntegerField(), "detail": serializers.CharField(),
    "errors": serializers.DictField(child=serializers.ListField(child=serializers.CharField()),
                                    required=False)}
Problem = inline_serializer("ProblemDetails", {**PROBLEM_FIELDS})  # (the class takes them)
# The send's 400: a validation problem, or "Dispatch failed" with each channel's result.
SendProblem = inline_serializer("SendProblemDetails", {
    **PROBLEM_FIELDS, "results": ResultDto(
        many=True, required=False, help_text="When every channel failed (title \"Dispatch "
        "failed\"): each channel's result, as a 200 gives them.")})


def problems(*statuses: int) -> dict[tuple[int, str], Any]:
    return {(status, PROBLEM): Problem for status in statuses}


SEND_EXAMPLES = [
    OpenApiExample("Email, SMS and in-app", request_only=True, value={
        "subject": "System maintenance",
        "body": "A scheduled maintenance window starts at 22:00 UTC.",
        "channels": ["Email", "Sms", "InApp"], "emailAddress": "user@example.com",
        "phoneNumber": "+97455555555", "userId": "3f45ef0f-39d1-4d65-8eaa-5db7c0b8f763",
        "pushToken": None, "webhookUrl": None, "isHtml": False}),
    OpenApiExample("One result per channel", response_only=True, status_codes=["200"], value={
        "results": [{"channel": "Email", "success": True, "error": None},
                    {"channel": "Sms", "success": True, "error": None},
                    {"channel": "InApp", "success": False, "error": "User not found"}]}),
]


class AdminView(HeraldAPIView):
    family = MULTICHANNEL

    def check_permissions(self, request) -> None:
        super().check_permissions(request)
        if not request.auth.is_admin:
            raise exceptions.PermissionDenied("This endpoint needs an admin API key.")


class Send(AdminView):
    @extend_schema(request=SendIn, responses={200: BatchOut, **problems(403),
                                              (400, PROBLEM): SendProblem},
                   examples=SEND_EXAMPLES,
                   tags=TAGS, summary="Send a subject and body through several channels at once")
    def post(self, request):
        data = SendIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        addresses = {channel: v.get(field) or "" for channel, field in ADDRESS_FIELD.items()}
        results = communications_send(
            key=request.auth, subject=v["subject"], body=v["body"], channels=v["channels"],
            is_html=v["isHtml"], addresses=addresses, send_at=v["sendAt"])
        body = [{"channel": r.channel, "success": r.success, "error": r.error,
                 **({"id": str(r.delivery_id), "status": Status.SCHEDULED,
                     "sendAt": iso(r.send_at)} if r.send_at else {})}
                for r in results]
        if not any(r.success for r in results):
            return Response(problem(400, "Dispatch failed on every channel.",
                                    "Dispatch failed", results=body), status=400,
                            content_type="application/problem+json")
        return Response({"results": body})


CommunicationOut = inline_serializer("CommunicationDto", {
    "id": serializers.UUIDField(), "channel": serializers.CharField(),
    "status": serializers.CharField(help_text="scheduled, queued, sent, delivered, failed, "
                                    "cancelled, …"),
    "sendAt": serializers.DateTimeField(allow_null=True, help_text=(
        "While scheduled: when it will be sent.")),
    "createdAt": serializers.DateTimeField()})


def _communication(delivery: Delivery) -> dict[str, Any]:
    return {"id": str(delivery.id), "channel": _name(delivery.channel),
            "status": delivery.status,
            "sendAt": iso(delivery.next_attempt_at) if delivery.status == Status.SCHEDULED
            else None, "createdAt": iso(delivery.created_at)}


class SendCancel(AdminView):
    """Beyond the spec: a send made with ``sendAt`` can be withdrawn until its time."""

    @extend_schema(request=None, responses={200: CommunicationOut, **problems(403, 404, 409)},
                   parameters=[OpenApiParameter("communication_id", str,
                                                OpenApiParameter.PATH)],
                   tags=TAGS, summary="Cancel one channel's message not sent yet (beyond the "
                                      "spec): 404 another account's or key mode's, 409 once "
                                      "it is sending or sent")
    def delete(self, request, communication_id):
        rows = communications_of(key=request.auth)
        found = get_owned(rows, communication_id, "message")
        return Response(_communication(delivery_cancel(rows, found.id)))


WebhookSecretOut = inline_serializer("WebhookChannelSecret", {
    "secret": serializers.CharField(help_text=(
        "whsec_…: the Standard Webhooks secret every Webhook-channel post of this account is "
        "signed with (headers webhook-id, webhook-timestamp, webhook-signature)."))})


WEBHOOK_SECRET_LIVE_ONLY = ("The Webhook channel's secret signs live posts: only a live "
                            "admin key may read it.")


class WebhookSecret(AdminView):
    """Beyond the spec: what a receiver of the Webhook channel verifies with. A live admin
    key can already post anything to any receiver through the channel, so reading the secret
    gives it no more; the secret is made here or by the first live send, whichever comes
    first. A test key sends nothing live, so it may neither read the secret (it would sign
    posts a production receiver accepts) nor make it."""

    @extend_schema(responses={200: WebhookSecretOut, **problems(403)}, tags=TAGS,
                   summary="The Webhook channel's signing secret (made on first use)")
    def get(self, request):
        if request.auth.mode == ApiKey.Mode.TEST:
            raise exceptions.PermissionDenied(WEBHOOK_SECRET_LIVE_ONLY)
        return Response({"secret": webhook_secret(account=self.get_account())})


# --- in-app inbox ------------------------------------------------------------------------

CURSOR_SALT = "herald.inapp.inbox"
# Not shown in a user's inbox: not arrived yet (scheduled for later, or waiting), never sent.
NOT_IN_INBOX = [Status.SCHEDULED, Status.QUEUED, Status.SENDING, Status.FAILED,
                Status.CANCELLED]


class InboxQuery(StrictSerializer):
    userId = Str(max_length=255)
    limit = serializers.IntegerField(min_value=1, max_value=100, default=20)
    cursor = Str(required=False, max_length=500)
    unread = serializers.BooleanField(required=False, default=False)


ITEM_FIELDS = {"id": serializers.UUIDField(), "subject": serializers.CharField(),
               "body": serializers.CharField(), "createdAt": serializers.DateTimeField(),
               "readAt": serializers.DateTimeField(allow_null=True)}
InboxItem = inline_serializer("InAppMessage", ITEM_FIELDS)
InboxOut = inline_serializer("InAppInbox", {
    "items": inline_serializer("InAppMessages", ITEM_FIELDS, many=True),
                                            "nextCursor": serializers.CharField(allow_null=True)})


def _inbox(account, contact, mode: str):
    """The in-app messages a key of this mode sees: its own mode's only."""
    read_at = DeliveryEvent.objects.filter(delivery=OuterRef("pk"), name="comms.opened")
    contact_id = getattr(contact, "id", contact)  # a contact, or its id
    return (Delivery.objects.filter(account=account, owner_type_id=owner_type_id(Contact),
                                    owner_id=contact_id, channel="inapp", mode=mode)
            .exclude(status__in=NOT_IN_INBOX)
            .annotate(read_at=Subquery(read_at.values("occurred_at")[:1])))


def _item(d: Delivery) -> dict[str, Any]:
    return {"id": str(d.id), "subject": d.subject, "body": d.text_body,
            "createdAt": iso(d.created_at), "readAt": iso(d.read_at)}


class Inbox(AdminView):
    @extend_schema(parameters=[InboxQuery], responses={200: InboxOut, **problems(400, 403, 404)},
                   operation_id="api_v1_communications_inapp_list",
                   tags=TAGS, summary="A user's in-app messages, newest first")
    def get(self, request):
        from contacts.selectors import contact_find

        query = InboxQuery(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        q = query.validated_data
        account = self.get_account()
        contact = contact_find(account=account, identifier=q["userId"])
        if contact is None:
            raise NotFound("user")
        rows = _inbox(account, contact, request.auth.mode)
        if q["unread"]:
            rows = rows.filter(read_at__isnull=True)
        if q.get("cursor"):
            created, last_id = _cursor_decode(q["cursor"], account.id, contact.id)
            rows = rows.filter(created_at__lte=created).exclude(
                created_at=created, id__gte=last_id)
        page = list(rows.order_by("-created_at", "-id")[:q["limit"] + 1])
        more = len(page) > q["limit"]
        page = page[:q["limit"]]
        cursor = _cursor_encode(page[-1], account.id, contact.id) if more else None
        return Response({"items": [_item(d) for d in page], "nextCursor": cursor})


def _cursor_encode(last: Delivery, account_id: uuid.UUID, contact_id: uuid.UUID) -> str:
    return cursor_encode(salt=CURSOR_SALT, scope=f"{account_id.hex}.{contact_id.hex}",
                         position=Position(last.created_at, last.id))


def _cursor_decode(token: str, account_id: uuid.UUID,
                   contact_id: uuid.UUID) -> tuple[datetime, uuid.UUID]:
    try:
        last, _ = cursor_decode(salt=CURSOR_SALT, scope=f"{account_id.hex}.{contact_id.hex}",
                                token=token)
    except CursorInvalid as exc:
        raise HeraldError("validation_error", "cursor belongs to another inbox." if exc.foreign
                          else "cursor is not one this API gave.", status=400) from None
    return last.created_at, last.id


class InboxRead(AdminView):
    @extend_schema(request=None, responses={200: InboxItem, **problems(403, 404)}, tags=TAGS,
                   parameters=[OpenApiParameter("inapp_id", str, OpenApiParameter.PATH)],
                   summary="Mark an in-app message read (idempotent)")
    def post(self, request, inapp_id):
        try:
            pk = uuid.UUID(inapp_id)
        except ValueError:
            raise NotFound("message") from None
        account = self.get_account()
        delivery = (Delivery.objects.filter(account=account, channel="inapp", id=pk,
                                            mode=request.auth.mode)
                    .exclude(status__in=NOT_IN_INBOX).first())
        if delivery is None:
            raise NotFound("message")
        provider_events_apply([ProviderEvent(
            provider="inapp", provider_event_id=f"inapp-read-{delivery.id}", event="opened",
            occurred_at=timezone.now(), delivery_id=str(delivery.id))])
        return Response(_item(_inbox(account, delivery.owner_id, request.auth.mode).get(
            id=delivery.id)))
