"""Spec 004's webhook endpoints (``/v1/webhooks``) and the resend/rotate/test extras."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from api.families import NOTIFICATIONS
from api.views import HeraldAPIView, get_owned
from common.errors import NotFound
from webhooks import selectors, services
from webhooks.api.serializers import (
    MessageOut,
    MessagesQuery,
    ResendFailedIn,
    WebhookCreatedEnvelope,
    WebhookCreatedOut,
    WebhookEnvelope,
    WebhookIn,
    WebhookOut,
    WebhookPatch,
)
from webhooks.models import Endpoint

TAGS = ["webhooks"]
Success = inline_serializer("WebhookDeleted", {"success": serializers.BooleanField(),
                                               "deleted": serializers.BooleanField()})
ResendCount = inline_serializer("WebhookResent", {"success": serializers.BooleanField(),
                                                  "resent": serializers.IntegerField()})
MessageEnvelope = inline_serializer("WebhookMessageEnvelope", {
    "success": serializers.BooleanField(), "message": MessageOut()})


class WebhooksView(HeraldAPIView):
    family = NOTIFICATIONS

    # The endpoint and its messages are live configuration: a test key reads them, and a
    # change, a rotation, a test message or a resend needs a live key.
    configuration = True

    def get_endpoint(self, webhook_uuid: str) -> Endpoint:
        live = selectors.endpoints_live(account=self.get_account())
        return get_owned(live, webhook_uuid, "webhook")


def _created(endpoint: Endpoint, secret: str, status: int = 201) -> Response:
    webhook = WebhookCreatedOut(endpoint, context={"signing_secret": secret}).data
    return Response({"success": True, "webhook": webhook}, status=status)


class Webhooks(WebhooksView):
    @extend_schema(responses=WebhookEnvelope, tags=TAGS,
                   summary="The account's webhook endpoint (null when none)")
    def get(self, request):
        endpoint = selectors.endpoint_current(account=self.get_account())
        return Response({"success": True,
                         "webhook": WebhookOut(endpoint).data if endpoint else None})

    @extend_schema(request=WebhookIn, responses={201: WebhookCreatedEnvelope}, tags=TAGS,
                   summary="Create the account's webhook endpoint (one per account: 409)")
    def post(self, request):
        data = WebhookIn(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint, secret = services.endpoint_create(account=self.get_account(),
                                                    **data.validated_data)
        return _created(endpoint, secret)


class Webhook(WebhooksView):
    @extend_schema(responses=WebhookEnvelope, tags=TAGS, summary="One webhook endpoint")
    def get(self, request, webhook_uuid):
        return Response({"success": True,
                         "webhook": WebhookOut(self.get_endpoint(webhook_uuid)).data})

    @extend_schema(request=WebhookPatch, responses=WebhookEnvelope, tags=TAGS,
                   summary="Update url, enabled_events, include_test_events, is_active or "
                           "description")
    def patch(self, request, webhook_uuid):
        endpoint = self.get_endpoint(webhook_uuid)
        data = WebhookPatch(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = services.endpoint_update(endpoint=endpoint, **data.validated_data)
        return Response({"success": True, "webhook": WebhookOut(endpoint).data})

    @extend_schema(responses={200: Success}, tags=TAGS,
                   summary="Soft delete the webhook endpoint")
    def delete(self, request, webhook_uuid):
        services.endpoint_delete(endpoint=self.get_endpoint(webhook_uuid))
        return Response({"success": True, "deleted": True})


class RotateSecret(WebhooksView):
    @extend_schema(request=None, responses=WebhookCreatedEnvelope, tags=TAGS,
                   summary="New signing secret; the old one also signs for 24 h")
    def post(self, request, webhook_uuid):
        endpoint = self.get_endpoint(webhook_uuid)
        secret = services.endpoint_secret_rotate(endpoint=endpoint)
        return _created(endpoint, secret, status=200)


class SendTest(WebhooksView):
    @extend_schema(request=None, responses={202: MessageEnvelope}, tags=TAGS,
                   summary="Queue a webhook.test message")
    def post(self, request, webhook_uuid):
        message = services.endpoint_send_test(endpoint=self.get_endpoint(webhook_uuid))
        return Response({"success": True, "message": MessageOut(message).data}, status=202)


class Messages(WebhooksView):
    @extend_schema(parameters=[MessagesQuery], tags=TAGS, operation_id="v1_webhooks_messages_list",
                   responses=inline_serializer("WebhookMessages", {
                       "success": serializers.BooleanField(),
                       "data": inline_serializer("WebhookMessagesData", {
                           "messages": MessageOut(many=True), "total": serializers.IntegerField(),
                           "limit": serializers.IntegerField(),
                           "offset": serializers.IntegerField()})}),
                   summary="The endpoint's messages, newest first, with their attempts")
    def get(self, request, webhook_uuid):
        endpoint = self.get_endpoint(webhook_uuid)
        query = MessagesQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        limit, offset = query.validated_data["limit"], query.validated_data["offset"]
        messages = selectors.endpoint_messages(endpoint=endpoint,
                                               status=query.validated_data.get("status"))
        page = messages.prefetch_related("attempt_log")[offset:offset + limit]
        return Response({"success": True, "data": {
            "messages": MessageOut(page, many=True).data, "total": messages.count(),
            "limit": limit, "offset": offset}})


class ResendMessage(WebhooksView):
    @extend_schema(request=None, responses={202: MessageEnvelope}, tags=TAGS,
                   summary="Send one message again")
    def post(self, request, webhook_uuid, message_id):
        endpoint = self.get_endpoint(webhook_uuid)
        message = selectors.endpoint_messages(endpoint=endpoint).filter(
            webhook_id=message_id).first()
        if message is None:
            raise NotFound("message")
        message = services.message_resend(message=message)
        return Response({"success": True, "message": MessageOut(message).data}, status=202)


class ResendFailed(WebhooksView):
    @extend_schema(request=ResendFailedIn, responses={202: ResendCount}, tags=TAGS,
                   summary="Send again every failed message created in [since, until)")
    def post(self, request, webhook_uuid):
        endpoint = self.get_endpoint(webhook_uuid)
        data = ResendFailedIn(data=request.data)
        data.is_valid(raise_exception=True)
        count = services.messages_resend_failed(endpoint=endpoint, **data.validated_data)
        return Response({"success": True, "resent": count}, status=202)
