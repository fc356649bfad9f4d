"""Provider adapters: plain data in, plain data out, no ORM. See ``base`` for the interface
and ``registry`` for every provider and what it can do."""

from django.conf import settings

from comms.providers import registry
from comms.providers.base import EmailProvider, ProviderConfigurationError


def email_provider(name: str) -> EmailProvider:
    """The platform's adapter registered under ``name`` (``outbox``, ``sandbox``,
    ``sendgrid``, ``ses``, ``smtp``), built from settings.

    Adapters are cached per process and per configuration (their HTTP clients are reusable).
    """
    key = (name, settings.SENDGRID_API_KEY, settings.SENDGRID_API_HOST,
           settings.HERALD_PROVIDER_TIMEOUT_SECONDS)
    if key not in _cache:
        _cache[key] = _build(name)
    return _cache[key]


_cache: dict[tuple, EmailProvider] = {}


def _build(name: str) -> EmailProvider:
    found = registry.provider(name) if name in registry.names() else None
    if found is None or "email" not in found.channels or not found.platform:
        raise ProviderConfigurationError(f"Unknown email provider {name!r}.")
    return registry.load(found.platform)()
