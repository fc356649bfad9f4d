from django.urls import path

from comms.callbacks import ses, views

urlpatterns = [
    path("sendgrid", views.sendgrid_events, name="callbacks-sendgrid"),
    path("ses", ses.ses_events, name="callbacks-ses"),
]
