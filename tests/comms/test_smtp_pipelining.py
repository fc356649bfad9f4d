"""SMTP PIPELINING (RFC 2920): where the server offers it, MAIL, RCPT and DATA go in one write
and the message in a second (two round trips instead of smtplib's four), with the same
outcomes as ``sendmail``'s for the same replies. Against a real aiosmtpd server that
advertises PIPELINING and records the writes it received."""

from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer

from comms.providers import email_provider
from comms.providers.base import ProviderPermanentError, ProviderTransientError, SendResult
from tests.fakes.smtp_server import Recorder, free_port
from tests.fakes.smtp_server import message as _message


class Pipelining(Recorder):
    """The recorder, offering PIPELINING, counting the commands that arrived already
    buffered behind another (sent in the same write)."""

    def __init__(self) -> None:
        super().__init__()
        self.commands_buffered: list[str] = []

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return [responses[0], "250-PIPELINING", *responses[1:]]


class _Server(SMTPServer):
    """aiosmtpd's server, noting each command that arrived with more of the write behind it."""

    async def smtp_MAIL(self, arg):
        self._note("MAIL")
        return await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg):
        self._note("RCPT")
        return await super().smtp_RCPT(arg)

    async def smtp_DATA(self, arg):
        self._note("DATA")
        return await super().smtp_DATA(arg)

    def _note(self, command: str) -> None:
        if len(self._reader._buffer):  # more of the client's write is already here
            self.event_handler.commands_buffered.append(command)


class _Controller(Controller):
    def factory(self):
        return _Server(self.handler, **self.SMTP_kwargs)


@pytest.fixture
def pipelining(settings) -> Iterator[Pipelining]:
    recorder = Pipelining()
    controller = _Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.HERALD_EMAIL_PROVIDER = "smtp"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    yield recorder
    controller.stop()


def test_envelope_and_data_command_go_in_one_write(pipelining):
    messages = [_message(delivery_id=f"d-{i}", to_email=f"g{i}@example.com") for i in range(3)]
    outcomes = email_provider("smtp").send_batch(messages)
    assert all(isinstance(o, SendResult) for o in outcomes)
    assert [e.rcpt_tos for e in pipelining.envelopes] == [
        ["g0@example.com"], ["g1@example.com"], ["g2@example.com"]]
    # MAIL and RCPT each had the rest of the write behind them; DATA was its last command.
    assert pipelining.commands_buffered == ["MAIL", "RCPT"] * 3


def test_lines_starting_with_a_dot_arrive_intact(pipelining):
    text = ".hidden\r\n..two\r\nend\r\n."
    email_provider("smtp").send(_message(text=text))
    [received] = pipelining.messages
    assert received.get_content().replace("\r\n", "\n").rstrip("\n") == text.replace(
        "\r\n", "\n")


@pytest.mark.parametrize(("command", "reply", "error"), [
    ("RCPT", "550 5.1.1 No such user here", ProviderPermanentError),
    ("RCPT", "452 4.2.2 Mailbox full", ProviderTransientError),
    ("DATA", "554 5.7.1 Message rejected as spam", ProviderPermanentError),
    ("DATA", "451 4.3.0 Try again later", ProviderTransientError),
])
def test_a_refusal_fails_its_message_and_the_session_goes_on(pipelining, command, reply,
                                                              error):
    """A refused message gets sendmail's outcome; the transaction is reset and the next
    message goes over the same session."""
    pipelining.refuse(command, reply)
    first, second = email_provider("smtp").send_batch(
        [_message(delivery_id="d-1", to_email="a@example.com"),
         _message(delivery_id="d-2", to_email="b@example.com")])
    assert isinstance(first, error)
    assert reply.split()[0] in str(first)
    assert isinstance(second, SendResult)
    assert [e.rcpt_tos for e in pipelining.envelopes] == [["b@example.com"]]


def test_a_server_closing_the_session_with_421_fails_the_message_as_transient(pipelining):
    """421 to MAIL: the server is closing; the next message opens a new session."""
    calls = {"mail": 0}

    async def handle_MAIL(server, session, envelope, address, options):
        calls["mail"] += 1
        if calls["mail"] == 1:
            return "421 4.3.2 Closing, try later"
        envelope.mail_from = address
        return "250 OK"

    pipelining.handle_MAIL = handle_MAIL
    first, second = email_provider("smtp").send_batch(
        [_message(delivery_id="d-1"), _message(delivery_id="d-2", to_email="b@example.com")])
    assert isinstance(first, ProviderTransientError) and "421" in str(first)
    assert isinstance(second, SendResult)
    assert [e.rcpt_tos for e in pipelining.envelopes] == [["b@example.com"]]


def test_a_server_without_pipelining_gets_one_command_at_a_time(smtp):
    """aiosmtpd's default does not offer it: smtplib's sendmail, unchanged."""
    outcomes = email_provider("smtp").send_batch([_message(), _message(to_email="b@example.com")])
    assert all(isinstance(o, SendResult) for o in outcomes)
    assert len(smtp.messages) == 2
