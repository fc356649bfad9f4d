"""WhatsApp text messages through the WhatsApp Cloud API (Graph API), with plain ``urllib3``
through the SSRF guard (``common.http.request``: ``api_base`` is the account's in tests).

WhatsApp formatting has no escape character: a ``*``, ``_``, ``~`` or backtick in user text
is kept from pairing into formatting by zero-width spaces around it (invisible, and the
text still reads and copies the same). The title is bold (``*…*``) above the text.
"""

import re
from typing import Any

import urllib3

from common import http
from comms.providers.base import (
    Adapter,
    ChannelMessage,
    ProviderConfigurationError,
    ProviderInvalidRecipient,
    ProviderPermanentError,
    ProviderTransientError,
    SendResult,
)
from comms.providers.vendor_http import allow_private, json_object, titled

DEFAULT_API_BASE = "https://graph.facebook.com"
GRAPH_VERSION = "v21.0"
MAX_BODY = 4096
CONFIG_CODES = frozenset({190})  # expired or invalid access token
# 131026 not a WhatsApp user (or old app), 131030 not in the test number's allowed list
RECIPIENT_CODES = frozenset({131026, 131030})
# throughput (130429), spam (131048) and pair (131056) rate limits, account rate limit (80007)
# and Graph's generic "temporarily unavailable" codes
TRANSIENT_CODES = frozenset({130429, 131048, 131056, 80007, 1, 2, 4, 131000, 133004})
_PHONE_RE = re.compile(r"^[1-9][0-9]{6,14}$")
_MARKER_RE = re.compile(r"([*_~`])")
ZWSP = "\u200b"


class WhatsAppProvider(Adapter):
    name = "whatsapp_cloud"
    vendor = "WhatsApp"
    transient_codes = TRANSIENT_CODES
    configuration_codes = CONFIG_CODES
    configuration_statuses = frozenset({401})
    configuration_text = "WhatsApp rejected the access token: {detail}"
    recipient_codes = RECIPIENT_CODES
    recipient_text = "WhatsApp cannot message this number: {detail}"
    rate_limit_text = "{detail}"
    required_credentials = ("access_token",)
    channel = "whatsapp"
    config_fields = {
        "api_base": f"Graph API base URL (default {DEFAULT_API_BASE}).",
        "phone_number_id": "The sending number's Phone number ID (WhatsApp Manager → API setup).",
    }
    credential_fields = {
        "access_token": "A system user access token with whatsapp_business_messaging.",
    }

    def __init__(self, config: dict, credentials: dict, timeout: float) -> None:
        self.credentials_check(credentials)
        phone_number_id = str(config.get("phone_number_id") or "")
        if not phone_number_id.isdigit():
            raise ProviderConfigurationError("The WhatsApp integration needs a phone_number_id.")
        self.url = (f"{(config.get('api_base') or DEFAULT_API_BASE).rstrip('/')}/{GRAPH_VERSION}"
                    f"/{phone_number_id}/messages")
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {credentials['access_token']}"}

    def _error(self, status: int, data: dict) -> Exception:
        error = data.get("error") if isinstance(data.get("error"), dict) else {}
        code = error.get("code") if isinstance(error.get("code"), int | str) else None
        return self.answer_error(status, code=code, body=data, retry_after=_retry_after(data))

    def send(self, message: ChannelMessage) -> SendResult:
        to = message.to.removeprefix("+")
        if not _PHONE_RE.match(to):
            raise ProviderInvalidRecipient(f"Not an E.164 phone number: {message.to!r}.")
        if not (message.title.strip() or message.text):
            raise ProviderPermanentError("The message is empty.")
        status, data = self._post({
            "messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
            "type": "text", "text": {"body": body(message), "preview_url": False}})
        if status != 200 or "error" in data:
            raise self._error(status, data)
        messages = data.get("messages") or [{}]
        if not messages[0].get("id"):
            raise ProviderTransientError("WhatsApp answered without a message id.")
        return SendResult(provider_message_id=str(messages[0]["id"]))

    def _post(self, payload: dict) -> tuple[int, dict]:
        try:
            response = http.request("POST", self.url, json_body=payload, headers=self.headers,
                                    timeout=self.timeout, allow_private=allow_private())
        except (http.Refused, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self.network_error(exc) from exc
        return response.status, json_object(response.data)


def body(message: ChannelMessage) -> str:
    return titled(message.title, message.text, escape_formatting, bold="*", limit=MAX_BODY)


def escape_formatting(text: str) -> str:
    return _MARKER_RE.sub(ZWSP + r"\1" + ZWSP, text)


def _retry_after(data: Any) -> float | None:
    """Graph sends no Retry-After; pair rate limits (131056) ask for a pause of about 6s."""
    error = data.get("error") if isinstance(data, dict) else None
    return 6.0 if isinstance(error, dict) and error.get("code") == 131056 else None
