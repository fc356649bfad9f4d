from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from api.families import CHECKIN
from api.pagination import page_of, paginate
from api.views import HeraldAPIView, get_owned
from templates import services
from templates.api.serializers import TemplateIn, TemplateOut
from templates.models import MessageTemplate


class TemplateView(HeraldAPIView):
    family = CHECKIN
    configuration = True  # test keys read, never change

    def templates(self):
        return MessageTemplate.objects.filter(account=self.get_account())


def actor(request) -> str:
    """Who is saving, for the template's history: the API key by name and prefix."""
    return f"API key {request.auth.name} ({request.auth.prefix}…)"


class TemplateListCreate(TemplateView):
    @extend_schema(request=TemplateIn, responses={201: TemplateOut}, tags=["comms"])
    def post(self, request):
        data = TemplateIn(data=request.data)
        data.is_valid(raise_exception=True)
        template = services.template_create(account=self.get_account(), actor=actor(request),
                                            **data.validated_data)
        return Response(TemplateOut(template).data, status=201)

    @extend_schema(responses=page_of(TemplateOut, "TemplatePage"), tags=["comms"])
    def get(self, request):
        return Response(paginate(request, self.templates().order_by("-created_at", "id"),
                                 TemplateOut))


class TemplateDetail(TemplateView):
    @extend_schema(responses=TemplateOut, tags=["comms"])
    def get(self, request, template_id):
        return Response(TemplateOut(get_owned(self.templates(), template_id, "template")).data)

    @extend_schema(request=TemplateIn, responses=TemplateOut, tags=["comms"])
    def put(self, request, template_id):
        template = get_owned(self.templates(), template_id, "template")
        data = TemplateIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        fields.pop("id", None)
        return Response(TemplateOut(services.template_update(
            template=template, actor=actor(request), **fields)).data)
