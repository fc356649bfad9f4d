from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from api.families import CHECKIN
from api.pagination import page_of, paginate
from api.views import HeraldAPIView
from comms import services
from comms.api.serializers import SuppressionOut, SuppressionRemoveIn
from comms.selectors import suppressions_active


class CommsView(HeraldAPIView):
    family = CHECKIN


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
            reason=data.validated_data["reason"], topic=data.validated_data["topic"])
        return Response(SuppressionOut(suppression).data)
