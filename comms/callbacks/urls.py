from django.urls import path

from comms.callbacks import views

urlpatterns = [
    path("sendgrid", views.sendgrid_events, name="callbacks-sendgrid"),
]
