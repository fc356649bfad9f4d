"""Telegram messages through the Bot API (``sendMessage``), with plain ``urllib3`` through
the SSRF guard (``common.http.request``: ``api_base`` is the account's to set in tests).

The bot token is part of every URL (``/bot<token>/sendMessage``), so nothing this module
raises carries a URL or a chained urllib3 exception, and urllib3's own request log lines are
redacted. The text is sent with ``parse_mode=HTML``: the title in ``<b>``, user text
HTML-escaped.
"""

import html
import logging
import re

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
from comms.providers.vendor_http import allow_private, json_object, retry_after

DEFAULT_API_BASE = "https://api.telegram.org"
MAX_TEXT = 4096  # characters after entity parsing
# 400 descriptions that mean the chat itself is unusable (403 always does).
RECIPIENT_ERRORS = ("chat not found", "user not found", "peer_id_invalid",
                    "group chat was upgraded", "chat_id is empty", "have no rights to send")
_CHAT_ID_RE = re.compile(r"^(-?[0-9]{1,20}|@[A-Za-z0-9_]{4,32})$")
_TOKEN_IN_URL_RE = re.compile(r"/bot[^/\s]+")


class TelegramProvider(Adapter):
    name = "telegram"
    vendor = "Telegram"
    configuration_statuses = frozenset({401, 404})  # 404: a malformed token (or API base)
    configuration_text = "Telegram rejected the bot token ({status})."
    recipient_statuses = frozenset({403})
    recipient_codes = frozenset(e.replace(" ", "_") for e in RECIPIENT_ERRORS)
    recipient_text = "Telegram cannot message this chat: {detail}"
    channel = "telegram"
    config_fields = {"api_base": f"Bot API base URL (default {DEFAULT_API_BASE})."}
    credential_fields = {"bot_token": "The token @BotFather gave the bot (123456:ABC-…)."}
    required_credentials = ("bot_token",)

    def __init__(self, config: dict, credentials: dict, timeout: float) -> None:
        self.credentials_check(credentials)
        token = credentials["bot_token"]
        if "/" in token:
            raise ProviderConfigurationError("The Telegram integration needs a valid bot_token.")
        self._url = (config.get("api_base") or DEFAULT_API_BASE).rstrip("/") + (
            f"/bot{token}/sendMessage")
        self.timeout = timeout

    def __repr__(self) -> str:
        return "<TelegramProvider>"  # never the URL

    def _error(self, status: int, data: dict) -> Exception:
        description = str(data.get("description") or "").lower()
        parameters = data.get("parameters") or {}
        # Telegram has no error codes beyond the status: the known description, as a label.
        known = next((e for e in RECIPIENT_ERRORS if e in description), "")
        return self.answer_error(status, code=known.replace(" ", "_") or None, body=data,
                                 retry_after=retry_after(parameters.get("retry_after")))

    def send(self, message: ChannelMessage) -> SendResult:
        if not _CHAT_ID_RE.match(message.to):
            raise ProviderInvalidRecipient(f"Not a Telegram chat id: {message.to!r}.")
        if not (message.title.strip() or message.text):
            raise ProviderPermanentError("The message is empty.")
        chat_id: int | str = message.to if message.to.startswith("@") else int(message.to)
        status, data = self._post({"chat_id": chat_id, "text": text_html(message),
                                   "parse_mode": "HTML", "link_preview_options":
                                   {"is_disabled": True}})
        if status != 200 or not data.get("ok"):
            raise self._error(status, data)
        message_id = (data.get("result") or {}).get("message_id")
        if message_id is None:
            raise ProviderTransientError("Telegram answered without a message_id.")
        return SendResult(provider_message_id=f"{chat_id}:{message_id}")

    def _post(self, body: dict) -> tuple[int, dict]:
        # The failure is raised outside the ``except``: a chained urllib3 error could
        # carry the URL (and so the token) into a traceback.
        failure: Exception | None = None
        try:
            response = http.request("POST", self._url, json_body=body, headers={},
                                    timeout=self.timeout, allow_private=allow_private())
        # Refused names the host only, never the path (the token).
        except (http.Refused, urllib3.exceptions.HTTPError, OSError) as exc:
            failure = self.network_error(exc)
        if failure:
            raise failure
        return response.status, json_object(response.data)


def text_html(message: ChannelMessage) -> str:
    """``<b>title</b>`` above the text, cut so the visible text fits Telegram's limit."""
    title = message.title.strip()[:256]
    room = MAX_TEXT - (len(title) + 1 if title else 0)
    text = message.text if len(message.text) <= room else message.text[:room - 1] + "…"
    body = html.escape(text, quote=False)
    return f"<b>{html.escape(title, quote=False)}</b>\n{body}" if title else body


class _RedactBotTokens(logging.Filter):
    """urllib3 logs request lines (``POST /bot<token>/sendMessage``) at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "/bot" in text:
            record.msg, record.args = _TOKEN_IN_URL_RE.sub("/bot<redacted>", text), ()
        return True


for _logger in ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry"):
    logging.getLogger(_logger).addFilter(_RedactBotTokens())
