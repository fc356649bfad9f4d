"""Domain-authentication adapters, one module per vendor: plain data in, plain data out.

Each vendor registers, in the one provider registry (``comms.providers.registry``), how its
adapter is built from the settings (its ``domains`` capability, ``"module:attr"``, imported on
first use so a vendor's SDK loads only where it is used); ``domain_provider()`` builds the one
registered under a name. HERALD_DOMAIN_PROVIDER names it, else HERALD_EMAIL_PROVIDER when that
vendor authenticates domains (sendgrid, ses), else ``dev``.
"""

from django.conf import settings

from comms.providers import registry
from domains.providers.base import DomainProvider, DomainProviderConfigurationError

registry.register("sendgrid", domains="domains.providers.sendgrid:from_settings")
registry.register("ses", domains="domains.providers.ses:from_settings")
registry.register("dev", domains="domains.providers.dev:DevDomains")


def provider_name() -> str:
    """The configured adapter's name: HERALD_DOMAIN_PROVIDER, else the email provider's when
    it authenticates domains, else ``dev`` (outbox, sandbox and smtp cannot)."""
    if settings.HERALD_DOMAIN_PROVIDER:
        return settings.HERALD_DOMAIN_PROVIDER
    email = settings.HERALD_EMAIL_PROVIDER
    return email if email in names() and email != "dev" else "dev"


def names() -> list[str]:
    """The providers that authenticate sender domains."""
    return [p.name for p in registry.providers(capability="domains")]


def domain_provider(name: str) -> DomainProvider:
    """The adapter registered under ``name``, built from the current settings."""
    if name not in names():
        raise DomainProviderConfigurationError(
            f"Unknown domain provider {name!r}; use one of {', '.join(names())}.")
    return registry.load(registry.provider(name).domains)()
