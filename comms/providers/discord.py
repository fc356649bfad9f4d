"""Discord direct messages through the bot HTTP API (v10), with plain ``urllib3`` through
the SSRF guard (``common.http.request``: ``api_base`` is the account's to set in tests).

A DM needs the DM channel's id first (``POST /users/@me/channels``); ids are remembered
per recipient so that a burst of messages opens the channel once. The title is bold
(``**…**``) above the text; user text is backslash-escaped so it stays literal, and
``allowed_mentions`` is empty so ``@everyone`` or ``<@id>`` in it never pings anyone.
"""

import re
from collections import OrderedDict
from typing import Any

import urllib3

from common import http
from comms.providers.base import (
    Adapter,
    ChannelMessage,
    ProviderInvalidRecipient,
    ProviderPermanentError,
    ProviderTransientError,
    SendResult,
)
from comms.providers.vendor_http import (
    allow_private,
    json_object,
    retry_after,
    titled,
)

DEFAULT_API_BASE = "https://discord.com"
MAX_CONTENT = 2000
# 10013 unknown user, 50007 cannot send messages to this user, 50033 invalid recipient(s)
RECIPIENT_CODES = frozenset({10013, 50007, 50033})
_SNOWFLAKE_RE = re.compile(r"^[0-9]{1,20}$")
# Characters Discord's markdown gives a meaning to (any escaped punctuation renders as
# itself, so escaping a few too many is harmless); ``<`` starts mentions and timestamps.
_MARKDOWN_RE = re.compile(r"([\\*_~`|<>#\-\[\]()])")
# Links stay as they are: an escape inside a URL would break it (discord.py does the same).
_URL_RE = re.compile(r"(https?://[^\s<]+[^<.,:;\"')\]\s])")
_CHANNEL_CACHE_SIZE = 1024


class DiscordProvider(Adapter):
    name = "discord"
    vendor = "Discord"
    channel = "discord"
    configuration_statuses = frozenset({401})
    configuration_text = "Discord rejected the bot token ({status})."
    required_credentials = ("bot_token",)
    recipient_codes = RECIPIENT_CODES
    recipient_text = "Discord cannot message this user: {detail}"
    config_fields = {"api_base": f"Discord API base URL (default {DEFAULT_API_BASE})."}
    credential_fields = {"bot_token": "The bot's token (Developer Portal → Bot → Token)."}

    def __init__(self, config: dict, credentials: dict, timeout: float) -> None:
        self.credentials_check(credentials)
        self.api = (config.get("api_base") or DEFAULT_API_BASE).rstrip("/") + "/api/v10"
        self.timeout = timeout
        self.headers = {"Authorization": f"Bot {credentials['bot_token']}",
                        "User-Agent": "DiscordBot (Herald, 1)"}
        self._dm_channels: OrderedDict[str, str] = OrderedDict()

    def send(self, message: ChannelMessage) -> SendResult:
        if not _SNOWFLAKE_RE.match(message.to):
            raise ProviderInvalidRecipient(f"Not a Discord user id: {message.to!r}.")
        if not (message.title.strip() or message.text):
            raise ProviderPermanentError("The message is empty.")
        channel_id = self._dm_channel(message.to)
        status, data, headers = self._post(
            f"/channels/{channel_id}/messages",
            {"content": content(message), "allowed_mentions": {"parse": []}})
        if status != 200:
            self._dm_channels.pop(message.to, None)  # may be stale; reopened next time
            raise self._error(status, data, headers)
        if not data.get("id"):
            raise ProviderTransientError("Discord answered without a message id.")
        return SendResult(provider_message_id=str(data["id"]))

    def _dm_channel(self, user_id: str) -> str:
        if user_id in self._dm_channels:
            self._dm_channels.move_to_end(user_id)
            return self._dm_channels[user_id]
        status, data, headers = self._post("/users/@me/channels", {"recipient_id": user_id})
        if status != 200:
            raise self._error(status, data, headers)
        if not data.get("id"):
            raise ProviderTransientError("Discord answered without a DM channel id.")
        self._dm_channels[user_id] = str(data["id"])
        if len(self._dm_channels) > _CHANNEL_CACHE_SIZE:
            self._dm_channels.popitem(last=False)
        return str(data["id"])

    def _error(self, status: int, data: dict, headers: Any) -> Exception:
        code = data.get("code") if isinstance(data.get("code"), int | str) else None
        return self.answer_error(status, code=code, body=data, headers=headers,
                                 retry_after=retry_after(data.get("retry_after")))

    def _post(self, path: str, body: dict) -> tuple[int, dict, Any]:
        try:
            response = http.request("POST", self.api + path, json_body=body,
                                    headers=self.headers, timeout=self.timeout,
                                    allow_private=allow_private())
        except (http.Refused, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self.network_error(exc) from exc
        return response.status, json_object(response.data), response.headers


def content(message: ChannelMessage) -> str:
    """``**title**`` and the text, escaped, cut to Discord's 2,000 characters."""
    return titled(message.title, message.text, escape_markdown, bold="**", limit=MAX_CONTENT)


def escape_markdown(text: str) -> str:
    parts = _URL_RE.split(text)  # odd indexes are the URLs
    return "".join(part if i % 2 else _MARKDOWN_RE.sub(r"\\\1", part)
                   for i, part in enumerate(parts))

