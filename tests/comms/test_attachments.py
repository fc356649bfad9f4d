"""Extra headers and attachments through every email provider: what the SendGrid fake, moto's
SES and aiosmtpd received, read back with the ``email`` package's parser (SendGrid's JSON
attachments decoded), and the size limits checked before any provider is called."""

import base64
import urllib.request
from collections.abc import Iterator
from email import message_from_bytes, message_from_string, policy
from typing import Any

import boto3
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from sendgrid import SendGridAPIClient

from comms.providers import email_provider
from comms.providers.base import (
    Attachment,
    AttachmentsTooLarge,
    EmailMessage,
    ProviderPermanentError,
    SendResult,
)
from comms.providers.outbox import OutboxProvider
from comms.providers.sandbox import SandboxProvider
from comms.providers.sendgrid import SendGridProvider
from comms.providers.smtp import build_message
from tests.fakes.sendgrid_api import FakeSendGrid
from tests.fakes.smtp_server import Recorder

REGION = "us-east-1"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # binary: every byte value
ICS = "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nSUMMARY:Grüße\r\nEND:VCALENDAR\r\n".encode()
QR = Attachment("ticket-qr.png", "image/png", PNG, content_id="ticket-qr",
                disposition="inline")
QR_FILE = Attachment("ticket-qr.png", "image/png", PNG)
INVITE = Attachment("invite.ics", "text/calendar; method=REQUEST", ICS)
UNSUBSCRIBE = (("List-Unsubscribe",
                "<https://herald.example/u/" + "t" * 90 + ">, <mailto:u+abc@herald.example>"),
               ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
HTML = '<p>Your ticket</p><img src="cid:ticket-qr" alt="QR code">'


def ticket(**fields: Any) -> EmailMessage:
    base: dict[str, Any] = {
        "delivery_id": "d-1", "from_email": "tickets@herald.localhost", "from_name": "Herald",
        "to_email": "jane@example.com", "to_name": "Jane Smith", "subject": "Your ticket",
        "html": HTML, "text": "Your ticket is attached.", "headers": UNSUBSCRIBE,
        "attachments": (QR, QR_FILE, INVITE)}
    return EmailMessage(**{**base, **fields})


def assert_ticket_mime(message: Any) -> None:
    """The parsed message: body and HTML beside the inline QR (multipart/related), the files
    attached, the extra headers as given."""
    assert message.get_content_type() == "multipart/mixed"
    assert message["List-Unsubscribe"] == UNSUBSCRIBE[0][1]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.get_body(("html",)).get_content().replace("\r\n", "\n") == HTML
    assert message.get_body(("plain",)).get_content().startswith("Your ticket is attached.")
    related = next(p for p in message.walk() if p.get_content_type() == "multipart/related")
    [inline] = [p for p in related.iter_parts() if p.get_content_type() == "image/png"]
    assert inline["Content-ID"] == "<ticket-qr>"
    assert inline.get_content_disposition() == "inline"
    assert inline.get_content() == PNG
    files = {p.get_filename(): p for p in message.iter_attachments()}
    assert set(files) == {"ticket-qr.png", "invite.ics"}
    assert files["ticket-qr.png"].get_content() == PNG
    invite = files["invite.ics"]
    assert invite.get_content_type() == "text/calendar"
    assert invite.get_param("method") == "REQUEST"
    assert invite.get_payload(decode=True) == ICS


# --- SMTP (aiosmtpd) ----------------------------------------------------------------------


def test_smtp_sends_inline_and_attached_files_and_extra_headers(smtp: Recorder):
    result = email_provider("smtp").send(ticket())
    [message] = smtp.messages
    assert_ticket_mime(message)
    assert message["Message-ID"] == result.provider_message_id
    raw = smtp.envelopes[0].original_content
    assert raw.isascii() and max(map(len, raw.split(b"\r\n"))) <= 998


def test_smtp_session_sends_each_message_with_its_own_files(smtp: Recorder):
    other = Attachment("other.png", "image/png", b"other")
    outcomes = email_provider("smtp").send_batch([
        ticket(), ticket(to_email="joe@example.com", attachments=(other,), headers=())])
    assert all(isinstance(o, SendResult) for o in outcomes)
    first, second = smtp.messages
    assert_ticket_mime(first)
    assert [p.get_filename() for p in second.iter_attachments()] == ["other.png"]
    assert second["List-Unsubscribe"] is None


def test_smtp_extra_headers_without_files_keep_the_plain_shape(smtp: Recorder):
    email_provider("smtp").send(ticket(attachments=()))
    [message] = smtp.messages
    assert message.get_content_type() == "multipart/alternative"
    assert message["List-Unsubscribe"] == UNSUBSCRIBE[0][1]


def test_smtp_file_names_outside_ascii_and_inline_files_without_html(smtp: Recorder):
    named = Attachment("Einladung für Zoë.ics", "text/calendar; method=REQUEST", ICS)
    email_provider("smtp").send(ticket(html="", attachments=(QR, named)))
    [message] = smtp.messages
    assert message.get_content_type() == "multipart/mixed"
    names = [p.get_filename() for p in message.iter_attachments()]
    assert "Einladung für Zoë.ics" in names
    assert any(p["Content-ID"] == "<ticket-qr>" for p in message.walk())


@pytest.mark.parametrize(("headers", "attachments"), [
    ((("Subject", "twice"),), ()),  # a header the message writes itself
    ((("X-Bad", "a\r\nBcc: v@evil.example"),), ()),  # header injection
    ((("Bad Name", "x"),), ()),
    ((), (Attachment("x.png", "image/png\r\nX-Evil: 1", b"x"),)),
    ((), (Attachment("x.png", "image/png", b"x", content_id="<a>"),)),
    ((), (Attachment("", "image/png", b"x"),)),
])
def test_smtp_refuses_what_cannot_be_sent_before_connecting(smtp: Recorder, headers,
                                                            attachments):
    with pytest.raises(ProviderPermanentError):
        email_provider("smtp").send(ticket(headers=headers, attachments=attachments))
    assert smtp.messages == []


# --- SES (moto) ---------------------------------------------------------------------------


@pytest.fixture
def ses(settings, moto_url) -> str:
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"))
    client = boto3.client("sesv2", region_name=REGION, endpoint_url=moto_url)
    client.create_email_identity(EmailIdentity="herald.localhost")
    settings.HERALD_EMAIL_PROVIDER = "ses"
    settings.HERALD_SES_REGION = REGION
    settings.HERALD_SES_ENDPOINT_URL = moto_url
    settings.HERALD_SES_CONFIGURATION_SET = ""
    settings.HERALD_PROVIDER_TIMEOUT_SECONDS = 5
    return moto_url


def moto_sent() -> list[Any]:
    return ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages


def test_ses_sends_a_message_with_files_as_raw_mime(ses):
    result = email_provider("ses").send(ticket())
    [sent] = moto_sent()
    assert sent.id == result.provider_message_id
    message = message_from_string(sent.raw_data, policy=policy.default)
    assert_ticket_mime(message)
    # moto adds the To header's address to the Destination given: one recipient all the same
    assert set(sent.destinations) == {"Jane Smith <jane@example.com>"}


def test_ses_sends_extra_headers_as_raw_and_plain_mail_as_simple(ses):
    provider = email_provider("ses")
    provider.send(ticket(attachments=()))
    provider.send(ticket(attachments=(), headers=()))
    raw, simple = moto_sent()
    assert message_from_string(raw.raw_data, policy=policy.default)[
        "List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert not hasattr(simple, "raw_data") and simple.subject == "Your ticket"


def test_ses_refuses_a_raw_message_over_its_40_mb_before_calling(ses, settings):
    settings.HERALD_MAX_ATTACHMENT_BYTES = 64 * 2**20
    big = Attachment("big.bin", "application/octet-stream", bytes(31 * 2**20))
    with pytest.raises(AttachmentsTooLarge, match=r"over the 40\.0 MB SES accepts"):
        email_provider("ses").send(ticket(attachments=(big,)))
    assert moto_sent() == []


# --- SendGrid (the fake) ----------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeSendGrid]:
    with FakeSendGrid() as server:
        yield server


def sendgrid(fake: FakeSendGrid) -> SendGridProvider:
    client = SendGridAPIClient(api_key=fake.api_key, host=fake.url)
    client.client.timeout = 5
    return SendGridProvider(client)


def test_sendgrid_sends_files_with_content_ids_and_headers_per_recipient(fake):
    sendgrid(fake).send(ticket())
    [request] = fake.messages
    body = request.body
    assert body["personalizations"][0]["headers"] == dict(UNSUBSCRIBE)
    files = {(a["filename"], a["disposition"]): a for a in body["attachments"]}
    inline = files[("ticket-qr.png", "inline")]
    assert inline["content_id"] == "ticket-qr" and inline["type"] == "image/png"
    assert base64.b64decode(inline["content"]) == PNG
    assert base64.b64decode(files[("ticket-qr.png", "attachment")]["content"]) == PNG
    invite = files[("invite.ics", "attachment")]
    assert invite["type"] == "text/calendar; method=REQUEST"
    assert base64.b64decode(invite["content"]) == ICS


def test_sendgrid_batches_plain_mail_with_headers_and_sends_files_alone(fake):
    plain = [ticket(to_email=f"guest{n}@example.com", attachments=(),
                    headers=(("List-Unsubscribe", f"<https://herald.example/u/{n}>"),))
             for n in range(3)]
    with_files = [ticket(to_email=f"ticket{n}@example.com") for n in range(2)]
    outcomes = sendgrid(fake).send_batch([plain[0], with_files[0], *plain[1:], with_files[1]])
    assert all(isinstance(o, SendResult) for o in outcomes)
    batched = [m.body for m in fake.messages if "attachments" not in m.body]
    alone = [m.body for m in fake.messages if "attachments" in m.body]
    assert len(batched) == 1 and len(alone) == 2
    assert [p["headers"]["List-Unsubscribe"] for p in batched[0]["personalizations"]] == [
        f"<https://herald.example/u/{n}>" for n in range(3)]
    assert sorted(b["personalizations"][0]["to"][0]["email"] for b in alone) == [
        "ticket0@example.com", "ticket1@example.com"]


def test_sendgrid_refuses_a_request_over_its_30_mb_before_calling(fake, settings):
    settings.HERALD_MAX_ATTACHMENT_BYTES = 64 * 2**20
    big = Attachment("big.bin", "application/octet-stream", bytes(23 * 2**20))
    [outcome] = sendgrid(fake).send_batch([ticket(attachments=(big,))])
    assert isinstance(outcome, AttachmentsTooLarge)
    assert "over the 30.0 MB SendGrid accepts" in str(outcome)
    assert fake.messages == []


# --- Herald's own limit, every provider -------------------------------------------------------


def test_every_provider_refuses_attachments_over_herald_limit_before_sending(
        settings, smtp: Recorder, fake):
    settings.HERALD_MAX_ATTACHMENT_BYTES = 1000
    message = ticket()
    size = 2 * len(PNG) + len(ICS)
    providers = [email_provider("smtp"), sendgrid(fake), OutboxProvider(), SandboxProvider()]
    for provider in providers:
        with pytest.raises(AttachmentsTooLarge) as refused:
            provider.send(message)
        assert str(refused.value) == (
            f"The attachments (ticket-qr.png, ticket-qr.png, invite.ics) take {size:,} bytes, "
            f"over the 1,000 bytes allowed (HERALD_MAX_ATTACHMENT_BYTES).")
    [smtp_outcome] = email_provider("smtp").send_batch([message])
    assert isinstance(smtp_outcome, AttachmentsTooLarge)
    assert smtp.messages == [] and fake.messages == []


def test_sendgrid_fake_refuses_what_sendgrid_refuses(fake):
    """The fake holds the adapter to SendGrid's rules on attachments and headers."""
    provider = sendgrid(fake)
    for bad in (Attachment("x.ics", 'text/calendar; method=REQUEST; charset="utf-8"', ICS),):
        with pytest.raises(ProviderPermanentError):
            provider.send(ticket(attachments=(bad,)))
    with pytest.raises(ProviderPermanentError):
        provider.send(ticket(headers=(("Subject", "no"),)))
    assert fake.messages == []


# --- any file name and content round-trip ------------------------------------------------------

_NAME = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1,
                max_size=60).filter(lambda name: name.strip() == name)


@hypothesis_settings(max_examples=150, deadline=None)
@given(name=_NAME, content=st.binary(max_size=300), inline=st.booleans())
def test_any_file_name_and_content_parse_back_as_sent(name, content, inline):
    attachment = Attachment(name, "application/octet-stream", content,
                            content_id="f1" if inline else "",
                            disposition="inline" if inline else "attachment")
    data = build_message(ticket(attachments=(attachment,), headers=())).data
    assert data.isascii() and max(map(len, data.split(b"\r\n"))) <= 998
    message = message_from_bytes(data, policy=policy.default)
    [part] = [p for p in message.walk() if p.get_content_type() == "application/octet-stream"]
    assert part.get_filename() == name
    assert part.get_payload(decode=True) == content
    assert part.get_content_disposition() == ("inline" if inline else "attachment")
