from django.urls import path

from multichannel.api import views

# Mounted at "api/v1/communications/" (spec 002).
urlpatterns = [
    path("send", views.Send.as_view()),
    path("send/<str:communication_id>", views.SendCancel.as_view()),
    path("webhook-secret", views.WebhookSecret.as_view()),
    path("inapp", views.Inbox.as_view()),
    path("inapp/<str:inapp_id>/read", views.InboxRead.as_view()),
]
