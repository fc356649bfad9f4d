"""SendGrid through the official ``sendgrid`` package (v3 Mail Send)."""

import email.utils
import http.client
import time
import urllib.error
from typing import Any

from python_http_client import exceptions as http_errors
from sendgrid import SendGridAPIClient

from comms.providers.base import (
    EmailMessage,
    ProviderConfigurationError,
    ProviderPermanentError,
    ProviderTransientError,
    SendResult,
)


class SendGridProvider:
    name = "sendgrid"

    def __init__(self, client: SendGridAPIClient) -> None:
        self.client = client

    def send(self, message: EmailMessage) -> SendResult:
        try:
            response = self.client.client.mail.send.post(request_body=mail_body(message))
        except http_errors.HTTPError as exc:
            raise _classify(exc) from exc
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            raise ProviderTransientError(f"SendGrid unreachable: {exc}") from exc
        message_id = response.headers.get("X-Message-Id", "")
        if not message_id:
            raise ProviderTransientError("SendGrid answered without X-Message-Id")
        return SendResult(provider_message_id=message_id)


def mail_body(message: EmailMessage) -> dict[str, Any]:
    content = []
    if message.text:
        content.append({"type": "text/plain", "value": message.text})
    if message.html:
        content.append({"type": "text/html", "value": message.html})
    to: dict[str, str] = {"email": message.to_email}
    if message.to_name:
        to["name"] = message.to_name
    sender: dict[str, str] = {"email": message.from_email}
    if message.from_name:
        sender["name"] = message.from_name
    return {
        "personalizations": [{"to": [to], "custom_args": dict(message.custom_args)}],
        "from": sender,
        "subject": message.subject,
        "content": content or [{"type": "text/plain", "value": " "}],
    }


def _classify(exc: http_errors.HTTPError) -> Exception:
    status = exc.status_code
    detail = _body_text(exc)
    if status == 429:
        return ProviderTransientError(
            f"SendGrid rate limit (429): {detail}", retry_after=_reset_after(exc.headers)
        )
    if status >= 500:
        return ProviderTransientError(f"SendGrid {status}: {detail}")
    if status in (401, 403):
        return ProviderConfigurationError(f"SendGrid rejected the API key ({status}): {detail}")
    return ProviderPermanentError(f"SendGrid {status}: {detail}")


def _body_text(exc: http_errors.HTTPError) -> str:
    body = exc.body
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    return text[:500]


def _reset_after(headers: Any) -> float | None:
    """``X-RateLimit-Reset`` is a unix time (SendGrid); some proxies send an HTTP date."""
    value = headers.get("X-RateLimit-Reset") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value) - time.time())
    except (ValueError, OverflowError):
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (ValueError, TypeError, OverflowError):
        return None  # unreadable: plain backoff applies


def sendgrid_provider(*, api_key: str, host: str, timeout: float) -> SendGridProvider:
    if not api_key:
        raise ProviderConfigurationError("HERALD_EMAIL_PROVIDER=sendgrid needs SENDGRID_API_KEY.")
    client = SendGridAPIClient(api_key=api_key, host=host)
    client.client.timeout = timeout
    return SendGridProvider(client)
