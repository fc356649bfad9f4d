from django.urls import path

from emails.api import views

# Mounted at "v1/": the spec's PascalCase paths.
urlpatterns = [
    path("Email/", views.Emails.as_view()),
    # A MessageId only: any other path under Email/ stays an unknown one (404).
    path("Email/<uuid:MessageId>", views.EmailDetail.as_view()),
    path("Brand/", views.Brands.as_view()),
    path("Brand/<str:BrandId>", views.BrandDetail.as_view()),
]
