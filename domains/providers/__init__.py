"""Domain-authentication adapters, one module per vendor: plain data in, plain data out.

Each vendor registers how its adapter is built from the settings (``DOMAIN_PROVIDERS``: name →
``"module:attr"``, imported on first use so a vendor's SDK loads only where it is used);
``domain_provider()`` builds the one registered under a name. HERALD_DOMAIN_PROVIDER names it,
else HERALD_EMAIL_PROVIDER when that vendor authenticates domains (sendgrid, ses), else ``dev``.
"""

import importlib
from typing import Any

from django.conf import settings

from domains.providers.base import DomainProvider, DomainProviderConfigurationError

# name → the callable of no argument that builds its adapter from the settings.
DOMAIN_PROVIDERS: dict[str, str] = {
    "sendgrid": "domains.providers.sendgrid:from_settings",
    "ses": "domains.providers.ses:from_settings",
    "dev": "domains.providers.dev:DevDomains",
}
NAMES = tuple(DOMAIN_PROVIDERS)


def provider_name() -> str:
    """The configured adapter's name: HERALD_DOMAIN_PROVIDER, else the email provider's when
    it authenticates domains, else ``dev`` (outbox, sandbox and smtp cannot)."""
    if settings.HERALD_DOMAIN_PROVIDER:
        return settings.HERALD_DOMAIN_PROVIDER
    email = settings.HERALD_EMAIL_PROVIDER
    return email if email in DOMAIN_PROVIDERS and email != "dev" else "dev"


def domain_provider(name: str) -> DomainProvider:
    """The adapter registered under ``name``, built from the current settings."""
    if name not in DOMAIN_PROVIDERS:
        raise DomainProviderConfigurationError(
            f"Unknown domain provider {name!r}; use one of {', '.join(NAMES)}.")
    return _load(DOMAIN_PROVIDERS[name])()


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)
