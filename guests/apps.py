from django.apps import AppConfig


class GuestsConfig(AppConfig):
    name = "guests"
    verbose_name = "Events"  # the admin's breadcrumbs: Events > Guests > Ann Lee
