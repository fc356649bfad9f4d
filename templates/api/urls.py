from django.urls import path

from templates.api import views

urlpatterns = [
    path("template", views.TemplateListCreate.as_view()),
    path("template/<str:template_id>", views.TemplateDetail.as_view()),
]
