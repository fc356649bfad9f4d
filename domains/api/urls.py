from django.urls import path

from domains.api import views

urlpatterns = [
    path("domain", views.Domain.as_view()),
    path("domain/validate", views.Validate.as_view()),
    path("domain/activate", views.Activate.as_view()),
    path("domain/deactivate", views.Deactivate.as_view()),
]
