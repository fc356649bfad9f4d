"""The webhook channel (spec 002's ``webhookUrl``): the message POSTed as JSON to a URL,
signed per Standard Webhooks with the account's webhook endpoint secret, behind the SSRF
guard of customer webhooks (resolved and vetted at send time, pinned IP, no redirects)."""

import json
import time
from typing import Any

from django.conf import settings
from django.utils import timezone

from common.times import iso
from comms.providers.base import (
    ChannelMessage,
    ProviderConfigurationError,
    ProviderPermanentError,
    ProviderTransientError,
    SendResult,
)
from webhooks import http, signing, ssrf


class WebhookChannelProvider:
    name = "webhook"
    channel = "webhook"
    config_fields: dict[str, str] = {}
    credential_fields: dict[str, str] = {}

    def __init__(self, account_id: Any) -> None:
        from webhooks.models import Endpoint
        from webhooks.services import endpoint_signing_secrets

        endpoint = (Endpoint.objects.filter(account_id=account_id, deleted_at__isnull=True)
                    .order_by("-created_at").first())
        self.secrets = endpoint_signing_secrets(endpoint) if endpoint else []

    def send(self, message: ChannelMessage) -> SendResult:
        if not self.secrets:
            raise ProviderConfigurationError(
                "The Webhook channel signs with your webhook endpoint's secret: create the "
                "endpoint first (POST /v1/webhooks).")
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
        if code is not None and 200 <= code < 300:
            return SendResult(provider_message_id=msg_id)
        if code is None or code >= 500 or code in (408, 425, 429):
            raise ProviderTransientError(outcome.error or f"The receiver answered HTTP {code}.")
        raise ProviderPermanentError(f"The receiver answered HTTP {code}.")


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
