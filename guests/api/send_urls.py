from django.urls import path

from guests.api import views

# Mounted at "comms/v1/api/comms/" (spec 000's two-step send and its status).
urlpatterns = [
    path("send", views.Send.as_view()),
    path("send/<str:invitation_id>", views.Invitation.as_view()),
]
