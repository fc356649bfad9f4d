"""The channels Herald sends on, their limits, each account's integrations, and the chain of
providers a delivery is tried on (``chain_for``).

Email goes through the platform's provider (``HERALD_EMAIL_PROVIDER``). In-app is built in.
Every other channel (the webhook channel too: its signing secret) needs an active
``Integration`` of the account; several are tried in ``priority`` order (failover).
``test_`` keys use the sandbox on every channel. The providers themselves, and what each can
do, are in ``comms.providers.registry``.
"""

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import InvalidToken
from django.conf import settings
from django.db import transaction

from accounts.models import Account
from common import crypto, ssrf
from common.errors import HeraldError
from comms.models import Integration
from comms.providers import platform_adapter, registry
from comms.providers.base import ChannelProvider, ProviderConfigurationError

# The longest body (characters) each channel takes. SMS: 10 concatenated GSM-7 segments of
# 153 characters (UCS-2 text takes fewer: see ``sms_segments``).
BODY_LIMITS = {
    "email": 1_000_000, "sms": 1530, "push": 4000, "inapp": 10_000, "webhook": 100_000,
    "slack": 40_000, "discord": 2000, "telegram": 4096, "whatsapp": 4096,
}
SMS_MAX_SEGMENTS = 10
_GSM7 = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLM"
            "NOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€")


def sms_segments(text: str) -> int:
    """How many SMS parts ``text`` takes: GSM-7 160/153 characters, else UCS-2 70/67."""
    if all(ch in _GSM7 for ch in text):
        size, single, multi = len(text) + sum(ch in "^{}\\[~]|€" for ch in text), 160, 153
    else:
        size, single, multi = len(text.encode("utf-16-le")) // 2, 70, 67
    return 1 if size <= single else -(-size // multi)


def integration_providers() -> dict[str, str]:
    """The providers an account can set up as an integration: name → channel."""
    return {p.name: p.channels[0] for p in registry.providers(capability="integration")}


def provider_class(name: str) -> type:
    """The adapter class of an integration provider; a 400 for any other name."""
    if name not in integration_providers():
        raise HeraldError("validation_error", f"Unknown provider {name!r}.", status=400)
    return registry.load(registry.provider(name).adapter)


# --- integrations -----------------------------------------------------------------------

# Settings that send a provider's requests to another host (tests' fakes, development).
HOST_FIELDS = ("api_base", "endpoint_url")


def integration_urls_check(*, provider: str, config: dict[str, Any],
                           credentials: dict[str, str] | None) -> None:
    """Every URL of an integration's settings, at save and again at use (a row saved before
    a rule, or under the development switch): host overrides only with
    ``HERALD_PROVIDER_API_BASE_OVERRIDE`` and then only http(s) URLs the SSRF guard parses;
    URLs inside credentials by the provider's own rule (FCM: Google's endpoints only). The
    requests themselves go through the guard to the vetted address (``common.http``).
    Raises ``ProviderConfigurationError``."""
    hosts = sorted(name for name in HOST_FIELDS if config.get(name) not in ("", None))
    if hosts and not settings.HERALD_PROVIDER_API_BASE_OVERRIDE:
        raise ProviderConfigurationError(
            f"{', '.join(hosts)} points a provider at another host: allowed only with "
            "HERALD_PROVIDER_API_BASE_OVERRIDE (tests, development).")
    for name in hosts:
        try:
            ssrf.url_parse(config[name])
        except ssrf.UnsafeUrl as exc:
            raise ProviderConfigurationError(f"{name}: {exc}") from None
    check = getattr(provider_class(provider), "settings_check", None)
    if check is not None:
        check(config, credentials)


def integration_settings_check(*, provider: str, config: dict[str, Any],
                               credentials: dict[str, str] | None) -> None:
    """Only the provider's own settings; a host override only where the platform allows it
    (an account owner must not make workers call internal addresses); every URL vetted
    (``integration_urls_check``). Raises a 400 ``HeraldError``."""
    cls = provider_class(provider)
    unknown = (set(config) - set(cls.config_fields)) | (
        set(credentials or {}) - set(cls.credential_fields))
    if unknown:
        raise HeraldError(
            "validation_error", f"Unknown settings for {provider}: "
            f"{', '.join(sorted(unknown))}. Config: {', '.join(cls.config_fields) or 'none'}; "
            f"credentials: {', '.join(cls.credential_fields) or 'none'}.", status=400)
    try:
        integration_urls_check(provider=provider, config=config, credentials=credentials)
    except ProviderConfigurationError as exc:
        raise HeraldError("validation_error", str(exc), status=400) from None


def integration_save(*, account: Account, provider: str, config: dict[str, Any],
                     credentials: dict[str, str] | None, name: str = "", priority: int = 0,
                     is_active: bool = True, integration: Integration | None = None
                     ) -> Integration:
    """Create (or update) an integration; ``credentials`` None keeps the stored ones. Only
    the provider's own config and credential fields are accepted."""
    integration_settings_check(provider=provider, config=config, credentials=credentials)
    integration = integration or Integration()
    integration.account = account
    integration.channel, integration.provider = integration_providers()[provider], provider
    integration.name, integration.priority, integration.is_active = name, priority, is_active
    integration.config = {k: v for k, v in config.items() if v not in ("", None)}
    if credentials is not None:
        integration.credentials_encrypted = crypto.encrypt_json(
            {k: v for k, v in credentials.items() if v})
    with transaction.atomic():
        integration.save()
    return integration


def integration_chain(*, account_id: Any, channel: str) -> list[Integration]:
    """The account's active integrations of a channel, in failover order."""
    return list(Integration.objects.filter(account_id=account_id, channel=channel,
                                           is_active=True).order_by("priority", "created_at"))


@dataclass(frozen=True)
class Link:
    """One provider of a channel's chain, ready to send. ``integration_id`` None: a
    provider of the platform's (Herald's settings), not of the account."""

    provider: str
    integration_id: Any
    adapter: Any


_adapters: dict[tuple, ChannelProvider] = {}
_adapters_lock = threading.Lock()


class Unusable:
    """A provider whose adapter cannot be built (an integration's missing credentials, a key
    file that does not parse, credentials encrypted under another key; a platform provider
    the settings do not configure): every send, whichever way the provider batches, answers
    with the configuration error, so the chain fails over and the delivery records why,
    instead of the whole batch failing."""

    def __init__(self, error: ProviderConfigurationError) -> None:
        self.error = error

    def send(self, message: Any) -> Any:
        raise self.error

    def send_batch(self, messages: list[Any]) -> list[Any]:
        return [self.error] * len(messages)

    def send_each(self, messages: list[Any]) -> Iterator[Any]:
        for _ in messages:
            yield self.error


def _unusable(name: str, reason: str) -> Unusable:
    return Unusable(ProviderConfigurationError(f"The {name} integration is unusable: {reason}"))


def adapter_for(integration: Integration) -> ChannelProvider:
    """The integration's adapter, cached per process until the integration changes."""
    key = (integration.id, integration.updated_at, settings.HERALD_PROVIDER_TIMEOUT_SECONDS,
           settings.HERALD_PROVIDER_API_BASE_OVERRIDE)
    with _adapters_lock:
        adapter = _adapters.get(key)
    if adapter is None:
        config = dict(integration.config)
        try:
            credentials = crypto.decrypt_json(integration.credentials_encrypted)
            # Checked again at use: the row may predate a rule, or the switch be off now.
            integration_urls_check(provider=integration.provider, config=config,
                                   credentials=credentials)
            adapter = provider_class(integration.provider)(
                config, credentials, settings.HERALD_PROVIDER_TIMEOUT_SECONDS)
        except ProviderConfigurationError as exc:
            adapter = _unusable(integration.provider, str(exc))
        except InvalidToken:
            adapter = _unusable(integration.provider, "its credentials cannot be decrypted "
                               "(HERALD_ENCRYPTION_KEY changed?): enter them again")
        except Exception as exc:  # a constructor bug must not stop the batch either
            adapter = _unusable(integration.provider, f"{type(exc).__name__}: {exc}"[:300])
        with _adapters_lock:
            if len(_adapters) > 1000:
                _adapters.clear()
            _adapters[key] = adapter
    return adapter


def chain_for(*, account_id: Any, channel: str, test_mode: bool) -> list[Link]:
    """The providers to try for a channel, in order (empty: no integration): the test keys'
    provider, else the channel's platform provider (``registry.platform_for``), else the
    account's integrations. A platform provider that cannot be built is a link that answers
    with its configuration error."""
    if test_mode:
        test = registry.for_test_keys()
        return [Link(test.name, None, registry.load(test.platform)(channel))]
    name = registry.platform_name(channel)
    if name is None:
        return [Link(i.provider, i.id, adapter_for(i))
                for i in integration_chain(account_id=account_id, channel=channel)]
    try:
        adapter = platform_adapter(registry.platform_for(channel))
    except ProviderConfigurationError as exc:
        adapter = Unusable(exc)
    return [Link(name, None, adapter)]
