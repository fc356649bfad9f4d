from django.apps import AppConfig


class TemplatesConfig(AppConfig):
    """The message-templates app (MessageTemplate and its sandboxed renderer)."""

    name = "templates"
    label = "templates"
    verbose_name = "Settings"  # breadcrumbs: Settings > Message templates
