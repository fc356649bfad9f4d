"""Domain-authentication adapters, one module per vendor: plain data in, plain data out.

``domain_provider()`` picks the adapter named by HERALD_DOMAIN_PROVIDER, or by
HERALD_EMAIL_PROVIDER when that is empty (sendgrid, ses; anything else: ``dev``).
"""

from django.conf import settings

from domains.providers.base import DomainProvider, DomainProviderConfigurationError

NAMES = ("sendgrid", "ses", "dev")


def provider_name() -> str:
    """The configured adapter's name: HERALD_DOMAIN_PROVIDER, else the email provider's
    (sendgrid, ses), else ``dev`` (outbox, sandbox and smtp cannot authenticate domains)."""
    if settings.HERALD_DOMAIN_PROVIDER:
        return settings.HERALD_DOMAIN_PROVIDER
    email = settings.HERALD_EMAIL_PROVIDER
    return email if email in ("sendgrid", "ses") else "dev"


def domain_provider(name: str) -> DomainProvider:
    """The adapter registered under ``name``, built from the current settings."""
    if name == "sendgrid":
        from domains.providers.sendgrid import SendGridDomains

        if not settings.SENDGRID_API_KEY:
            raise DomainProviderConfigurationError("SENDGRID_API_KEY is not set.")
        return SendGridDomains.from_settings(
            api_key=settings.SENDGRID_API_KEY, host=settings.SENDGRID_API_HOST,
            timeout=settings.HERALD_PROVIDER_TIMEOUT_SECONDS)
    if name == "ses":
        from domains.providers.ses import SesDomains, sesv2_client

        return SesDomains(sesv2_client(
            region=settings.HERALD_SES_REGION, endpoint_url=settings.HERALD_SES_ENDPOINT_URL,
            timeout=settings.HERALD_PROVIDER_TIMEOUT_SECONDS))
    if name == "dev":
        from domains.providers.dev import DevDomains

        return DevDomains()
    raise DomainProviderConfigurationError(
        f"Unknown domain provider {name!r}; use one of {', '.join(NAMES)}.")
