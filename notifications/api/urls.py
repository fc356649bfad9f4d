from django.urls import path

from notifications.api import views

# Mounted at "v1/" (spec 004; no trailing slashes, like the spec's paths).
urlpatterns = [
    path("events", views.Events.as_view()),
    path("events/<str:event_identifier>", views.EventDetail.as_view()),
    path("send/<str:event>", views.Send.as_view()),
    path("send/<str:event>/<str:channel>", views.Send.as_view()),
    path("deliveries", views.Deliveries.as_view()),
    path("deliveries/<str:delivery_uuid>", views.DeliveryDetail.as_view()),
    path("deliveries/<str:delivery_uuid>/trace", views.Trace.as_view()),
    path("integrations", views.Integrations.as_view()),
]
