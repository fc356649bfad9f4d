"""The email provider interface and its error types (after django-anymail's backends)."""

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from common import http, metrics
from comms.providers.vendor_http import header, network_reason, timed_out, vendor_reason
from comms.providers.vendor_http import retry_after as seconds

log = logging.getLogger("herald.providers")


@dataclass(frozen=True)
class Attachment:
    """A file sent with an email: inline (``content_id`` set, shown in the HTML as
    ``cid:…``) or as an attachment."""

    filename: str
    content_type: str
    content: bytes
    content_id: str = ""  # inline: referenced by the HTML as cid:<content_id>
    disposition: str = "attachment"  # or "inline"


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
    reply_to: str = ""  # spec 004's overrides.email.reply_to
    # Extra headers, values already one line (List-Unsubscribe, List-Unsubscribe-Post).
    headers: tuple[tuple[str, str], ...] = ()
    attachments: tuple[Attachment, ...] = ()


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


class AttachmentsTooLarge(ProviderPermanentError):
    """A message over Herald's attachment limit or its provider's message size: failed before
    the provider is called (it would refuse it, whatever the retries)."""


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


@dataclass(frozen=True)
class FollowUp:
    """An event a provider reports itself about a message it accepted (the sandbox's
    scripted lifecycle, an in-app message in its inbox at once), from its ``after_sent``
    hook: applied at once when ``after_seconds`` is None, else by a task that many seconds
    later."""

    delivery_id: str
    event: str  # one of EVENTS
    provider_event_id: str
    after_seconds: float | None = None
    reason: str = ""
    bounce_type: str = ""


@dataclass(frozen=True)
class Accepted:
    """A message a provider accepted, as its ``after_sent`` hook is told of it."""

    delivery_id: str
    channel: str
    to: str


# --- every other channel (spec 002 / 004) -------------------------------------------------


@dataclass(frozen=True)
class ChannelMessage:
    """One message on a non-email channel. ``to`` is the channel's address: an E.164 phone
    (sms, whatsapp), a push token, a user id (inapp), a URL (webhook), a chat user/chat id
    (slack, discord, telegram). ``title`` is spec 002's subject (push/in-app title; chat
    providers put it in bold above the body), ``text`` the plain body; ``options`` carries
    per-send overrides (spec 004's ``overrides``, e.g. ``sender_id`` for SMS)."""

    delivery_id: str
    channel: str
    to: str
    title: str
    text: str
    html: str = ""
    options: dict = field(default_factory=dict)


class ProviderInvalidRecipient(ProviderPermanentError):
    """The address itself is dead (an unregistered push token, a blocked chat): retrying or
    failing over cannot help, and the address should be removed from its contact."""


class ChannelProvider(Protocol):
    """A channel adapter, built from one account's Integration:
    ``Provider(config: dict, credentials: dict, timeout: float)``. ``config`` is the
    non-secret settings (sender number, API base URL for tests…), ``credentials`` the
    decrypted secrets. ``send`` raises the Provider*Error classes above and never anything
    else for a vendor answer."""

    name: str
    channel: str
    # What the admin form asks for: {field: help text}. Credentials are encrypted at rest.
    config_fields: dict[str, str]
    credential_fields: dict[str, str]

    def send(self, message: ChannelMessage) -> SendResult: ...


# --- the one base of every adapter ----------------------------------------------------------

class Adapter:
    """What every adapter shares (after django-anymail's backends and GOV.UK Notify's
    clients): each provider call is timed (``calls``: count and seconds per provider, the
    DEBUG log per call); ``answer_error`` turns a vendor's HTTP answer (status, error code,
    body, headers) into the one error vocabulary, by the adapter's own code tables;
    ``network_error`` does the same for a request that got no answer; ``credentials_check``
    refuses an integration without its ``required_credentials``."""

    name = ""
    vendor = ""  # as tenants read it in reasons ("Discord 403 50007")
    timeout: float = 0.0  # seconds a call may take; 0: not said in a timeout's reason
    url_setting = "api_base"  # the account's URL setting, named when the SSRF guard refuses it
    required_credentials: tuple[str, ...] = ()
    transient_codes: frozenset = frozenset()
    transient_statuses: frozenset = frozenset()  # besides 429 and 5xx
    rate_limit_codes: frozenset = frozenset()
    configuration_codes: frozenset = frozenset()
    configuration_statuses: frozenset = frozenset({401, 403})
    recipient_codes: frozenset = frozenset()
    recipient_statuses: frozenset = frozenset()
    configuration_text = "{vendor} rejected the credentials: {detail}"
    recipient_text = "{vendor} cannot reach this recipient: {detail}"
    rate_limit_text = "{vendor} rate limit: {detail}"
    transient_text = "{detail}"
    permanent_text = "{detail}"
    unreachable_text = "{vendor} unreachable: {reason}"
    # The largest message the vendor takes, as it counts it (SendGrid: the request; SES: the
    # raw MIME), in bytes; 0: no limit of its own (``size_check``).
    message_limit: int = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for method in ("send", "send_batch"):
            if method in cls.__dict__:
                setattr(cls, method, _timed(cls.__dict__[method]))

    def answer_error(self, status: int, *, code: Any = None, body: Any = None,
                     headers: Any = None, retry_after: float | None = None,
                     recipient: bool = False) -> Exception:
        """The error an HTTP answer means: rate limited or a server error → transient (a
        ``Retry-After`` a floor), a dead address (by code, status, or ``recipient``: the
        adapter read the answer as about the address) → invalid recipient, a configuration
        code or status → configuration, anything else → permanent. The reason is the vendor,
        status and code only (``vendor_reason``)."""
        vendor = self.vendor or self.name
        detail = vendor_reason(vendor, status, code, body=body)
        text = {"vendor": vendor, "detail": detail, "status": status}
        code = code if isinstance(code, int | str) else None  # a hostile body's list or dict
        limited = status == 429 or code in self.rate_limit_codes
        if (limited or status >= 500 or status in self.transient_statuses
                or code in self.transient_codes):
            if retry_after is None:
                retry_after = seconds(header(headers, "Retry-After"))
            return ProviderTransientError(
                (self.rate_limit_text if limited else self.transient_text).format(**text),
                retry_after=retry_after)
        if recipient or status in self.recipient_statuses or code in self.recipient_codes:
            return ProviderInvalidRecipient(self.recipient_text.format(**text))
        if status in self.configuration_statuses or code in self.configuration_codes:
            return ProviderConfigurationError(self.configuration_text.format(**text))
        return ProviderPermanentError(self.permanent_text.format(**text))

    def network_error(self, exc: BaseException, *, timeout: float | None = None) -> Exception:
        """The error a request that got no answer means: the SSRF guard refusing the
        account's URL → configuration; a timeout → transient, "did not answer within";
        anything else (refused, reset, not resolved) → transient, with ``network_reason``'s
        kind of error, never its text (host names, addresses)."""
        vendor = self.vendor or self.name
        if isinstance(exc, http.Refused | http.RefusedRequest):
            return ProviderConfigurationError(f"{vendor} {self.url_setting} refused: {exc}")
        timeout = self.timeout if timeout is None else timeout
        if timeout and timed_out(exc):
            return ProviderTransientError(f"{vendor} did not answer within {timeout:g}s.")
        return ProviderTransientError(self.unreachable_text.format(
            vendor=vendor, reason=network_reason(vendor, exc)))

    def attachments_check(self, message: EmailMessage) -> None:
        """``AttachmentsTooLarge`` when the message's attachments together exceed
        ``HERALD_MAX_ATTACHMENT_BYTES`` (Herald's own limit, whatever the provider takes)."""
        if not message.attachments:
            return
        from django.conf import settings

        size = attachments_size(message)
        limit = settings.HERALD_MAX_ATTACHMENT_BYTES
        if size > limit:
            raise AttachmentsTooLarge(
                f"The attachments ({_names(message)}) take {_megabytes(size)}, over the "
                f"{_megabytes(limit)} allowed (HERALD_MAX_ATTACHMENT_BYTES).")

    def size_check(self, message: EmailMessage, size: int) -> None:
        """``AttachmentsTooLarge`` when ``size`` (the message as the vendor counts it) exceeds
        the vendor's ``message_limit``: refused here rather than by the vendor, which would
        refuse it on every retry."""
        if self.message_limit and size > self.message_limit:
            what = f" with its attachments ({_names(message)})" if message.attachments else ""
            raise AttachmentsTooLarge(
                f"The message{what} takes {_megabytes(size)}, over the "
                f"{_megabytes(self.message_limit)} {self.vendor or self.name} accepts.")

    def credentials_check(self, credentials: dict) -> None:
        """``ProviderConfigurationError`` unless every one of ``required_credentials`` is
        given ("The SNS integration needs an access_key_id and a secret_access_key.")."""
        if all(credentials.get(name) for name in self.required_credentials):
            return
        needed = " and ".join(f"{'an' if name[0] in 'aeiou' else 'a'} {name}"
                              for name in self.required_credentials)
        raise ProviderConfigurationError(
            f"The {self.vendor or self.name} integration needs {needed}.")


def attachments_size(message: EmailMessage) -> int:
    """The attachments' bytes, before any transfer encoding."""
    return sum(len(attachment.content) for attachment in message.attachments)


def _names(message: EmailMessage) -> str:
    return ", ".join(attachment.filename for attachment in message.attachments)


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB" if size >= 100_000 else f"{size:,} bytes"


# Per provider: [calls, seconds] in this process.
calls: dict[str, list[float]] = {}


def _timed(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def timed(self: Adapter, *args: Any, **kwargs: Any) -> Any:
        started, error = time.perf_counter(), None
        try:
            return method(self, *args, **kwargs)
        except BaseException as exc:
            error = exc
            raise
        finally:
            spent = time.perf_counter() - started
            metrics.provider_call(self.name, spent, error)
            total = calls.setdefault(self.name, [0, 0.0])
            total[0] += 1
            total[1] += spent
            log.debug("%s.%s took %.1f ms", self.name, method.__name__, spent * 1000)

    return timed
