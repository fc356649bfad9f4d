"""The Slack, Discord, Telegram and WhatsApp adapters against one fake of the four APIs."""

import logging
import socket
from collections.abc import Iterator

import pytest

from comms.providers.base import (
    ChannelMessage,
    ProviderConfigurationError,
    ProviderError,
    ProviderInvalidRecipient,
    ProviderPermanentError,
    ProviderTransientError,
)
from comms.providers.discord import DiscordProvider
from comms.providers.slack import SlackProvider
from comms.providers.telegram import TelegramProvider
from comms.providers.whatsapp import WhatsAppProvider
from tests.fakes.chat_api import FakeChat

ZW = "\u200b"
TITLE = "Q&A <soon>"
TEXT = "Use *bold* & <@U1> > _x_ ~y~ `z` https://example.com/a_b"
# A recipient that works, per platform.
GOOD = {"slack": "U0ALICE", "discord": "123456789012345678", "telegram": "987654321",
        "whatsapp": "+15550001234"}


@pytest.fixture
def fake() -> Iterator[FakeChat]:
    with FakeChat() as server:
        yield server


def provider(platform: str, fake: FakeChat, *, token: str | None = None,
             api_base: str | None = None, timeout: float = 2.0):
    token = fake.tokens[platform] if token is None else token
    config = {"api_base": api_base or fake.url}
    if platform == "whatsapp":
        return WhatsAppProvider({**config, "phone_number_id": fake.phone_number_id},
                                {"access_token": token}, timeout)
    cls = {"slack": SlackProvider, "discord": DiscordProvider,
           "telegram": TelegramProvider}[platform]
    return cls(config, {"bot_token": token}, timeout)


def message(platform: str, to: str | None = None, title: str = TITLE,
            text: str = TEXT) -> ChannelMessage:
    channel = platform
    return ChannelMessage(delivery_id="d-1", channel=channel, to=to or GOOD[platform],
                          title=title, text=text)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


PLATFORMS = ["slack", "discord", "telegram", "whatsapp"]


# --- happy paths: the exact request each vendor receives --------------------------------


def test_slack_posts_rich_text_with_a_bold_title_and_an_escaped_fallback(fake):
    result = provider("slack", fake).send(message("slack"))

    [received] = fake.messages("slack")
    assert received.headers["Authorization"] == f"Bearer {fake.tokens['slack']}"
    assert received.body == {
        "channel": "U0ALICE",
        "text": "Q&amp;A &lt;soon&gt;\nUse *bold* &amp; &lt;@U1&gt; &gt; _x_ ~y~ `z` "
                "https://example.com/a_b",
        "blocks": [{"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": [
            {"type": "text", "text": TITLE, "style": {"bold": True}},
            {"type": "text", "text": "\n" + TEXT},
        ]}]}],
        "unfurl_links": False,
        "unfurl_media": False,
    }
    channel, ts = result.provider_message_id.split(":")
    assert channel == "D0ALICE" and ts.count(".") == 1


def test_slack_without_title_sends_only_the_text(fake):
    provider("slack", fake).send(message("slack", title="  ", text="a & b"))

    body = fake.messages("slack")[0].body
    assert body["text"] == "a &amp; b"
    assert body["blocks"][0]["elements"][0]["elements"] == [{"type": "text", "text": "a & b"}]


def test_discord_opens_the_dm_then_posts_escaped_markdown_without_pings(fake):
    adapter = provider("discord", fake)
    result = adapter.send(message("discord"))

    [received] = fake.messages("discord")
    assert received.headers["Authorization"] == f"Bot {fake.tokens['discord']}"
    assert received.recipient == GOOD["discord"]
    assert received.body == {
        "content": "**Q&A \\<soon\\>**\nUse \\*bold\\* & \\<@U1\\> \\> \\_x\\_ \\~y\\~ \\`z\\` "
                   "https://example.com/a_b",
        "allowed_mentions": {"parse": []},
    }
    assert result.provider_message_id == received.message_id
    adapter.send(message("discord", text="again"))
    assert fake.calls("discord").count("/api/v10/users/@me/channels") == 1  # DM remembered


def test_discord_cuts_long_content_to_2000_characters_without_splitting_an_escape(fake):
    provider("discord", fake).send(message("discord", title="T", text="*" * 3000))

    content = fake.messages("discord")[0].body["content"]
    assert len(content) <= 2000 and content.startswith("**T**\n\\*")
    assert content.endswith("\\*…")


def test_telegram_sends_html_with_escaped_user_text(fake):
    result = provider("telegram", fake).send(message("telegram"))

    [received] = fake.messages("telegram")
    assert received.path == f"/bot{fake.tokens['telegram']}/sendMessage"
    assert received.body == {
        "chat_id": 987654321,
        "text": "<b>Q&amp;A &lt;soon&gt;</b>\nUse *bold* &amp; &lt;@U1&gt; &gt; _x_ ~y~ `z` "
                "https://example.com/a_b",
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
    }
    assert result.provider_message_id == f"987654321:{received.message_id}"


def test_telegram_accepts_channel_usernames_and_cuts_long_text(fake):
    provider("telegram", fake).send(message("telegram", to="@herald_news", title="",
                                            text="<" * 5000))

    body = fake.messages("telegram")[0].body
    assert body["chat_id"] == "@herald_news"
    assert body["text"] == "&lt;" * 4095 + "…"  # 4,096 visible characters


def test_whatsapp_sends_a_text_with_formatting_markers_neutralized(fake):
    result = provider("whatsapp", fake).send(message("whatsapp"))

    [received] = fake.messages("whatsapp")
    assert received.path == f"/v21.0/{fake.phone_number_id}/messages"
    assert received.headers["Authorization"] == f"Bearer {fake.tokens['whatsapp']}"

    def z(marker: str) -> str:
        return ZW + marker + ZW

    assert received.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "15550001234",
        "type": "text",
        "text": {"body": f"*Q&A <soon>*\nUse {z('*')}bold{z('*')} & <@U1> > {z('_')}x{z('_')}"
                         f" {z('~')}y{z('~')} {z('`')}z{z('`')} https://example.com/a{z('_')}b",
                 "preview_url": False},
    }
    assert result.provider_message_id == received.message_id
    assert result.provider_message_id.startswith("wamid.")


# --- failures, per platform -------------------------------------------------------------


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_bad_token_is_a_configuration_error(fake, platform):
    wrong = "123:wrong" if platform == "telegram" else "wrong-token"
    with pytest.raises(ProviderConfigurationError) as info:
        provider(platform, fake, token=wrong).send(message(platform))
    assert "wrong" not in str(info.value)
    assert not fake.messages(platform)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_missing_token_fails_at_construction(fake, platform):
    with pytest.raises(ProviderConfigurationError):
        provider(platform, fake, token="")


def test_whatsapp_needs_a_phone_number_id(fake):
    with pytest.raises(ProviderConfigurationError):
        WhatsAppProvider({"api_base": fake.url}, {"access_token": "x"}, 2.0)


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("kind", ["unknown", "blocking"])
def test_a_dead_recipient_is_an_invalid_recipient(fake, platform, kind):
    to = next(iter(getattr(fake, kind)[platform]))
    with pytest.raises(ProviderInvalidRecipient):
        provider(platform, fake).send(message(platform, to=to))


@pytest.mark.parametrize(("platform", "to"), [
    ("slack", "#general"), ("discord", "alice#1234"), ("telegram", "alice"),
    ("whatsapp", "+1 (555) 000"),
])
def test_a_malformed_address_is_refused_without_a_request(fake, platform, to):
    with pytest.raises(ProviderInvalidRecipient):
        provider(platform, fake).send(message(platform, to=to))
    assert fake.calls(platform) == []


@pytest.mark.parametrize("platform", PLATFORMS)
def test_an_empty_message_is_permanent(fake, platform):
    with pytest.raises(ProviderPermanentError):
        provider(platform, fake).send(message(platform, title=" ", text=""))


@pytest.mark.parametrize(("platform", "expected"), [
    ("slack", 7.0), ("discord", 6.5), ("telegram", 7.0), ("whatsapp", None),
])
def test_a_rate_limit_is_transient_with_the_vendors_retry_after(fake, platform, expected):
    fake.fail_next(platform, 1, 429, retry_after=6.5 if platform == "discord" else 7)
    adapter = provider(platform, fake)

    with pytest.raises(ProviderTransientError) as info:
        adapter.send(message(platform))
    assert info.value.retry_after == expected
    assert "429" in str(info.value)
    adapter.send(message(platform))  # the next request goes through
    assert len(fake.messages(platform)) == 1


def test_whatsapp_throughput_errors_in_a_400_are_transient(fake):
    fake.fail_next("whatsapp", 1, 400, body={"error": {
        "message": "(#131056) (Business Account, Consumer Account) pair rate limit hit",
        "type": "OAuthException", "code": 131056}})
    with pytest.raises(ProviderTransientError) as info:
        provider("whatsapp", fake).send(message("whatsapp"))
    assert info.value.retry_after == 6.0


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("status", [500, 503])
def test_a_server_error_is_transient(fake, platform, status):
    fake.fail_next(platform, 1, status)
    with pytest.raises(ProviderTransientError):
        provider(platform, fake).send(message(platform))


def test_discord_server_error_on_the_message_step_reopens_the_dm_next_time(fake):
    adapter = provider("discord", fake)
    adapter.send(message("discord"))
    fake.fail_next("discord", 1, 502)
    with pytest.raises(ProviderTransientError):
        adapter.send(message("discord"))
    adapter.send(message("discord"))
    assert fake.calls("discord").count("/api/v10/users/@me/channels") == 2


@pytest.mark.parametrize(("platform", "body", "error"), [
    ("slack", {"ok": False, "error": "msg_too_long"}, ProviderPermanentError),
    ("slack", {"ok": False, "error": "missing_scope"}, ProviderConfigurationError),
    ("discord", {"message": "Missing Access", "code": 50001}, ProviderPermanentError),
    ("telegram", {"ok": False, "error_code": 400,
                  "description": "Bad Request: can't parse entities"}, ProviderPermanentError),
    ("whatsapp", {"error": {"message": "(#100) Invalid parameter", "code": 100}},
     ProviderPermanentError),
])
def test_other_refusals_are_permanent_or_configuration(fake, platform, body, error):
    fake.fail_next(platform, 1, 200 if platform == "slack" else 403 if platform == "discord"
                   else 400, body=body)
    with pytest.raises(error) as info:
        provider(platform, fake).send(message(platform))
    assert not isinstance(info.value, ProviderInvalidRecipient)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_hanging_server_is_a_transient_timeout(fake, platform):
    fake.hang_next(platform, 1, seconds=3)
    with pytest.raises(ProviderTransientError) as info:
        provider(platform, fake, timeout=0.3).send(message(platform))
    assert "0.3s" in str(info.value)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_an_unreachable_server_is_transient(fake, platform):
    """The kind of network error (the adapters' one ``network_error``), never a timeout:
    urllib3's refused connection inherits from its connect timeout."""
    with pytest.raises(ProviderTransientError) as info:
        provider(platform, fake, api_base=closed_port_url()).send(message(platform))
    vendor = {"whatsapp": "WhatsApp"}.get(platform, platform.capitalize())
    assert str(info.value) == f"{vendor} unreachable: {vendor} ECONNREFUSED"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_missing_token_names_what_the_integration_needs(fake, platform):
    with pytest.raises(ProviderConfigurationError) as info:
        provider(platform, fake, token="")
    vendor = {"whatsapp": "WhatsApp"}.get(platform, platform.capitalize())
    credential = "an access_token" if platform == "whatsapp" else "a bot_token"
    assert str(info.value) == f"The {vendor} integration needs {credential}."


# Not Slack: slack_sdk's urllib transport follows redirects and offers no switch.
@pytest.mark.parametrize("platform", ["discord", "telegram", "whatsapp"])
def test_redirects_are_not_followed(fake, platform):
    fake.fail_next(platform, 1, 302, body={}, headers={"Location": f"{fake.url}/elsewhere"})
    with pytest.raises(ProviderPermanentError):
        provider(platform, fake).send(message(platform))
    assert "/elsewhere" not in fake.calls("")


# --- the Telegram token never leaks -----------------------------------------------------


@pytest.mark.parametrize("fault", ["hang", "unreachable", 500, 429, 401])
def test_telegram_errors_and_logs_never_carry_the_token(fake, caplog, fault):
    caplog.set_level(logging.DEBUG)
    api_base = closed_port_url() if fault == "unreachable" else None
    if fault == "hang":
        fake.hang_next("telegram", 1, seconds=3)
    elif isinstance(fault, int):
        fake.fail_next("telegram", 1, fault)
    adapter = provider("telegram", fake, api_base=api_base, timeout=0.3)

    with pytest.raises((ProviderError, ProviderConfigurationError)) as info:
        adapter.send(message("telegram"))

    token = fake.tokens["telegram"]
    secret = token.split(":", 1)[1]
    chain = [info.value, info.value.__cause__, info.value.__context__]
    assert all(secret not in str(e) and secret not in repr(e) for e in chain if e)
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert secret not in caplog.text
    assert secret not in repr(adapter)


def test_telegram_success_logs_no_token(fake, caplog):
    caplog.set_level(logging.DEBUG)
    provider("telegram", fake).send(message("telegram"))
    assert "/bot<redacted>/sendMessage" in caplog.text
    assert fake.tokens["telegram"].split(":", 1)[1] not in caplog.text
