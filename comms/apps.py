from django.apps import AppConfig


class CommsConfig(AppConfig):
    name = "comms"
    verbose_name = "Messages"  # breadcrumbs: Messages > Deliveries

    def ready(self) -> None:
        # The tasks the engine publishes by name (``common.jobs.publish``) are registered
        # with the Celery app in every process, not only where a module imported them.
        from comms import tasks  # noqa: F401
