"""Slack direct messages through the official ``slack_sdk`` (``chat.postMessage``).

Posting to a user id (``U…``) makes Slack open the bot's DM with that user. The message is
a ``rich_text`` block (the title a bold text element), so user text needs no mrkdwn escaping
and cannot turn into formatting, mentions or links; the top-level ``text`` is the
notification fallback, escaped for mrkdwn (Slack has no escape for ``*``/``_``/``~``).

The bot token never reaches a log: its shape is checked at save and at use (a token with a
line break made the SDK log it in an error), and the SDK's client logs through a logger of
its own that masks it.
"""

import http.client
import logging
import re
import urllib.error
from typing import Any

import urllib3
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from common import http as pinned_http  # not ``http``: it would shadow ``http.client``
from comms.providers.base import (
    Adapter,
    ChannelMessage,
    ProviderConfigurationError,
    ProviderInvalidRecipient,
    ProviderPermanentError,
    SendResult,
)
from comms.providers.vendor_http import (
    allow_private,
)

DEFAULT_API_BASE = "https://slack.com"
CONFIG_ERRORS = frozenset({
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
    "missing_scope", "not_allowed_token_type", "no_permission", "ekm_access_denied",
})
RECIPIENT_ERRORS = frozenset({
    "channel_not_found", "user_not_found", "is_archived", "cannot_dm_bot", "user_disabled",
})
TRANSIENT_ERRORS = frozenset({
    "ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout",
})
# Slack ids: U…/W… users, D… DMs, C…/G… channels.
_ID_RE = re.compile(r"^[A-Z][A-Z0-9]{2,}$")
# Slack tokens: xoxb-/xoxp-/… (a rotating one prefixed xoxe.), letters, digits and dashes.
TOKEN_RE = re.compile(r"(?:xoxe\.)?xox[a-z]-[A-Za-z0-9-]{1,500}")
_SDK_LOGGER = "slack_sdk.web.base_client"


class SlackProvider(Adapter):
    name = "slack"
    vendor = "Slack"
    rate_limit_codes = frozenset({"ratelimited"})
    transient_codes = TRANSIENT_ERRORS
    configuration_codes = CONFIG_ERRORS
    configuration_text = "Slack rejected the bot token: {detail}"
    recipient_codes = RECIPIENT_ERRORS
    recipient_text = "Slack cannot message this recipient: {detail}"
    permanent_text = "Slack refused the message: {detail}"
    required_credentials = ("bot_token",)
    channel = "slack"
    config_fields = {"api_base": f"Slack API base URL (default {DEFAULT_API_BASE})."}
    credential_fields = {"bot_token": "Bot user OAuth token (xoxb-…) with the chat:write scope."}

    def __init__(self, config: dict, credentials: dict, timeout: float) -> None:
        self.credentials_check(credentials)
        self.settings_check(config, credentials)
        token = credentials["bot_token"]
        api_base = (config.get("api_base") or DEFAULT_API_BASE).rstrip("/")
        # The account's URL goes through the SSRF guard; Slack's own through the SDK's urllib.
        client_class = PinnedWebClient if config.get("api_base") else WebClient
        # No SDK retries: the delivery pipeline owns retries and their backoff.
        self.client = client_class(token=token, base_url=api_base + "/api/", timeout=timeout,
                                   retry_handlers=[], logger=masking_logger(token))
        self.timeout = timeout

    @classmethod
    def settings_check(cls, config: dict, credentials: dict | None) -> None:
        """At save and at use: a bot token is one line of a Slack token's characters (the
        token itself is never quoted back)."""
        token = (credentials or {}).get("bot_token")
        if token and not (isinstance(token, str) and TOKEN_RE.fullmatch(token)):
            raise ProviderConfigurationError(
                "The Slack bot_token is not a Slack token (xoxb-… : letters, digits and "
                "dashes on one line).")

    def _error(self, status: int, data: Any, headers: Any) -> Exception:
        error = data.get("error", "") if isinstance(data, dict) else ""
        return self.answer_error(status, code=error if isinstance(error, str) else "",
                                 body=data, headers=headers)

    def send(self, message: ChannelMessage) -> SendResult:
        if not _ID_RE.match(message.to):
            raise ProviderInvalidRecipient(f"Not a Slack user or channel id: {message.to!r}.")
        if not (message.title.strip() or message.text):
            raise ProviderPermanentError("The message is empty.")
        try:
            response = self.client.chat_postMessage(
                channel=message.to, text=fallback_text(message), blocks=blocks(message),
                unfurl_links=False, unfurl_media=False)
        except SlackApiError as exc:
            raise self._error(exc.response.status_code, exc.response.data,
                            exc.response.headers) from exc
        except (pinned_http.Refused, urllib3.exceptions.HTTPError, urllib.error.URLError,
                http.client.HTTPException, OSError, SlackClientError) as exc:
            raise self.network_error(exc) from exc
        return SendResult(provider_message_id=f"{response['channel']}:{response['ts']}")


class PinnedWebClient(WebClient):
    """slack_sdk's client whose one network call (``_perform_urllib_http_request_internal``,
    the SDK's urllib request) goes through the SSRF guard to the vetted address instead,
    following no redirect. Raises ``common.http.Refused`` and urllib3's errors."""

    def _perform_urllib_http_request_internal(self, url: str, req: Any) -> dict[str, Any]:
        answer = pinned_http.request(req.get_method(), url, body=req.data,
                              headers=dict(req.header_items()), timeout=self.timeout,
                              allow_private=allow_private())
        return {"status": answer.status, "headers": answer.headers,
                "body": answer.data.decode("utf-8", "replace")}


def blocks(message: ChannelMessage) -> list[dict[str, Any]]:
    elements: list[dict[str, Any]] = []
    title = message.title.strip()
    if title:
        elements.append({"type": "text", "text": title, "style": {"bold": True}})
    if message.text:
        elements.append({"type": "text", "text": f"\n{message.text}" if title else message.text})
    return [{"type": "rich_text",
             "elements": [{"type": "rich_text_section", "elements": elements}]}]


def fallback_text(message: ChannelMessage) -> str:
    """Notifications and screen readers: the plain title and text, escaped for mrkdwn."""
    text = "\n".join(part for part in (message.title.strip(), message.text) if part)
    return escape_mrkdwn(text)


def escape_mrkdwn(text: str) -> str:
    """Slack's three control characters (``<@U1>``, ``<!channel>``, links)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _Mask(logging.Filter):
    """Replaces a credential in a record's text (and its repr, as in a bytes header)."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.forms = sorted({secret, repr(secret)[1:-1]}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = text
        for form in self.forms:
            masked = masked.replace(form, "[bot token]")
        if masked != text:
            record.msg, record.args = masked, None
        return True


def masking_logger(secret: str) -> logging.Logger:
    """A logger for one SDK client: a child of the SDK's own (its handlers and level), whose
    records never carry ``secret``. Not registered in the logging manager, so it goes with
    the client."""
    logger = logging.Logger(_SDK_LOGGER)
    logger.parent = logging.getLogger(_SDK_LOGGER)
    logger.addFilter(_Mask(secret))
    return logger

