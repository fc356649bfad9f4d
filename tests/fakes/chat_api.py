"""One dependency-free local HTTP server faking the four chat APIs, for tests::

    with FakeChat() as fake:
        provider = TelegramProvider({"api_base": fake.url},
                                    {"bot_token": fake.tokens["telegram"]}, timeout=2)
        provider.send(message)
        assert fake.messages("telegram")[0].body["text"] == "<b>Hi</b>\\nthere"

Paths, as the vendors have them:

- Slack ``POST /api/chat.postMessage`` (``Authorization: Bearer``; always HTTP 200 with
  ``{"ok": false, "error"}`` except rate limits, 429 with ``Retry-After``).
- Discord ``POST /api/v10/users/@me/channels`` then ``POST /api/v10/channels/{id}/messages``
  (``Authorization: Bot``; ``{"message", "code"}`` errors).
- Telegram ``POST /bot{token}/sendMessage`` (``{"ok": false, "error_code", "description",
  "parameters"}`` errors; ``parse_mode=HTML`` text is checked the way Telegram parses it).
- WhatsApp Cloud ``POST /v21.0/{phone_number_id}/messages`` (``Authorization: Bearer``;
  Graph ``{"error": {"message", "type", "code", "error_subcode"}}`` errors).

Recipients in :attr:`FakeChat.unknown` do not exist (Slack ``channel_not_found``, Discord
10013, Telegram "chat not found", WhatsApp 131026); those in :attr:`FakeChat.blocking`
refuse the bot (Slack ``cannot_dm_bot``, Discord 50007, Telegram 403 "bot was blocked by
the user", WhatsApp 131030). :meth:`FakeChat.fail_next` answers the next requests of a
platform with an error in that vendor's shape (429s carry the vendor's retry hints);
:meth:`FakeChat.hang_next` holds them before answering.
"""

from __future__ import annotations

import html.parser
import itertools
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from tests.fakes.http_host import FakeHost, TrackedHandler

__all__ = ["PLATFORMS", "FakeChat", "Received"]

PLATFORMS = ("slack", "discord", "telegram", "whatsapp")
_SLACK_PATH = "/api/chat.postMessage"
_DISCORD_DM_PATH = "/api/v10/users/@me/channels"
_DISCORD_MESSAGE_RE = re.compile(r"^/api/v10/channels/([0-9]+)/messages$")
_TELEGRAM_RE = re.compile(r"^/bot([^/]+)/sendMessage$")
_WHATSAPP_RE = re.compile(r"^/v21\.0/([^/]+)/messages$")
_TELEGRAM_TAGS = frozenset({"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a",
                            "code", "pre", "span", "tg-spoiler", "blockquote", "tg-emoji"})
_TELEGRAM_BAD_ENTITY_RE = re.compile(r"&(?!(?:lt|gt|amp|quot|#[0-9]+|#x[0-9a-fA-F]+);)")
_ids = itertools.count(1_100_000_000_000_000_000)

Response = tuple[int, dict[str, Any], dict[str, str]]


@dataclass(frozen=True)
class Received:
    """One accepted message: the request body as the vendor parsed it."""

    platform: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    message_id: str
    recipient: str  # the platform's user/chat/phone the message went to
    received_at: float = field(default_factory=time.time)


@dataclass
class _Fault:
    remaining: int
    status: int = 0  # 0: no error, answer normally (after ``hang``)
    body: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    hang: float = 0.0


class FakeChat(FakeHost):
    """In-process fake of Slack, Discord, Telegram and WhatsApp Cloud on ``127.0.0.1``."""

    def __init__(self) -> None:
        self.tokens = {"slack": "xoxb-fake-slack-token", "discord": "fake.discord.bot-token",
                       "telegram": "123456789:AAFakeTelegram_token-x", "whatsapp": "EAAGfake"}
        self.phone_number_id = "106540352242922"
        self.unknown: dict[str, set[str]] = {
            "slack": {"U0UNKNOWN"}, "discord": {"404000000000000001"},
            "telegram": {"404000001"}, "whatsapp": {"15550000404"}}
        self.blocking: dict[str, set[str]] = {
            "slack": {"U0BOTUSER"}, "discord": {"403000000000000001"},
            "telegram": {"403000001"}, "whatsapp": {"15550000403"}}
        self.requests: list[tuple[str, str, str]] = []  # (platform, method, path), all of them
        self._messages: list[Received] = []
        self._faults: dict[str, deque[_Fault]] = {p: deque() for p in PLATFORMS}
        self._dm_channels: dict[str, str] = {}  # Discord DM channel id -> user id
        self._lock = threading.Lock()
        FakeHost.__init__(self)

    # -- inspection and scripting --------------------------------------------

    def messages(self, platform: str) -> list[Received]:
        """The accepted messages of a platform, oldest first."""
        with self._lock:
            return [m for m in self._messages if m.platform == platform]

    def calls(self, platform: str) -> list[str]:
        """The paths of every request a platform received (accepted, refused or faulted)."""
        with self._lock:
            return [path for p, _, path in self.requests if p == platform]

    def fail_next(self, platform: str, n: int, status: int, *, body: dict | None = None,
                  headers: dict[str, str] | None = None, retry_after: float = 3) -> None:
        """Answer the next ``n`` requests of ``platform`` with ``status``: by default the
        vendor's own error for it (429s carry ``retry_after`` as that vendor sends it)."""
        if body is None:
            body, default_headers = _vendor_error(platform, status, retry_after)
            headers = {**default_headers, **(headers or {})}
        with self._lock:
            self._faults[platform].append(_Fault(n, status, body, headers or {}))

    def hang_next(self, platform: str, n: int = 1, seconds: float = 5.0) -> None:
        """Hold the next ``n`` requests of ``platform`` for ``seconds``, then answer them."""
        with self._lock:
            self._faults[platform].append(_Fault(n, hang=seconds))

    def _take_fault(self, platform: str) -> _Fault | None:
        with self._lock:
            queue = self._faults[platform]
            if not queue:
                return None
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.popleft()
            return fault

    # -- request handling ----------------------------------------------------

    def handle(self, method: str, path: str, headers: Any, raw: bytes) -> Response:
        platform, route = _route(path)
        with self._lock:
            self.requests.append((platform, method, path))
        if platform == "":
            return 404, {"message": "404: Not Found", "code": 0}, {}
        fault = self._take_fault(platform)
        if fault is not None and fault.hang:
            self._stopping.wait(fault.hang)
        if fault is not None and fault.status:
            return fault.status, fault.body or {}, fault.headers or {}
        if method != "POST":
            return 405, {"message": "405: Method Not Allowed", "code": 0}, {}
        body = _parse_body(headers, raw)
        return getattr(self, f"_{platform}")(path, route, headers, body)

    def _record(self, platform: str, path: str, body: dict, headers: Any,
                recipient: str, prefix: str = "") -> str:
        message_id = prefix + str(next(_ids))
        with self._lock:
            self._messages.append(Received(platform, path, body, dict(headers.items()),
                                           message_id, recipient))
        return message_id

    def _slack(self, path: str, route: str, headers: Any, body: dict) -> Response:
        auth = headers.get("Authorization", "")
        if not auth:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if auth != f"Bearer {self.tokens['slack']}":
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        channel = str(body.get("channel") or "")
        if not channel or channel in self.unknown["slack"]:
            return 200, {"ok": False, "error": "channel_not_found"}, {}
        if channel in self.blocking["slack"]:
            return 200, {"ok": False, "error": "cannot_dm_bot"}, {}
        if not body.get("text") and not body.get("blocks"):
            return 200, {"ok": False, "error": "no_text"}, {}
        dm = "D" + channel[1:] if channel[0] in "UW" else channel
        number = self._record("slack", path, body, headers, channel)
        ts = f"{int(time.time())}.{int(number) % 1_000_000:06d}"
        return 200, {"ok": True, "channel": dm, "ts": ts,
                     "message": {"type": "message", "text": body.get("text", ""), "ts": ts}}, {}

    def _discord(self, path: str, route: str, headers: Any, body: dict) -> Response:
        if headers.get("Authorization") != f"Bot {self.tokens['discord']}":
            return 401, {"message": "401: Unauthorized", "code": 0}, {}
        if route == "dm":
            user = str(body.get("recipient_id") or "")
            if not user.isdigit():
                return 400, _discord_invalid("recipient_id", "NUMBER_TYPE_COERCE"), {}
            if user in self.unknown["discord"]:
                return 404, {"message": "Unknown User", "code": 10013}, {}
            channel_id = str(next(_ids))
            with self._lock:
                self._dm_channels[channel_id] = user
            return 200, {"id": channel_id, "type": 1, "last_message_id": None,
                         "recipients": [{"id": user, "username": f"user{user[-4:]}"}]}, {}
        channel_id = _DISCORD_MESSAGE_RE.match(path).group(1)  # type: ignore[union-attr]
        user = self._dm_channels.get(channel_id)
        if user is None:
            return 404, {"message": "Unknown Channel", "code": 10003}, {}
        if user in self.blocking["discord"]:
            return 403, {"message": "Cannot send messages to this user", "code": 50007}, {}
        content = body.get("content")
        if not content:
            return 400, {"message": "Cannot send an empty message", "code": 50006}, {}
        if not isinstance(content, str) or len(content) > 2000:
            return 400, _discord_invalid("content", "BASE_TYPE_MAX_LENGTH"), {}
        message_id = self._record("discord", path, body, headers, user)
        return 200, {"id": message_id, "channel_id": channel_id, "content": content,
                     "type": 0, "author": {"id": "1", "bot": True}}, {}

    def _telegram(self, path: str, route: str, headers: Any, body: dict) -> Response:
        if route != self.tokens["telegram"]:
            return 401, _telegram_error(401, "Unauthorized"), {}
        chat = str(body.get("chat_id") or "")
        if not chat:
            return 400, _telegram_error(400, "Bad Request: chat_id is empty"), {}
        if chat in self.unknown["telegram"] or not re.fullmatch(r"-?[0-9]+|@\w{4,}", chat):
            return 400, _telegram_error(400, "Bad Request: chat not found"), {}
        if chat in self.blocking["telegram"]:
            return 403, _telegram_error(403, "Forbidden: bot was blocked by the user"), {}
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            return 400, _telegram_error(400, "Bad Request: message text is empty"), {}
        visible = text
        if body.get("parse_mode") == "HTML":
            try:
                visible = _telegram_visible_text(text)
            except ValueError as exc:
                return 400, _telegram_error(
                    400, f"Bad Request: can't parse entities: {exc}"), {}
        if len(visible) > 4096:
            return 400, _telegram_error(400, "Bad Request: message is too long"), {}
        message_id = int(self._record("telegram", path, body, headers, chat))
        return 200, {"ok": True, "result": {
            "message_id": message_id, "date": int(time.time()), "text": visible,
            "chat": {"id": int(chat) if chat.lstrip("-").isdigit() else 0, "type": "private"},
        }}, {}

    def _whatsapp(self, path: str, route: str, headers: Any, body: dict) -> Response:
        if headers.get("Authorization") != f"Bearer {self.tokens['whatsapp']}":
            return 401, _graph_error(190, "Invalid OAuth access token - Cannot parse access "
                                     "token", "OAuthException"), {}
        if route != self.phone_number_id:
            return 400, _graph_error(100, f"Unsupported post request. Object with ID '{route}'"
                                     " does not exist", "GraphMethodException", 33), {}
        to = str(body.get("to") or "")
        text = (body.get("text") or {}).get("body") if isinstance(body.get("text"), dict) else None
        if body.get("messaging_product") != "whatsapp" or body.get("type") != "text":
            return 400, _graph_error(100, "(#100) Invalid parameter"), {}
        if not isinstance(text, str) or not text or len(text) > 4096:
            return 400, _graph_error(100, "(#100) Param text['body'] must be between 1 and "
                                     "4096 characters long"), {}
        if not to.isdigit():
            return 400, _graph_error(100, "(#100) Invalid parameter 'to'"), {}
        if to in self.unknown["whatsapp"]:
            return 400, _graph_error(131026, "(#131026) Message undeliverable"), {}
        if to in self.blocking["whatsapp"]:
            return 400, _graph_error(131030, "(#131030) Recipient phone number not in "
                                     "allowed list"), {}
        message_id = self._record("whatsapp", path, body, headers, to, prefix="wamid.HBgL")
        return 200, {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                     "messages": [{"id": message_id}]}, {}


def _route(path: str) -> tuple[str, str]:
    """``(platform, route detail)`` of a request path; ``("", "")`` if none."""
    if path == _SLACK_PATH:
        return "slack", ""
    if path == _DISCORD_DM_PATH:
        return "discord", "dm"
    if _DISCORD_MESSAGE_RE.match(path):
        return "discord", "message"
    if match := _TELEGRAM_RE.match(path):
        return "telegram", match.group(1)
    if match := _WHATSAPP_RE.match(path):
        return "whatsapp", match.group(1)
    return "", ""


def _parse_body(headers: Any, raw: bytes) -> dict[str, Any]:
    ctype = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    try:
        if ctype == "application/x-www-form-urlencoded":
            return dict(parse_qsl(raw.decode()))
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def _telegram_error(code: int, description: str, **parameters: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        error["parameters"] = parameters
    return error


def _graph_error(code: int, message: str, kind: str = "OAuthException",
                 subcode: int | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code,
                             "fbtrace_id": "AbCdEfGhIjK"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


def _discord_invalid(field_name: str, code: str) -> dict[str, Any]:
    return {"message": "Invalid Form Body", "code": 50035,
            "errors": {field_name: {"_errors": [{"code": code, "message": "Invalid value."}]}}}


def _vendor_error(platform: str, status: int,
                  retry_after: float) -> tuple[dict[str, Any], dict[str, str]]:
    """The body and headers ``platform`` answers ``status`` with."""
    limited = status == 429
    header = {"Retry-After": f"{retry_after:g}"} if limited else {}
    if platform == "slack":
        return {"ok": False, "error": "ratelimited" if limited else "fatal_error"}, header
    if platform == "discord":
        if limited:
            return ({"message": "You are being rate limited.", "retry_after": retry_after,
                     "global": False},
                    {"Retry-After": str(int(retry_after + 0.999)), "X-RateLimit-Remaining": "0",
                     "X-RateLimit-Reset-After": f"{retry_after:g}"})
        return {"message": f"{status}: Internal Server Error", "code": 0}, {}
    if platform == "telegram":
        if limited:
            return _telegram_error(429, f"Too Many Requests: retry after {retry_after:g}",
                                   retry_after=retry_after), {}
        return _telegram_error(status, "Internal Server Error"), {}
    if limited:
        return _graph_error(130429, "(#130429) Rate limit hit"), {}
    return _graph_error(1, "An unknown error occurred"), {}


class _TelegramHtml(html.parser.HTMLParser):
    """Telegram's HTML: a few tags, four named entities, every tag closed."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag not in _TELEGRAM_TAGS:
            raise ValueError(f'unsupported start tag "{tag}"')
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open.pop() != tag:
            raise ValueError(f'unexpected end tag "{tag}"')

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _telegram_visible_text(text: str) -> str:
    if match := _TELEGRAM_BAD_ENTITY_RE.search(text):
        raise ValueError(f"unsupported entity at byte offset {match.start()}")
    if re.search(r"[<>]", re.sub(r"</?[a-z-]+(?:\s[^<>]*)?>", "", text)):
        raise ValueError("unescaped < or > outside a tag")
    parser = _TelegramHtml()
    parser.feed(text)
    parser.close()
    if parser.open:
        raise ValueError(f'can\'t find end tag corresponding to start tag "{parser.open[-1]}"')
    return "".join(parser.text)


class _Handler(TrackedHandler):
    server_version = "FakeChat/1.0"

    def _dispatch(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?", 1)[0]
        status, body, headers = self.server.fake.handle(self.command, path, self.headers, raw)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


FakeChat.handler = _Handler
