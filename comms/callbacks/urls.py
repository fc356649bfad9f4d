"""One URL per provider with a ``callbacks`` capability in the registry: ``/callbacks/<name>``."""

from django.urls import path

from comms.providers import registry

urlpatterns = [
    path(p.name, registry.load(p.callbacks).as_view(), name=f"callbacks-{p.name}")
    for p in registry.providers(capability="callbacks")
]
