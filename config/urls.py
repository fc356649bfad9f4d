from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("checkin/v1/api/", include("guests.api.urls")),
    path("comms/v1/api/comms/", include("domains.api.urls")),
    path("comms/v1/api/comms/", include("templates.api.urls")),
    path("comms/v1/api/comms/", include("comms.api.urls")),
    path("callbacks/", include("comms.callbacks.urls")),
    path("v1/webhooks", include("webhooks.api.urls")),
    path("v1/", include("emails.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]


def handler404(request, exception=None):
    """Unknown API paths answer JSON in the check-in & comms shape, not an HTML page."""
    if request.path.startswith("/admin/"):
        from django.views.defaults import page_not_found

        return page_not_found(request, exception)
    return JsonResponse({"error": "not_found", "message": "No such endpoint."}, status=404)


def handler400(request, exception=None):
    """Requests Django refuses before any view (e.g. a body over the upload limit): JSON."""
    return JsonResponse({"error": "bad_request", "message": "The request was refused: "
                         "check its size (5 MB at most) and its headers."}, status=400)


def handler500(request):
    return JsonResponse({"error": "internal_error",
                         "message": "Something went wrong on our side; it has been logged."},
                        status=500)
