"""Provider adapters: plain data in, plain data out, no ORM. See ``base`` for the interface
and ``registry`` for every provider and what it can do."""

import threading
from typing import Any

from django.core.signals import setting_changed

from comms.providers import registry
from comms.providers.base import EmailProvider, ProviderConfigurationError


def email_provider(name: str) -> EmailProvider:
    """The platform's email adapter registered under ``name`` (``outbox``, ``sandbox``,
    ``sendgrid``, ``ses``, ``smtp``), built from settings."""
    found = registry.find(name)
    if found is None or "email" not in found.channels or not found.platform:
        raise ProviderConfigurationError(f"Unknown email provider {name!r}.")
    return platform_adapter(found)


def platform_adapter(provider: registry.Provider) -> Any:
    """``provider``'s platform adapter, built from settings.

    Adapters are cached per process (their HTTP clients and sessions are reusable) until any
    setting changes: each provider reads its own settings, so no key listing some of them
    could cover every provider's."""
    with _lock:
        adapter = _cache.get(provider.name)
    if adapter is None:
        adapter = registry.load(provider.platform)()
        with _lock:
            _cache[provider.name] = adapter
    return adapter


_cache: dict[str, Any] = {}
_lock = threading.Lock()


def _settings_changed(**kwargs: Any) -> None:
    with _lock:
        _cache.clear()


setting_changed.connect(_settings_changed, dispatch_uid="comms.providers.email_provider")
