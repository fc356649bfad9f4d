"""SMS through Twilio's Messages API with the official ``twilio`` package.

The library always builds ``https://api.twilio.com/…`` URLs; :class:`BaseUrlHttpClient`
(its documented extension point, an ``HttpClient``) rewrites them onto ``api_base`` so
tests can point the real client at a local fake (through the SSRF guard, pinned to the
vetted address), and keeps each thread's last response headers because
``TwilioRestException`` drops them (429's ``Retry-After``).
"""

import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from comms.providers.base import (
    Adapter,
    ChannelMessage,
    ProviderConfigurationError,
    ProviderTransientError,
    SendResult,
)
from comms.providers.vendor_http import pinned_session, sms_text, vendor_reason

DEFAULT_API_BASE = "https://api.twilio.com"
AUTH_CODES = frozenset({20003, 20005})  # authentication failed, account suspended
# The configured sender cannot send: every message would fail until someone fixes it.
SENDER_CODES = frozenset({21212, 21606, 21659, 21660, 21703, 21704})
# Invalid To, To not reachable by SMS, unsubscribed (STOP), To not a mobile number.
RECIPIENT_CODES = frozenset({21211, 21612, 21610, 21614})
_CONFIG_REQUEST_ERRORS = (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                          requests.exceptions.InvalidSchema)


class BaseUrlHttpClient(TwilioHttpClient):
    """Twilio's requests-based client, sending to ``api_base`` instead of Twilio's hosts."""

    def __init__(self, api_base: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.api_base = urlsplit(api_base.rstrip("/"))
        if api_base.rstrip("/") != DEFAULT_API_BASE:  # the account's URL: behind the guard
            self.session = pinned_session()
        self._local = threading.local()

    def request(self, method: str, url: str, params: Any = None, data: Any = None,
                headers: Any = None, auth: Any = None, timeout: float | None = None,
                allow_redirects: bool = False) -> Response:
        self._local.headers = {}
        parts = urlsplit(url)
        url = urlunsplit((self.api_base.scheme, self.api_base.netloc,
                          self.api_base.path + parts.path, parts.query, ""))
        response = super().request(method, url, params=params, data=data, headers=headers,
                                   auth=auth, timeout=timeout, allow_redirects=allow_redirects)
        self._local.headers = response.headers or {}
        return response

    def last_headers(self) -> Any:
        """Headers of this thread's last response (``{}`` if it got none)."""
        return getattr(self._local, "headers", {})


class TwilioSmsProvider(Adapter):
    name = "twilio"
    vendor = "Twilio"
    channel = "sms"
    required_credentials = ("account_sid", "auth_token")
    rate_limit_codes = frozenset({20429})
    rate_limit_text = "{detail}"
    configuration_codes = AUTH_CODES
    configuration_text = "Twilio rejected the account SID or auth token: {detail}"
    recipient_codes = RECIPIENT_CODES
    recipient_text = "{detail}"
    config_fields = {
        "from_number": "Sending number in E.164 (+15551234567) or an alphanumeric sender id.",
        "messaging_service_sid": "Messaging Service SID (MG…), instead of or with from_number.",
        "api_base": f"Twilio API base URL (default {DEFAULT_API_BASE}).",
    }
    credential_fields = {
        "account_sid": "Account SID (AC…).",
        "auth_token": "Auth token of that account.",
    }

    def __init__(self, config: dict, credentials: dict, timeout: float) -> None:
        self.credentials_check(credentials)
        self.from_number = config.get("from_number") or ""
        self.messaging_service_sid = config.get("messaging_service_sid") or ""
        if not (self.from_number or self.messaging_service_sid):
            raise ProviderConfigurationError(
                "The Twilio integration needs a from_number or a messaging_service_sid.")
        self.timeout = timeout
        self.http = BaseUrlHttpClient(config.get("api_base") or DEFAULT_API_BASE, timeout)
        # region/edge given explicitly so TWILIO_REGION/TWILIO_EDGE in the environment are
        # ignored; the library never retries.
        self.client = Client(credentials["account_sid"], credentials["auth_token"],
                             http_client=self.http,
                             environment={"TWILIO_REGION": "", "TWILIO_EDGE": ""})

    def send(self, message: ChannelMessage) -> SendResult:
        try:
            created = self.client.messages.create(**self.create_params(message))
        except TwilioRestException as exc:
            raise self._error(exc.status, exc.code, exc.msg) from exc
        except TwilioServiceException as exc:
            raise self._error(exc.status, exc.code, exc.detail or exc.title) from exc
        except _CONFIG_REQUEST_ERRORS as exc:
            raise ProviderConfigurationError("The Twilio api_base is not a valid URL.") from exc
        except requests.exceptions.RequestException as exc:
            raise self.network_error(exc) from exc
        except (TwilioException, ValueError) as exc:  # e.g. a 2xx that is not JSON
            raise ProviderTransientError("Twilio answered with an unreadable body.") from exc
        if not created.sid:
            raise ProviderTransientError("Twilio answered without a message sid.")
        return SendResult(provider_message_id=created.sid)

    def create_params(self, message: ChannelMessage) -> dict[str, Any]:
        """The ``messages.create`` arguments (Twilio's To, From, MessagingServiceSid, Body)."""
        params = {"to": message.to, "body": sms_text(message.title, message.text)}
        if self.from_number:
            params["from_"] = self.from_number
        if self.messaging_service_sid:
            params["messaging_service_sid"] = self.messaging_service_sid
        return params


    def _error(self, status: int, code: Any, detail: Any) -> Exception:
        code = _int(code)
        label = code if code != status else None  # not Twilio's JSON: the status only
        if code in SENDER_CODES and status < 500 and status not in (401, 403, 429):
            return ProviderConfigurationError("Twilio cannot send from the configured sender: "
                                              + vendor_reason("Twilio", status, label, body=detail))
        return self.answer_error(status, code=label, body=detail,
                                 headers=self.http.last_headers())


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
