"""Provider adapters: plain data in, plain data out, no ORM. See ``base`` for the interface."""

from django.conf import settings

from comms.providers.base import EmailProvider, ProviderConfigurationError


def email_provider(name: str) -> EmailProvider:
    """The adapter registered under ``name`` (``outbox``, ``sandbox``, ``sendgrid``).

    Adapters are cached per process and per configuration (their HTTP clients are reusable).
    """
    key = (name, settings.SENDGRID_API_KEY, settings.SENDGRID_API_HOST,
           settings.HERALD_PROVIDER_TIMEOUT_SECONDS)
    if key not in _cache:
        _cache[key] = _build(name)
    return _cache[key]


_cache: dict[tuple, EmailProvider] = {}


def _build(name: str) -> EmailProvider:
    if name == "outbox":
        from comms.providers.outbox import OutboxProvider

        return OutboxProvider()
    if name == "sandbox":
        from comms.providers.sandbox import SandboxProvider

        return SandboxProvider()
    if name == "sendgrid":
        from comms.providers.sendgrid import sendgrid_provider

        return sendgrid_provider(
            api_key=settings.SENDGRID_API_KEY,
            host=settings.SENDGRID_API_HOST,
            timeout=settings.HERALD_PROVIDER_TIMEOUT_SECONDS,
        )
    if name == "ses":
        from comms.providers.ses import SesConfig, SesProvider

        return SesProvider(lambda: SesConfig(
            region=settings.HERALD_SES_REGION,
            configuration_set=settings.HERALD_SES_CONFIGURATION_SET,
            endpoint_url=settings.HERALD_SES_ENDPOINT_URL,
            timeout=settings.HERALD_PROVIDER_TIMEOUT_SECONDS,
        ))
    if name == "smtp":
        from comms.providers.smtp import SmtpConfig, SmtpProvider

        return SmtpProvider(lambda: SmtpConfig(
            host=settings.EMAIL_HOST, port=settings.EMAIL_PORT,
            username=settings.EMAIL_HOST_USER, password=settings.EMAIL_HOST_PASSWORD,
            use_tls=settings.EMAIL_USE_TLS, use_ssl=settings.EMAIL_USE_SSL,
            timeout=settings.EMAIL_TIMEOUT,
        ))
    raise ProviderConfigurationError(f"Unknown email provider {name!r}.")
