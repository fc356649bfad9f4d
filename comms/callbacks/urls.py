from django.urls import path

from comms.callbacks.sendgrid import SendGridCallbacks
from comms.callbacks.ses import SesCallbacks

urlpatterns = [
    path("sendgrid", SendGridCallbacks.as_view(), name="callbacks-sendgrid"),
    path("ses", SesCallbacks.as_view(), name="callbacks-ses"),
]
