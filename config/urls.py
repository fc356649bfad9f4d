from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from api.families import Failure, family_for_path, normalise
from comms.unsubscribe_views import unsubscribe_page
from config import health
from ops.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    # Probes (answered first by config.middleware.HealthMiddleware, listed here to be found).
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("checkin/v1/api/", include("guests.api.urls")),
    path("comms/v1/api/comms/", include("domains.api.urls")),
    path("comms/v1/api/comms/", include("templates.api.urls")),
    path("comms/v1/api/comms/", include("comms.api.urls")),
    path("comms/v1/api/comms/", include("guests.api.send_urls")),
    path("callbacks/", include("comms.callbacks.urls")),
    # One-click unsubscribe (RFC 8058) and the preferences page: the signed token is the key.
    path("u/<str:token>", unsubscribe_page, name="unsubscribe"),
    path("v1/webhooks", include("webhooks.api.urls")),
    path("v1/contacts", include("contacts.api.urls")),
    path("api/v1/communications/", include("multichannel.api.urls")),
    path("v1/", include("emails.api.urls")),
    path("v1/", include("notifications.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    # Prometheus (ops/metrics.py): a token or an allowed address, else the unknown path's 404.
    path("metrics", metrics_view, name="metrics"),
]


def _family_error(request, status: int, message: str, code: str) -> JsonResponse:
    """An error Django raises before any view, in the shape of the path's API family."""
    return _family_response(request, Failure(status, code, message))


def _family_response(request, failure: Failure) -> JsonResponse:
    family = family_for_path(request.path)
    return JsonResponse(family.body(failure), status=failure.status,
                        content_type=family.media_type)


def handler404(request, exception=None):
    """Unknown API paths answer JSON in their family's shape, not an HTML page."""
    if request.path.startswith("/admin/"):
        from django.views.defaults import page_not_found

        return page_not_found(request, exception)
    return _family_error(request, 404, "No such endpoint.", "not_found")


def handler400(request, exception=None):
    """Requests Django refuses before any view, as JSON: a body over the upload limit
    (``RequestDataTooBig``, which Django makes a 400) is the normaliser's 413; the admin keeps
    Django's page."""
    if request.path.startswith("/admin/"):
        from django.views.defaults import bad_request

        return bad_request(request, exception)
    failure = normalise(exception) if exception is not None else None
    if failure is not None and failure.status == 413:
        return _family_response(request, failure)
    return _family_error(request, 400, "The request was refused: check its size (5 MB at "
                         "most) and its headers.", "bad_request")


def handler500(request):
    return _family_error(request, 500, "Something went wrong on our side; it has been logged.",
                         "internal_error")
