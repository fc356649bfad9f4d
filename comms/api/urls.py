from django.urls import path

from comms.api import views

urlpatterns = [
    path("send", views.Send.as_view()),
    path("send/<str:invitation_id>", views.Invitation.as_view()),
    path("suppression", views.SuppressionList.as_view()),
    path("suppression/<str:email>", views.SuppressionDetail.as_view()),
]
