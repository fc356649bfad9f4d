"""The webhook channel (spec 002's ``webhookUrl``): the message POSTed as JSON to a URL,
signed per Standard Webhooks with the channel integration's secret, behind the SSRF guard
of customer webhooks (resolved and vetted at send time, pinned IP, no redirects)."""

import base64
import binascii
import json
import time
from typing import Any

from django.conf import settings
from django.utils import timezone

from common import http, signing, ssrf
from common.times import iso
from comms.providers.base import (
    Adapter,
    ChannelMessage,
    ProviderConfigurationError,
    ProviderPermanentError,
    ProviderTransientError,
    SendResult,
)


class WebhookChannelProvider(Adapter):
    """Configured as an integration of the ``webhook`` channel: its own ``whsec_`` secret,
    not the account's customer-webhook secret (a receiver at an arbitrary URL must not get
    messages its owner could replay to the account's own webhook endpoint)."""

    name = "webhook"
    vendor = "The receiver"
    channel = "webhook"
    # The receiver is the account's own: what it answers is the message's fate, never a
    # configuration or recipient error (a 401 or 404 fails this message only).
    transient_statuses = frozenset({408, 425})
    configuration_statuses = frozenset()
    transient_text = rate_limit_text = permanent_text = "The receiver answered HTTP {status}."
    config_fields: dict[str, str] = {}
    credential_fields = {"signing_secret": "whsec_… secret the receivers verify with "
                                           "(Standard Webhooks); generate one per account"}

    def __init__(self, config: dict, credentials: dict, timeout: float) -> None:
        secret = credentials.get("signing_secret", "")
        try:
            valid = secret.startswith(signing.SECRET_PREFIX) and len(
                base64.b64decode(secret.removeprefix(signing.SECRET_PREFIX), validate=True)) >= 16
        except (binascii.Error, ValueError):
            valid = False
        if not valid:
            raise ProviderConfigurationError(
                "The webhook channel needs a signing_secret: whsec_ and base64 of at least "
                "16 random bytes.")
        self.secrets = [secret]

    def send(self, message: ChannelMessage) -> SendResult:
        try:
            target = ssrf.url_resolve(message.to)
        except ssrf.UnsafeUrl as exc:
            raise ProviderPermanentError(f"Refused: {exc}") from None
        body = json.dumps(payload(message), separators=(",", ":")).encode()
        msg_id = f"msg_{message.delivery_id.replace('-', '')}"
        headers = signing.headers(secrets=self.secrets, msg_id=msg_id,
                                  timestamp=int(time.time()), body=body)
        outcome = http.post(target=target, body=body, headers=headers,
                            timeout=settings.WEBHOOKS_TIMEOUT_SECONDS,
                            max_bytes=settings.WEBHOOKS_RESPONSE_MAX_BYTES)
        code = outcome.status_code
        if code is None:  # no answer: common.http's account of the failure
            raise ProviderTransientError(outcome.error or "The receiver did not answer.")
        if 200 <= code < 300:
            return SendResult(provider_message_id=msg_id)
        raise self.answer_error(code)


def payload(message: ChannelMessage) -> dict[str, Any]:
    """What the receiver gets: the message, its delivery id and when it was sent."""
    return {
        "type": "communication.message",
        "timestamp": iso(timezone.now()),
        "data": {
            "id": message.delivery_id, "subject": message.title,
            "body": message.html or message.text, "isHtml": bool(message.html),
        },
    }
