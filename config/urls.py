from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from api.families import Failure, family_for_path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("checkin/v1/api/", include("guests.api.urls")),
    path("comms/v1/api/comms/", include("domains.api.urls")),
    path("comms/v1/api/comms/", include("templates.api.urls")),
    path("comms/v1/api/comms/", include("comms.api.urls")),
    path("comms/v1/api/comms/", include("guests.api.send_urls")),
    path("callbacks/", include("comms.callbacks.urls")),
    path("v1/webhooks", include("webhooks.api.urls")),
    path("v1/contacts", include("contacts.api.urls")),
    path("api/v1/communications/", include("multichannel.api.urls")),
    path("v1/", include("emails.api.urls")),
    path("v1/", include("notifications.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]


def _family_error(request, status: int, message: str, code: str) -> JsonResponse:
    """An error Django raises before any view, in the shape of the path's API family."""
    family = family_for_path(request.path)
    return JsonResponse(family.body(Failure(status, code, message)), status=status,
                        content_type=family.media_type)


def handler404(request, exception=None):
    """Unknown API paths answer JSON in their family's shape, not an HTML page."""
    if request.path.startswith("/admin/"):
        from django.views.defaults import page_not_found

        return page_not_found(request, exception)
    return _family_error(request, 404, "No such endpoint.", "not_found")


def handler400(request, exception=None):
    """Requests Django refuses before any view (e.g. a body over the upload limit): JSON."""
    return _family_error(request, 400, "The request was refused: check its size (5 MB at "
                         "most) and its headers.", "bad_request")


def handler500(request):
    return _family_error(request, 500, "Something went wrong on our side; it has been logged.",
                         "internal_error")
