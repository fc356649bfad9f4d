from django.urls import path

from contacts.api import views

# Mounted at "v1/contacts" (no trailing slashes, like the spec's paths).
urlpatterns = [
    path("", views.Contacts.as_view()),
    path("/<str:identifier>", views.ContactDetail.as_view()),
    path("/<str:identifier>/push-tokens", views.PushTokens.as_view()),
]
