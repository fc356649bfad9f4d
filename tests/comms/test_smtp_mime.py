"""The SMTP provider's hand-built MIME (comms.providers.mime), against a real aiosmtpd server:
what arrives parses with the ``email`` package to exactly what was sent."""

import re
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from comms.providers import email_provider, mime
from comms.providers.base import ProviderPermanentError, SendResult
from comms.providers.smtp import build_message
from tests.fakes.smtp_server import Recorder
from tests.fakes.smtp_server import message as _message

TEXT = "Grüße, Zoë!\n.\n..\n.hidden\n" + "é" * 2000 + "\n" + "x" * 2000 + "\nend  \n"
HTML = "<p>Grüße 🎉</p>\n.\n<p>" + "y" * 2000 + "</p>\n<p a=\"b\">=?utf-8?q?x?=</p>"


def _raw(smtp: Recorder, n: int = 0) -> bytes:
    return smtp.envelopes[n].original_content


def _lines_fit(raw: bytes) -> bool:
    return max(len(line) for line in raw.split(b"\r\n")) <= 998


def _content(part) -> str:
    return part.get_content().replace("\r\n", "\n")


def test_headers_and_bodies_round_trip_exactly(smtp):
    subject = "Ihr Ticket 🎉 für die Gala"
    result = email_provider("smtp").send(_message(
        from_name="Hérald Tickets", to_name="Zoë Müller", subject=subject, text=TEXT,
        html=HTML, reply_to="support@co.example", delivery_id="9f1c-d-42"))
    [message] = smtp.messages
    assert message["Subject"] == subject
    assert message["From"].addresses[0].display_name == "Hérald Tickets"
    assert message["From"].addresses[0].addr_spec == "tickets@herald.localhost"
    assert message["To"].addresses[0].display_name == "Zoë Müller"
    assert message["To"].addresses[0].addr_spec == "jane@example.com"
    assert message["Reply-To"] == "support@co.example"
    assert message["Message-ID"] == result.provider_message_id
    assert message["X-Herald-Delivery-Id"] == "9f1c-d-42"
    assert message["MIME-Version"] == "1.0"
    assert abs(message["Date"].datetime - datetime.now(UTC)) < timedelta(minutes=1)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert _content(message.get_body(("plain",))) == TEXT
    assert _content(message.get_body(("html",))) == HTML
    raw = _raw(smtp)
    assert raw.isascii() and _lines_fit(raw)  # 7-bit: no 8BITMIME or SMTPUTF8 needed
    assert smtp.envelopes[0].mail_from == "tickets@herald.localhost"
    assert smtp.envelopes[0].rcpt_tos == ["jane@example.com"]


def test_lines_starting_with_a_dot_survive_the_smtp_dot_stuffing(smtp):
    text = ".\n..\n.hidden\n...\n"
    email_provider("smtp").send(_message(text=text, html="<p>x</p>\n.\n..x"))
    [message] = smtp.messages
    assert _content(message.get_body(("plain",))) == text
    assert _content(message.get_body(("html",))) == "<p>x</p>\n.\n..x"
    raw = _raw(smtp)  # 7bit parts: the lines went as is, stuffed by smtplib, unstuffed
    assert b"\r\n.\r\n" in raw and b"\r\n..\r\n" in raw and b"\r\n.hidden\r\n" in raw


@pytest.mark.parametrize(("text", "encoding"), [
    ("Hello,\n.\n  indented\ttab \n\x01control\nend", "7bit"),
    ("x" * 2000 + "\nshort\n", "base64"),  # ASCII, but a line over 998 octets
    ("nul\x00byte", "base64"),  # 7bit allows no NUL
    ("Grüße 🎉\n" + "é" * 2000, "base64"),
    ("crlf\r\nand bare cr\rand lf\n", "7bit"),
])
def test_each_part_gets_the_encoding_it_needs(smtp, text, encoding):
    email_provider("smtp").send(_message(text=text, html=text))
    [message] = smtp.messages
    expected = text.replace("\r\n", "\n").replace("\r", "\n")
    for subtype in ("plain", "html"):
        part = message.get_body((subtype,))
        assert part["Content-Transfer-Encoding"] == encoding
        assert part.get_content_charset() == "utf-8"
        assert _content(part) == expected
    assert _lines_fit(_raw(smtp)) and _raw(smtp).isascii()


def test_a_text_only_message_is_one_text_part(smtp):
    email_provider("smtp").send(_message(text="Grüße\n" + "z" * 1500))
    [message] = smtp.messages
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert message["Content-Transfer-Encoding"] == "base64"
    assert _content(message) == "Grüße\n" + "z" * 1500
    assert _lines_fit(_raw(smtp))


def test_a_text_only_7bit_message_ends_with_one_line_end(smtp):
    provider = email_provider("smtp")
    provider.send(_message(text="Hello"))
    provider.send(_message(text="Hello\n"))
    # A message ends with a line end on the wire; a text that has one gets no second.
    assert [_content(m) for m in smtp.messages] == ["Hello\n", "Hello\n"]


@pytest.mark.parametrize("subject", [
    "Your ticket for the Spring Gala " * 10,  # 320 characters, folded at spaces
    ("Your ticket " + "x" * 300 + " and more words after it " * 3).strip(),
    "🎉 " + "Spring Gala, Saturday " * 14,  # non-ASCII and 300+ characters: encoded words
    "s" * 1200,  # one word too long to fold: encoded words
    "=?utf-8?q?not_an_encoded_word?=",  # literal text that looks like one
    "tab\tand  two spaces",
])
def test_subjects_round_trip(smtp, subject):
    email_provider("smtp").send(_message(subject=subject))
    [message] = smtp.messages
    assert message["Subject"] == subject
    assert _lines_fit(_raw(smtp))


@pytest.mark.parametrize("name", [
    "Smith, Jane", 'Jane "JJ" O\'Neil', "Back\\slash (x)", "Zoë Ñandú", "Jane Q. Public",
    "=?utf-8?q?Mallory?=", "李小龍",
])
def test_display_names_round_trip(smtp, name):
    email_provider("smtp").send(_message(to_name=name, from_name=name))
    [message] = smtp.messages
    assert message["To"].addresses[0].display_name == name
    assert message["To"].addresses[0].addr_spec == "jane@example.com"
    assert message["From"].addresses[0].display_name == name


def test_an_idn_domain_is_sent_idna_encoded(smtp):
    email_provider("smtp").send(_message(to_email="zoe@exämple.com", to_name="Zoë"))
    [message] = smtp.messages
    assert smtp.envelopes[0].rcpt_tos == ["zoe@xn--exmple-cua.com"]
    assert message["To"].addresses[0].addr_spec == "zoe@xn--exmple-cua.com"
    assert message["To"].addresses[0].display_name == "Zoë"


def test_a_non_ascii_local_part_is_refused_as_permanent(smtp):
    with pytest.raises(ProviderPermanentError, match="SMTPUTF8"):
        email_provider("smtp").send(_message(to_email="zoë@example.com"))
    assert smtp.messages == []


@pytest.mark.parametrize("fields", [
    {"subject": "Hi\r\nBcc: victim@example.com"},
    {"subject": "Hi\nthere"},
    {"to_name": "Jane\rBcc: victim@example.com"},
    {"from_name": "Herald\n"},
    {"to_email": "jane@example.com\r\nRCPT TO:<victim@example.com>"},
    {"reply_to": "a@example.com\nBcc: victim@example.com"},
])
def test_a_line_break_in_a_header_is_refused_as_permanent(smtp, fields):
    with pytest.raises(ProviderPermanentError, match="line break"):
        email_provider("smtp").send(_message(**fields))
    assert smtp.messages == []


def test_a_refused_message_does_not_stop_the_batch(smtp):
    outcomes = email_provider("smtp").send_batch([
        _message(to_email="p0@example.com"),
        _message(to_email="p1@example.com", subject="Hi\r\nBcc: victim@example.com"),
        _message(to_email="p2@example.com", to_name="Jane\nBcc: victim@example.com"),
        _message(to_email="p3@example.com"),
    ])
    assert [type(o) for o in outcomes] == [
        SendResult, ProviderPermanentError, ProviderPermanentError, SendResult]
    assert [m["To"] for m in smtp.messages] == ["p0@example.com", "p3@example.com"]
    assert len(set(smtp.peers)) == 1
    assert all(b"victim" not in e.original_content for e in smtp.envelopes)


def test_the_multipart_boundary_is_fresh_and_absent_from_the_parts(monkeypatch):
    first = build_message(_message(html="<p>--=_</p>", text="--=_ " * 40)).data
    second = build_message(_message(html="<p>--=_</p>")).data
    boundaries = [re.search(rb'boundary="([^"]+)"', d).group(1) for d in (first, second)]
    assert boundaries[0] != boundaries[1]
    _, body = first.split(b"\r\n\r\n", 1)
    assert body.count(b"--" + boundaries[0]) == 3  # two delimiters and the closing one
    tokens = iter(["0" * 24, "1" * 24])  # the first collides with the text part
    monkeypatch.setattr(mime, "secrets", SimpleNamespace(token_hex=lambda n: next(tokens)))
    data = build_message(_message(text=f"--=_{'0' * 24}", html="<p>x</p>")).data
    assert f'boundary="=_{"1" * 24}"'.encode() in data
    message = message_from_bytes(data, policy=policy.default)
    assert _content(message.get_body(("plain",))) == f"--=_{'0' * 24}"


# Text as it comes from templates: any characters but lone surrogates (st.text leaves them out).
bodies = st.text(max_size=3000)
# No line breaks of any kind: CR and LF are refused, and Python's header parser drops the
# others (\x85, \u2028...) even from inside an encoded word, which is its quirk, not ours.
subjects = st.text(min_size=1, max_size=200).filter(lambda s: len(f"{s}.".splitlines()) == 1)


@hypothesis_settings(max_examples=150, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])
@given(text=bodies, html=bodies, subject=subjects)
def test_any_text_round_trips_through_the_parser(text, html, subject):
    """No server: the bytes parse back to the same bodies and subject, with short lines."""
    data = build_message(_message(text=text, html=html, subject=subject)).data
    assert data.isascii() and _lines_fit(data)
    message = message_from_bytes(data, policy=policy.default)
    assert message["Subject"] == subject
    expected = text.replace("\r\n", "\n").replace("\r", "\n")
    body = message.get_body(("plain",))
    if html:
        assert _content(message.get_body(("html",))) == html.replace(
            "\r\n", "\n").replace("\r", "\n")
        assert _content(body) == expected
    elif body["Content-Transfer-Encoding"] == "7bit":  # the message's own final line end
        expected = expected or " "
        assert _content(body) == (expected if expected.endswith("\n") else expected + "\n")
    else:
        assert _content(body) == expected


def test_addresses_that_cannot_be_sent_are_refused():
    """As Django's sanitize_address, and stricter: no bare local part, no NUL."""
    for bad in ("no-at-sign", "@example.com", "jane@", "jane@exa mple.com",
                "jane@example..com", "jane@" + "é" * 70 + ".com", "jane\x00@example.com"):
        with pytest.raises(mime.MimeError):
            mime.addr_spec(bad)
    assert mime.addr_spec('"jane doe"@example.com') == '"jane doe"@example.com'
    assert mime.addr_spec("jane doe@example.com") == '"jane doe"@example.com'
    assert mime.addr_spec("j@[192.0.2.1]") == "j@[192.0.2.1]"
    with pytest.raises(mime.MimeError):
        mime.token("id\x7f", "X-Herald-Delivery-Id")


@pytest.mark.parametrize("fields", [{"text": "bad \ud800 text"}, {"subject": "bad \udc80"},
                                    {"to_name": "Zo\ud83d"}])
def test_text_that_is_not_valid_unicode_is_refused_as_permanent(fields):
    """A lone surrogate (JSON allows "\\ud800") cannot be encoded as UTF-8."""
    with pytest.raises(ProviderPermanentError, match="surrogate"):
        build_message(_message(html="<p>x</p>", **fields))
