from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from accounts.authentication import HasApiKey, SubscriptionKeyAuthentication
from common.api import HeraldAPIView, get_owned
from common.pagination import page_of, paginate
from comms import services
from comms.api.serializers import (
    InvitationOut,
    SendIn,
    SendOut,
    SendRejected,
    SuppressionOut,
    SuppressionRemoveIn,
)
from comms.models import Delivery
from comms.selectors import suppressions_active

CommsErrorOut = inline_serializer("CommsError", {
    "error": serializers.CharField(), "message": serializers.CharField()})


class CommsView(HeraldAPIView):
    authentication_classes = [SubscriptionKeyAuthentication]
    permission_classes = [HasApiKey]


class Send(CommsView):
    # Its own Idempotency-Key store (comms.services) commits with the delivery itself, which
    # the generic layer cannot: a crash between the two cannot make a retry send again.
    idempotency_layer = False

    @extend_schema(
        request=SendIn, tags=["comms"],
        parameters=[OpenApiParameter(
            "Idempotency-Key", location=OpenApiParameter.HEADER, required=False,
            description="Retries with the same key return the first send (beyond the spec).")],
        summary="Send a template to an existing attendee (spec 000's two-step send)",
        responses={200: SendOut, 422: OpenApiResponse(
            SendRejected, description="The previous send of this pair failed permanently."),
            409: OpenApiResponse(CommsErrorOut, description=(
                "idempotency_key_reused: this Idempotency-Key was used for another request."))},
    )
    def post(self, request):
        data = SendIn(data=request.data)
        data.is_valid(raise_exception=True)
        delivery = services.delivery_send_to_attendee(
            account=self.get_account(), mode=request.auth.mode,
            idempotency_key=_idempotency_key(request), **data.validated_data
        )
        return Response({"attendeeInvitationId": str(delivery.id), "status": "queued"})


def _idempotency_key(request) -> str | None:
    key = request.META.get("HTTP_IDEMPOTENCY_KEY")
    if key is None:
        return None
    if not (1 <= len(key) <= 255) or not key.isprintable():
        raise ValidationError({"Idempotency-Key": "1 to 255 printable characters."})
    return key


class Invitation(CommsView):
    @extend_schema(responses=InvitationOut, tags=["comms"],
                   summary="One send's status and timeline (beyond the spec, for support)")
    def get(self, request, invitation_id):
        deliveries = Delivery.objects.filter(account=self.get_account(),
                                             mode=request.auth.mode).prefetch_related("events")
        return Response(InvitationOut(get_owned(deliveries, invitation_id, "invitation")).data)


class SuppressionList(CommsView):
    @extend_schema(responses=page_of(SuppressionOut, "SuppressionPage"), tags=["comms"],
                   parameters=[OpenApiParameter("email", required=False)],
                   summary="Suppressed addresses of the account (beyond the spec)")
    def get(self, request):
        rows = suppressions_active(account_ids=[self.get_account().id], mode=request.auth.mode)
        if email := request.query_params.get("email"):
            rows = rows.filter(address=email.strip().lower())
        return Response(paginate(request, rows.order_by("-created_at", "id"), SuppressionOut))


class SuppressionDetail(CommsView):
    @extend_schema(request=SuppressionRemoveIn, responses=SuppressionOut, tags=["comms"],
                   summary="Lift a suppression; the reason is kept (beyond the spec)")
    def delete(self, request, email):
        data = SuppressionRemoveIn(data=request.data)
        data.is_valid(raise_exception=True)
        suppression = services.suppression_remove(
            account=self.get_account(), mode=request.auth.mode, address=email,
            reason=data.validated_data["reason"])
        return Response(SuppressionOut(suppression).data)
