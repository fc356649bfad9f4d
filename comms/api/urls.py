from django.urls import path

from comms.api import views

urlpatterns = [
    path("suppression", views.SuppressionList.as_view()),
    path("suppression/<str:email>", views.SuppressionDetail.as_view()),
]
