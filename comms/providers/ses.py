"""Amazon SES through ``boto3`` (SES v2 ``send_email``): Simple content, or Raw content (the
MIME message ``comms.providers.mime`` builds) for a message with attachments or extra
headers.

The delivery id travels as the ``herald_delivery_id`` message tag, so SES events published
to SNS by the configuration set find their delivery (``comms.callbacks.ses``).
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formataddr
from typing import Any

from botocore.exceptions import ClientError

from comms.providers import aws, mime
from comms.providers.base import (
    Adapter,
    EmailMessage,
    ProviderConfigurationError,
    ProviderPermanentError,
    ProviderTransientError,
    SendResult,
)
from comms.providers.vendor_http import vendor_reason

TRANSIENT_CODES = frozenset({
    "Throttling", "ThrottlingException", "TooManyRequestsException", "LimitExceededException",
    "ServiceUnavailable", "InternalFailure", "InternalServerError", "RequestTimeout",
})
# Every send would fail the same way until someone fixes the account or Herald's settings.
CONFIGURATION_CODES = frozenset({
    "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
    "AccessDenied", "AccessDeniedException", "ExpiredToken", "ExpiredTokenException",
    "IncompleteSignature", "MissingAuthenticationToken", "AccountSuspendedException",
    "SendingPausedException", "ConfigurationSetDoesNotExistException",
})
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
# SES v2: a message of at most 40 MB, attachments included, after encoding.
MAX_MESSAGE_BYTES = 40 * 2**20


@dataclass(frozen=True)
class SesConfig:
    region: str
    configuration_set: str = ""
    endpoint_url: str = ""
    timeout: float = 15.0


class SesProvider(Adapter):
    """Reads its configuration on every send (cheap), so a changed setting takes effect;
    the boto3 client of each configuration is built once per process."""

    name = "ses"
    vendor = "SES"
    transient_codes = TRANSIENT_CODES
    configuration_codes = CONFIGURATION_CODES
    configuration_text = rate_limit_text = "{detail}"
    message_limit = MAX_MESSAGE_BYTES

    def __init__(self, config: Callable[[], SesConfig]) -> None:
        self._config = config

    def send(self, message: EmailMessage) -> SendResult:
        config = self._config()
        self.attachments_check(message)
        params = send_email_params(message, config)
        if "Raw" in params["Content"]:
            self.size_check(message, len(params["Content"]["Raw"]["Data"]))
        response = aws.call(
            self, lambda: ses_client(config).send_email(**params),
            timeout=config.timeout, answered=lambda exc: self._error(exc, config))
        message_id = response.get("MessageId", "")
        if not message_id:
            raise ProviderTransientError("SES answered without a MessageId")
        return SendResult(provider_message_id=message_id)

    def _error(self, exc: ClientError, config: SesConfig) -> Exception:
        status, code, message, headers = aws.answer(exc)
        if code == "NotFoundException" and config.configuration_set and (
                "configuration set" in message.lower()):
            return ProviderConfigurationError(vendor_reason("SES", status, code, body=message))
        return self.answer_error(status, code=code, body=message, headers=headers)


def send_email_params(message: EmailMessage, config: SesConfig) -> dict[str, Any]:
    """The ``sesv2.send_email`` arguments for one message: Simple content, or Raw when the
    message has attachments or extra headers (SES's Simple content carries neither in every
    region and SDK)."""
    if message.attachments or message.headers:
        return _raw_params(message, config)
    body: dict[str, Any] = {}
    if message.text:
        body["Text"] = {"Data": message.text, "Charset": "UTF-8"}
    if message.html:
        body["Html"] = {"Data": message.html, "Charset": "UTF-8"}
    params: dict[str, Any] = {
        "FromEmailAddress": _address(message.from_name, message.from_email),
        "Destination": {"ToAddresses": [_address(message.to_name, message.to_email)]},
        "Content": {"Simple": {
            "Subject": {"Data": message.subject, "Charset": "UTF-8"},
            "Body": body or {"Text": {"Data": " ", "Charset": "UTF-8"}},
        }},
        "EmailTags": email_tags(message),
    }
    if message.reply_to:
        params["ReplyToAddresses"] = [message.reply_to]
    if config.configuration_set:
        params["ConfigurationSetName"] = config.configuration_set
    return params


def _raw_params(message: EmailMessage, config: SesConfig) -> dict[str, Any]:
    """The whole MIME message as Raw content (SES replaces its Message-ID with its own);
    the envelope and tags as for Simple content."""
    try:
        data = mime.outgoing(message).data
    except (mime.MimeError, UnicodeError) as exc:
        raise ProviderPermanentError(f"SES message refused before sending: {exc}"[:500]) from exc
    params: dict[str, Any] = {
        "FromEmailAddress": _address(message.from_name, message.from_email),
        "Destination": {"ToAddresses": [_address(message.to_name, message.to_email)]},
        "Content": {"Raw": {"Data": data}},
        "EmailTags": email_tags(message),
    }
    if config.configuration_set:
        params["ConfigurationSetName"] = config.configuration_set
    return params


def email_tags(message: EmailMessage) -> list[dict[str, str]]:
    """``custom_args`` and the delivery id as SES tags (names and values: [A-Za-z0-9_-])."""
    args = {**message.custom_args, "herald_delivery_id": message.delivery_id}
    return [{"Name": _tag(name), "Value": _tag(value) or "_"} for name, value in args.items()]


def _tag(value: str) -> str:
    return _TAG_UNSAFE.sub("_", str(value))[:256]


def _address(name: str, email: str) -> str:
    # formataddr encodes a non-ASCII display name as RFC 2047, as SES requires.
    return formataddr((name, email), charset="utf-8") if name else email


def ses_client(config: SesConfig) -> Any:
    """The process's sesv2 client for ``config``."""
    return aws.shared_client("sesv2", region=config.region, endpoint_url=config.endpoint_url,
                             timeout=config.timeout)


def from_settings() -> SesProvider:
    """The platform's SES adapter (``HERALD_EMAIL_PROVIDER=ses``); settings read per send."""
    from django.conf import settings

    return SesProvider(lambda: SesConfig(
        region=settings.HERALD_SES_REGION,
        configuration_set=settings.HERALD_SES_CONFIGURATION_SET,
        endpoint_url=settings.HERALD_SES_ENDPOINT_URL,
        timeout=settings.HERALD_PROVIDER_TIMEOUT_SECONDS,
    ))
