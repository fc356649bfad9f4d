"""A real aiosmtpd server for the SMTP tests: the ``smtp`` fixture (made available to every
test module by conftest) records what it receives and can refuse commands."""

import socket
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage as MimeMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from comms.providers.base import EmailMessage


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Recorder:
    """aiosmtpd handler: keeps what it receives; can refuse the next RCPT or DATA commands."""

    def __init__(self) -> None:
        self.messages: list[MimeMessage] = []
        self.envelopes: list[Any] = []
        self.refusals: list[tuple[str, str]] = []  # (command, reply)
        self.peers: list[Any] = []  # the client address of each accepted message's session

    def refuse(self, command: str, reply: str, times: int = 1) -> None:
        self.refusals += [(command, reply)] * times

    def _refusal(self, command: str) -> str | None:
        if self.refusals and self.refusals[0][0] == command:
            return self.refusals.pop(0)[1]
        return None

    async def handle_RCPT(self, server, session, envelope, address, options):
        refusal = self._refusal("RCPT")
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        refusal = self._refusal("DATA")
        if refusal:
            return refusal
        self.envelopes.append(envelope)
        self.peers.append(session.peer)
        self.messages.append(message_from_bytes(envelope.original_content,
                                                policy=policy.default))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp(settings) -> Iterator[Recorder]:
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.HERALD_EMAIL_PROVIDER = "smtp"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    yield recorder
    controller.stop()


def message(**fields: str) -> EmailMessage:
    base = {"delivery_id": "d-1", "from_email": "tickets@herald.localhost", "from_name": "",
            "to_email": "jane@example.com", "to_name": "", "subject": "Hi", "html": "",
            "text": "Hello"}
    return EmailMessage(**{**base, **fields})
