"""Every provider Herald knows, registered once with what it can do (after django-anymail's
backends): the channels it sends on, how it is built, whether it batches, keeps messages in
Herald, reports what it accepted, parses callbacks, authenticates sender domains.

Adapters are named by ``"module:attr"`` and imported on first use, so a vendor's SDK is only
loaded where that vendor is used. ``register`` adds a provider or merges capabilities into
one already registered (``domains.providers`` adds its domain authentication this way).
"""

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from comms.providers.base import ProviderConfigurationError

# Channel names as stored on Delivery.channel (spec 004's lower-case vocabulary).
CHANNELS = ("email", "sms", "push", "inapp", "webhook", "slack", "discord", "telegram",
            "whatsapp")
# Their names in words for staff (choice labels of every channel field).
CHANNEL_LABELS = {"email": "Email", "sms": "SMS", "push": "Push notification",
                  "inapp": "In-app", "webhook": "Webhook", "slack": "Slack",
                  "discord": "Discord", "telegram": "Telegram", "whatsapp": "WhatsApp"}


@dataclass(frozen=True)
class Provider:
    """One provider and its capabilities (empty: it has not that capability)."""

    name: str
    channels: tuple[str, ...] = ()  # the channels it sends on
    adapter: str = ""  # its sending adapter class, "module:attr"
    # The platform's adapter built from settings, a callable of no argument, "module:attr";
    # empty for providers built per account from an ``Integration``.
    platform: str = ""
    integration: bool = False  # built per account: ``adapter(config, credentials, timeout)``
    # How a batch goes out: "batch" (``send_batch``: many messages a request), "each"
    # (``send_each``: one session, each outcome given as known), "" (one call a message).
    batching: str = ""
    # The message stays in Herald (outbox, sandbox, in-app): nothing can be sent twice, so a
    # batch is sent at once and recorded in one write.
    in_process: bool = False
    # The setting that, when set, means the provider's events about what it accepted reach
    # Herald (the sweeper then waits for them before sending a lost claim again).
    reports_setting: str = ""
    callbacks: str = ""  # its callback view class (verify, store, parse_events), "module:attr"
    domains: str = ""  # builds its domain-authentication adapter from settings, "module:attr"
    # Herald's own provider of its channels (in-app): no integration, no setting chooses it.
    builtin: bool = False
    # The provider of ``test_`` keys on every channel: nothing leaves Herald.
    test: bool = False


_REGISTRY: dict[str, Provider] = {}


def register(name: str, **capabilities: Any) -> Provider:
    """Add ``name`` with ``capabilities`` (``Provider``'s fields), or merge them into the
    provider registered under that name. Returns the registered provider."""
    current = _REGISTRY.get(name) or Provider(name=name)
    if "channels" in capabilities:
        capabilities["channels"] = tuple(capabilities["channels"])
    _REGISTRY[name] = dataclasses.replace(current, **capabilities)
    return _REGISTRY[name]


def provider(name: str) -> Provider:
    """The provider registered under ``name``; ``ProviderConfigurationError`` if none."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ProviderConfigurationError(f"Unknown provider {name!r}.") from None


def find(name: str) -> Provider | None:
    """The provider registered under ``name``, or None."""
    return _REGISTRY.get(name)


def names() -> list[str]:
    """Every registered provider's name."""
    return list(_REGISTRY)


def providers(*, capability: str | None = None, channel: str | None = None) -> list[Provider]:
    """The registered providers, those with ``capability`` (a field name) set and sending on
    ``channel`` if given, in registration order."""
    return [p for p in _REGISTRY.values()
            if (capability is None or getattr(p, capability))
            and (channel is None or channel in p.channels)]


# The channels whose platform provider a setting chooses (one per deployment).
PLATFORM_SETTINGS = {"email": "HERALD_EMAIL_PROVIDER"}


def platform_name(channel: str) -> str | None:
    """The name of the provider Herald itself sends ``channel`` through: the one its setting
    chooses (email), else the built-in one (in-app); None: the channel needs an account's
    integration. Not checked against the registry (``platform_for`` is)."""
    if channel in PLATFORM_SETTINGS:
        return str(getattr(settings, PLATFORM_SETTINGS[channel]))
    builtin = providers(capability="builtin", channel=channel)
    return builtin[0].name if builtin else None


def platform_for(channel: str) -> Provider | None:
    """The platform provider of ``channel`` (``platform_name``), None if the channel has
    none; ``ProviderConfigurationError`` if the setting names no provider that can."""
    name = platform_name(channel)
    if name is None:
        return None
    found = find(name)
    if found is None or channel not in found.channels or not found.platform:
        raise ProviderConfigurationError(f"Unknown {channel} provider {name!r}.")
    return found


def for_test_keys() -> Provider:
    """The provider of ``test_`` keys (the sandbox)."""
    return providers(capability="test")[0]


def load(path: str) -> Any:
    """The object ``"module:attr"`` names."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


# --- the built-in providers ---------------------------------------------------------------

_P = "comms.providers."
# Herald's email providers: one per deployment, built from settings (HERALD_EMAIL_PROVIDER).
register("outbox", channels=["email"], adapter=_P + "outbox:OutboxProvider",
         platform=_P + "outbox:OutboxProvider", in_process=True)
register("sandbox", channels=CHANNELS, adapter=_P + "sandbox:SandboxProvider",
         platform=_P + "sandbox:SandboxProvider", in_process=True, test=True)
register("sendgrid", channels=["email"], adapter=_P + "sendgrid:SendGridProvider",
         platform=_P + "sendgrid:from_settings", batching="batch",
         reports_setting="SENDGRID_WEBHOOK_PUBLIC_KEY",
         callbacks="comms.callbacks.sendgrid:SendGridCallbacks")
register("ses", channels=["email"], adapter=_P + "ses:SesProvider",
         platform=_P + "ses:from_settings", reports_setting="HERALD_SES_SNS_TOPIC_ARNS",
         callbacks="comms.callbacks.ses:SesCallbacks")
register("smtp", channels=["email"], adapter=_P + "smtp:SmtpProvider",
         platform=_P + "smtp:from_settings", batching="each")
# Built in: an in-app message is stored by Herald itself.
register("inapp", channels=["inapp"], adapter=_P + "inapp:InAppProvider",
         platform=_P + "inapp:InAppProvider", in_process=True, builtin=True)
# An account's own integrations, one adapter per Integration row.
for _name, _channel, _adapter in (
        ("sns", "sms", "sns:SnsSmsProvider"),
        ("twilio", "sms", "twilio:TwilioSmsProvider"),
        ("expo", "push", "expo:ExpoPushProvider"),
        ("fcm", "push", "fcm:FcmPushProvider"),
        ("slack", "slack", "slack:SlackProvider"),
        ("discord", "discord", "discord:DiscordProvider"),
        ("telegram", "telegram", "telegram:TelegramProvider"),
        ("whatsapp_cloud", "whatsapp", "whatsapp:WhatsAppProvider"),
        ("webhook", "webhook", "webhook:WebhookChannelProvider")):
    register(_name, channels=[_channel], adapter=_P + _adapter, integration=True)
