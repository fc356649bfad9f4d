from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response

from api.families import CHECKIN
from api.views import HeraldAPIView
from common.errors import HeraldError
from domains import selectors, services
from domains.api.serializers import DomainIn, DomainOut
from domains.models import SenderDomain

ERRORS = {
    400: OpenApiResponse(description="Not a domain, a bare TLD, an IP address, a long label."),
    404: OpenApiResponse(description="The account has no domain yet."),
    409: OpenApiResponse(description="Another account's domain, or the account has another."),
    502: OpenApiResponse(description="The provider failed; its message is given."),
}


class DomainView(HeraldAPIView):
    family = CHECKIN
    configuration = True  # test keys read, never change

    def owned(self) -> SenderDomain:
        row = selectors.sender_domain_for(account_id=self.get_account().id)
        if row is None:
            raise HeraldError("domain_not_found", "This account has no sender domain yet: "
                              "POST /comms/v1/api/comms/domain to start.", status=404)
        return row


class Domain(DomainView):
    @extend_schema(responses={200: DomainOut, 404: ERRORS[404]}, tags=["domains"],
                   summary="The calling account's sender domain and its DNS records")
    def get(self, request):
        return Response(DomainOut(self.owned()).data)

    @extend_schema(request=DomainIn, responses={200: DomainOut, 400: ERRORS[400],
                                                409: ERRORS[409], 502: ERRORS[502]},
                   tags=["domains"],
                   summary="Start domain authentication for the calling account")
    def post(self, request):
        data = DomainIn(data=request.data)
        data.is_valid(raise_exception=True)
        row, _ = services.sender_domain_create(account=self.get_account(),
                                               domain=data.validated_data["domain"])
        return Response(DomainOut(row).data)

    @extend_schema(responses={204: None, 404: ERRORS[404], 502: ERRORS[502]}, tags=["domains"],
                   summary="Remove the domain here and at the provider, to start over "
                           "(beyond the spec)")
    def delete(self, request):
        services.sender_domain_delete(sender_domain=self.owned())
        return Response(status=204)


class Validate(DomainView):
    @extend_schema(request=None, responses={200: DomainOut, 404: ERRORS[404], 502: ERRORS[502]},
                   tags=["domains"], summary="Check the DNS records now")
    def post(self, request):
        return Response(DomainOut(services.sender_domain_validate(
            sender_domain=self.owned())).data)


class Activate(DomainView):
    @extend_schema(request=None, responses={200: DomainOut, 404: ERRORS[404],
                                            409: OpenApiResponse(description="Not verified.")},
                   tags=["domains"], summary="Send from the domain")
    def post(self, request):
        return Response(DomainOut(services.sender_domain_activate(
            sender_domain=self.owned())).data)


class Deactivate(DomainView):
    @extend_schema(request=None, responses={200: DomainOut, 404: ERRORS[404]}, tags=["domains"],
                   summary="Send from the platform default sender again")
    def post(self, request):
        return Response(DomainOut(services.sender_domain_deactivate(
            sender_domain=self.owned())).data)
