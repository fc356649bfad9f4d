"""The email provider interface and its error types (after django-anymail's backends)."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class EmailMessage:
    delivery_id: str
    from_email: str
    from_name: str
    to_email: str
    to_name: str
    subject: str
    html: str
    text: str
    # Echoed back by the provider's callbacks, so events find their delivery.
    custom_args: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str


class ProviderError(Exception):
    """A provider refused or failed a send."""


class ProviderTransientError(ProviderError):
    """Worth retrying (timeout, 5xx, 429). ``retry_after``: seconds the provider asked for."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderPermanentError(ProviderError):
    """Retrying cannot help (the provider rejected the request as invalid)."""


class ProviderConfigurationError(Exception):
    """Herald is misconfigured (no API key, unknown provider): never swallowed as a send failure."""


class EmailProvider(Protocol):
    name: str

    def send(self, message: EmailMessage) -> SendResult: ...


# The one event vocabulary of every provider (django-anymail's tracking events).
EVENTS = frozenset({
    "sent", "delivered", "deferred", "opened", "clicked", "bounced", "dropped",
    "spam_reported", "unsubscribed", "resubscribed", "failed",
})


@dataclass(frozen=True)
class ProviderEvent:
    """One provider callback event, normalized. Adapters build these from the vendor's JSON."""

    provider: str
    provider_event_id: str  # the vendor's id for this event: recorded once
    event: str  # one of EVENTS
    occurred_at: datetime
    delivery_id: str | None = None  # ours, echoed back (custom_args / EmailTags)
    provider_message_id: str | None = None  # fallback correlation
    recipient: str = ""
    reason: str = ""  # e.g. "550 5.1.1 No such user"
    bounce_type: str = ""  # vendor's classification (bounce/blocked, Permanent/Transient)
    bounce_subtype: str = ""
    raw: dict = field(default_factory=dict)
