from django.urls import path

from webhooks.api import views

# Mounted at "v1/webhooks" (no trailing slashes, like the spec's paths).
urlpatterns = [
    path("", views.Webhooks.as_view()),
    path("/<str:webhook_uuid>", views.Webhook.as_view()),
    path("/<str:webhook_uuid>/rotate-secret", views.RotateSecret.as_view()),
    path("/<str:webhook_uuid>/test", views.SendTest.as_view()),
    path("/<str:webhook_uuid>/messages", views.Messages.as_view()),
    path("/<str:webhook_uuid>/messages/<str:message_id>/resend", views.ResendMessage.as_view()),
    path("/<str:webhook_uuid>/resend-failed", views.ResendFailed.as_view()),
]
