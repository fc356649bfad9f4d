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
    raise ProviderConfigurationError(f"Unknown email provider {name!r}.")
