from django.urls import path

from comms.api import communications as views

# Mounted at "api/v1/communications/" (spec 002).
urlpatterns = [
    path("send", views.Send.as_view()),
    path("inapp", views.Inbox.as_view()),
    path("inapp/<str:inapp_id>/read", views.InboxRead.as_view()),
]
