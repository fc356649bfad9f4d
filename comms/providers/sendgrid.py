"""SendGrid through the official ``sendgrid`` package (v3 Mail Send)."""

import base64
import email.utils
import http.client
import json
import time
import urllib.error
from typing import Any

from python_http_client import exceptions as http_errors
from sendgrid import SendGridAPIClient

from comms.providers.base import (
    Adapter,
    Attachment,
    EmailMessage,
    ProviderConfigurationError,
    ProviderPermanentError,
    ProviderTransientError,
    SendResult,
)

# "The total message size should not exceed 30MB. This includes the message itself, headers,
# and the combined size of any attachments" (Mail Send reference): the request, as sent.
MAX_MESSAGE_BYTES = 30 * 2**20


class SendGridProvider(Adapter):
    name = "sendgrid"
    vendor = "SendGrid"
    configuration_text = "SendGrid rejected the API key: {detail}"
    message_limit = MAX_MESSAGE_BYTES

    def __init__(self, client: SendGridAPIClient) -> None:
        self.client = client
        self.timeout = client.client.timeout or 0.0

    def send(self, message: EmailMessage) -> SendResult:
        self.attachments_check(message)
        body = mail_body(message)
        if message.attachments:  # the one kind of message that can reach the limit
            self.size_check(message, len(json.dumps(body)))
        try:
            response = self.client.client.mail.send.post(request_body=body)
        except http_errors.HTTPError as exc:
            raise self._error(exc) from exc
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            raise self.network_error(exc) from exc
        message_id = response.headers.get("X-Message-Id", "")
        if not message_id:
            raise ProviderTransientError("SendGrid answered without X-Message-Id")
        return SendResult(provider_message_id=message_id)


    def send_batch(self, messages: list[EmailMessage]) -> list[SendResult | Exception]:
        """Individually rendered messages in as few requests as possible (``batch_requests``),
        each personalization carrying its own subject and bodies through substitution tags.
        If SendGrid refuses a batch as invalid, its messages are retried one by one so one
        bad message cannot fail the others."""
        outcomes: dict[int, SendResult | Exception] = {}
        for chunk in batch_requests(messages):
            if len(chunk) == 1:
                outcomes[chunk[0]] = self._send_one(messages[chunk[0]])
            else:
                outcomes.update(self._send_chunk([messages[i] for i in chunk], chunk))
        return [outcomes[i] for i in range(len(messages))]

    def _send_chunk(self, messages: list[EmailMessage],
                    indexes: list[int]) -> dict[int, SendResult | Exception]:
        try:
            response = self.client.client.mail.send.post(request_body=batch_body(messages))
        except http_errors.HTTPError as exc:
            error = self._error(exc)
            if isinstance(error, ProviderPermanentError) and len(messages) > 1:
                return {i: self._send_one(m) for i, m in zip(indexes, messages, strict=True)}
            return dict.fromkeys(indexes, error)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            return dict.fromkeys(indexes, self.network_error(exc))
        message_id = response.headers.get("X-Message-Id", "")
        if not message_id:
            return dict.fromkeys(
                indexes, ProviderTransientError("SendGrid answered without X-Message-Id"))
        return dict.fromkeys(indexes, SendResult(provider_message_id=message_id))

    def _error(self, exc: http_errors.HTTPError) -> Exception:
        """A 429's wait is ``X-RateLimit-Reset`` (SendGrid sends no ``Retry-After``)."""
        return self.answer_error(exc.status_code, code=error_field(exc.body), body=exc.body,
                                 retry_after=_reset_after(exc.headers)
                                 if exc.status_code == 429 else None)

    def _send_one(self, message: EmailMessage) -> SendResult | Exception:
        try:
            return self.send(message)
        except Exception as exc:  # returned, classified by the caller
            return exc


# SendGrid's Mail Send limits a batch must respect (a request over any of them is refused
# whole with a 400): 1,000 personalizations (one recipient each here), each address once
# across a request's personalizations, 10,000 bytes of substitutions per personalization.
MAX_PERSONALIZATIONS = 1000
MAX_SUBSTITUTIONS_BYTES = 10_000
# Substitution tags standing for each personalization's own rendered parts.
SUBJECT_TAG, TEXT_TAG, HTML_TAG = "%herald:subject%", "%herald:text%", "%herald:html%"


def batch_requests(messages: list[EmailMessage]) -> list[list[int]]:
    """The indexes of ``messages`` grouped into Mail Send requests SendGrid accepts: one
    sender and set of parts per request, at most ``MAX_PERSONALIZATIONS``, no address twice
    (two tickets for one address go in two requests), and a message whose parts exceed
    ``MAX_SUBSTITUTIONS_BYTES`` alone (sent with its parts as the request's content), as is
    a message with attachments: they are the request's, not a personalization's, and a
    ticket's are its guest's own. Extra headers go per personalization, so plain mail with
    them (a topic's ``List-Unsubscribe``) still shares requests."""
    requests: list[list[int]] = []
    open_requests: dict[tuple[str, str, bool, bool, str], list[tuple[list[int], set[str]]]] = {}
    for index, message in enumerate(messages):
        if message.attachments or _substitutions_size(message) > MAX_SUBSTITUTIONS_BYTES:
            requests.append([index])
            continue
        shape = (message.from_email, message.from_name, bool(message.text),
                 bool(message.html), message.reply_to)
        address = message.to_email.lower()
        candidates = open_requests.setdefault(shape, [])
        for chunk, addresses in candidates:
            if address not in addresses and len(chunk) < MAX_PERSONALIZATIONS:
                chunk.append(index)
                addresses.add(address)
                break
        else:
            candidates.append(([index], {address}))
            requests.append(candidates[-1][0])
    return requests


def _substitutions(message: EmailMessage) -> dict[str, str]:
    substitutions = {SUBJECT_TAG: message.subject}
    if message.text:
        substitutions[TEXT_TAG] = message.text
    if message.html:
        substitutions[HTML_TAG] = message.html
    return substitutions


def _substitutions_size(message: EmailMessage) -> int:
    """UTF-8 bytes of a personalization's substitution keys and values, as SendGrid counts."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in _substitutions(message).items())


def batch_body(messages: list[EmailMessage]) -> dict[str, Any]:
    """One Mail Send request for messages of the same sender and parts, grouped by
    ``batch_requests``."""
    first = messages[0]
    content = []
    if first.text:
        content.append({"type": "text/plain", "value": TEXT_TAG})
    if first.html:
        content.append({"type": "text/html", "value": HTML_TAG})
    personalizations = []
    for message in messages:
        personalization = {"to": [_address(message.to_email, message.to_name)],
                           "custom_args": dict(message.custom_args),
                           "substitutions": _substitutions(message)}
        if message.headers:
            personalization["headers"] = dict(message.headers)
        personalizations.append(personalization)
    body = {
        "personalizations": personalizations,
        "from": _address(first.from_email, first.from_name),
        "subject": SUBJECT_TAG,
        "content": content or [{"type": "text/plain", "value": " "}],
    }
    if first.reply_to:
        body["reply_to"] = {"email": first.reply_to}
    return body


def _address(email: str, name: str) -> dict[str, str]:
    return {"email": email, "name": name} if name else {"email": email}


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
    personalization: dict[str, Any] = {"to": [to], "custom_args": dict(message.custom_args)}
    if message.headers:
        personalization["headers"] = dict(message.headers)
    body = {
        "personalizations": [personalization],
        "from": sender,
        "subject": message.subject,
        "content": content or [{"type": "text/plain", "value": " "}],
    }
    if message.reply_to:
        body["reply_to"] = {"email": message.reply_to}
    if message.attachments:
        body["attachments"] = [_attachment(a) for a in message.attachments]
    return body


def _attachment(attachment: Attachment) -> dict[str, str]:
    """Mail Send's attachment object: an inline one needs its ``content_id`` (the HTML's
    ``cid:``); SendGrid refuses an empty ``type``."""
    item = {"content": base64.b64encode(attachment.content).decode("ascii"),
            "type": attachment.content_type, "filename": attachment.filename,
            "disposition": "inline" if attachment.disposition == "inline" else "attachment"}
    if attachment.content_id:
        item["content_id"] = attachment.content_id
    return item


def error_field(body: Any) -> str:
    """The field SendGrid's first error names (``{"errors": [{"field", "message"}]}``): the
    label a tenant sees; the message stays in the server log."""
    try:
        errors = json.loads(body or b"{}").get("errors") or []
        return str(errors[0].get("field") or "") if isinstance(errors[0], dict) else ""
    except (ValueError, AttributeError, TypeError, IndexError):
        return ""


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


def from_settings() -> SendGridProvider:
    """The platform's SendGrid adapter (``HERALD_EMAIL_PROVIDER=sendgrid``)."""
    from django.conf import settings

    return sendgrid_provider(api_key=settings.SENDGRID_API_KEY,
                             host=settings.SENDGRID_API_HOST,
                             timeout=settings.HERALD_PROVIDER_TIMEOUT_SECONDS)
