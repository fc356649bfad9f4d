from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response

from accounts.authentication import HasApiKey, SubscriptionKeyAuthentication
from common.api import HeraldAPIView, get_owned
from comms import services
from comms.api.serializers import InvitationOut, SendIn, SendOut, SendRejected
from comms.models import Delivery


class CommsView(HeraldAPIView):
    authentication_classes = [SubscriptionKeyAuthentication]
    permission_classes = [HasApiKey]


class Send(CommsView):
    @extend_schema(
        request=SendIn, tags=["comms"],
        summary="Send a template to an existing attendee (spec 000's two-step send)",
        responses={200: SendOut, 422: OpenApiResponse(
            SendRejected, description="The previous send of this pair failed permanently.")},
    )
    def post(self, request):
        data = SendIn(data=request.data)
        data.is_valid(raise_exception=True)
        delivery = services.delivery_send_to_attendee(
            account=self.get_account(), mode=request.auth.mode, **data.validated_data
        )
        return Response({"attendeeInvitationId": str(delivery.id), "status": delivery.status})


class Invitation(CommsView):
    @extend_schema(responses=InvitationOut, tags=["comms"],
                   summary="One send's status and timeline (beyond the spec, for support)")
    def get(self, request, invitation_id):
        deliveries = Delivery.objects.filter(account=self.get_account()).prefetch_related(
            "events")
        return Response(InvitationOut(get_owned(deliveries, invitation_id, "invitation")).data)
