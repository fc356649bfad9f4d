"""Expo push notifications through the official ``exponent_server_sdk`` (push API v2).

The SDK takes the API host and a per-request timeout, and a ``requests.Session`` that
carries the access token (behind the SSRF guard when the account set ``api_base``). Its
own token check only knows the ``ExponentPushToken[...]`` spelling, so messages go through
a ``PushMessage`` subclass with the payload we send.
"""

import re

import requests
from exponent_server_sdk import PushClient, PushMessage, PushServerError, PushTicket

from comms.providers.base import (
    Adapter,
    ChannelMessage,
    ProviderConfigurationError,
    ProviderInvalidRecipient,
    ProviderPermanentError,
    ProviderTransientError,
    SendResult,
)
from comms.providers.vendor_http import pinned_session, vendor_reason

DEFAULT_API_BASE = "https://exp.host"
_TOKEN_RE = re.compile(r"^Expo(?:nent)?PushToken\[[^\[\]\s]{1,200}\]$")


def is_expo_token(token: str) -> bool:
    """``ExponentPushToken[...]`` or ``ExpoPushToken[...]``, as the Expo client hands out."""
    return isinstance(token, str) and bool(_TOKEN_RE.match(token))


class _PushMessage(PushMessage):
    def get_payload(self) -> dict:
        payload = {"to": self.to, "body": self.body}
        if self.title:
            payload["title"] = self.title
        if self.data:
            payload["data"] = self.data
        return payload


class ExpoPushProvider(Adapter):
    name = "expo"
    vendor = "Expo push API"
    channel = "push"
    configuration_text = "Expo rejected the access token: {detail}"
    rate_limit_text = "{detail}"
    config_fields = {"api_base": f"Expo push API host (default {DEFAULT_API_BASE})."}
    credential_fields = {
        "access_token": "Expo access token, needed only if enhanced push security is on.",
    }

    def __init__(self, config: dict, credentials: dict, timeout: float) -> None:
        session = pinned_session() if config.get("api_base") else requests.Session()
        session.headers.update({"Accept": "application/json",
                                "Content-Type": "application/json"})
        if credentials.get("access_token"):
            session.headers["Authorization"] = f"Bearer {credentials['access_token']}"
        self.client = PushClient(host=config.get("api_base") or DEFAULT_API_BASE,
                                 session=session, timeout=timeout)
        self.timeout = timeout

    def send(self, message: ChannelMessage) -> SendResult:
        if not is_expo_token(message.to):
            raise ProviderInvalidRecipient("Not an Expo push token.")
        push = _PushMessage(to=message.to, title=message.title, body=message.text,
                            data=message.options.get("data") or None)
        try:
            ticket = self.client.publish(push)
        except PushServerError as exc:
            raise self._server_error(exc) from exc
        except requests.HTTPError as exc:
            raise self._http_error(exc.response, "") from exc
        except requests.RequestException as exc:
            raise self.network_error(exc) from exc
        return _ticket_result(ticket)

    def _server_error(self, exc: PushServerError) -> Exception:
        """A request-level failure: top-level ``errors`` or a body the SDK could not read."""
        errors = exc.errors if isinstance(exc.errors, list) else []
        first = errors[0] if errors and isinstance(errors[0], dict) else {}
        code = first.get("code", "error")
        response = exc.response
        if response is not None and response.status_code >= 400:
            return self._http_error(response, code)
        if not errors:  # a 2xx the SDK could not read: Expo misbehaving, worth a retry
            return ProviderTransientError("Expo answered unexpectedly: " + vendor_reason(
                self.vendor, response.status_code if response is not None else None,
                body=exc.message))
        return ProviderPermanentError("Expo rejected the request: " + vendor_reason(
            "Expo", None, code, body=errors))

    def _http_error(self, response: requests.Response | None, code: str) -> Exception:
        if response is None:
            return ProviderTransientError(vendor_reason(self.vendor, None, code))
        return self.answer_error(response.status_code, code=code,
                                 body=response.content[:4000], headers=response.headers)


def _ticket_result(ticket: PushTicket) -> SendResult:
    if ticket.is_success():
        if not ticket.id:
            raise ProviderTransientError("Expo answered without a ticket id.")
        return SendResult(provider_message_id=ticket.id)
    error = (ticket.details or {}).get("error", "")
    detail = vendor_reason("Expo", None, error or "error", body=ticket.message)
    if error == "DeviceNotRegistered":
        raise ProviderInvalidRecipient(detail)
    if error == "MessageRateExceeded":
        raise ProviderTransientError(detail)
    if error == "InvalidCredentials":
        raise ProviderConfigurationError(detail)
    raise ProviderPermanentError(detail)  # MessageTooBig and anything unknown

