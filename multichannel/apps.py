from django.apps import AppConfig


class MultichannelConfig(AppConfig):
    """Spec 002's front end: one message to several channels, and the in-app inbox."""

    name = "multichannel"
