from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """Spec 004's front end: events, send, deliveries and integrations."""

    name = "notifications"
