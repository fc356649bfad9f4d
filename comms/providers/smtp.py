"""SMTP: Django's SMTP backend holds the session (a batch shares one); the message bytes are
built by ``comms.providers.mime`` and handed to smtplib's ``sendmail`` directly, since the
``email`` package's MIME generation cost more CPU than the rest of the send.

Herald generates the Message-ID itself and returns it as the provider message id: SMTP
servers answer without an id of their own.

What a tenant sees of a failure is ``vendor_reason``'s, as for every provider: the reply
code and its enhanced status code (``SMTP 550 5.1.1``), or the kind of network error
(``SMTP ECONNREFUSED``). The relay's reply text (host names, internal addresses, policy
tokens) and exceptions' messages go to the server log at DEBUG only.
"""

import re
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.backends.smtp import EmailBackend

from comms.providers import mime
from comms.providers.base import (
    Adapter,
    EmailMessage,
    ProviderConfigurationError,
    ProviderPermanentError,
    ProviderTransientError,
    SendResult,
)
from comms.providers.vendor_http import timed_out, vendor_reason

BACKEND = "django.core.mail.backends.smtp.EmailBackend"
DELIVERY_HEADER = mime.DELIVERY_HEADER
# RFC 3463 enhanced status code at the start of a reply's text: class.subject.detail.
_ENHANCED_RE = re.compile(r"\s*([245]\.\d{1,3}\.\d{1,3})(?![\d.])")


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    username: str = ""
    password: str = ""
    use_tls: bool = False
    use_ssl: bool = False
    timeout: float = 15.0


class SmtpProvider(Adapter):
    """SMTP replies are not HTTP answers (a 5xx is a permanent refusal there): ``_classify``
    reads them; a server that cannot be reached, or does not answer in time, goes through
    the base's ``network_error``."""

    name = "smtp"
    vendor = "SMTP"
    unreachable_text = "SMTP server unreachable: {reason}"

    def __init__(self, config: Callable[[], SmtpConfig]) -> None:
        self._config = config

    def send(self, message: EmailMessage) -> SendResult:
        config = self._config()
        if config.use_tls and config.use_ssl:
            raise ProviderConfigurationError("EMAIL_USE_TLS and EMAIL_USE_SSL exclude each other.")
        self.attachments_check(message)
        outgoing = build_message(message)
        try:
            with _connection(config) as connection:
                _deliver(connection, outgoing)
        except (smtplib.SMTPException, OSError) as exc:
            raise self._error(exc, config) from exc
        return SendResult(provider_message_id=outgoing.message_id)

    def _error(self, exc: Exception, config: SmtpConfig) -> Exception:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return _tls_refused(exc)
        # smtplib reports a reply that never came as a disconnection: a timeout all the same.
        if isinstance(exc, smtplib.SMTPException) and not timed_out(exc):
            return _classify(exc)
        return self.network_error(exc, timeout=config.timeout)  # refused, reset, DNS, timeout

    def send_batch(self, messages: list[EmailMessage]) -> list[SendResult | Exception]:
        """``send_each``'s outcomes as a list."""
        with closing(self.send_each(messages)) as outcomes:
            return list(outcomes)

    def send_each(self, messages: list[EmailMessage]) -> Iterator[SendResult | Exception]:
        """Messages over one SMTP session (a new connection per message costs more than the
        message): each its own MAIL/RCPT/DATA, and its outcome given as soon as the server
        answered it (the pipeline records them in groups: ``comms.pipeline._one_by_one``).
        A session the server drops is opened again once; a second loss fails the rest as
        transient. The session is closed when the generator is (``contextlib.closing``)."""
        config = self._config()
        if config.use_tls and config.use_ssl:
            error = ProviderConfigurationError(
                "EMAIL_USE_TLS and EMAIL_USE_SSL exclude each other.")
            yield from [error] * len(messages)
            return
        session = _Session(config, self)
        try:
            for message in messages:
                yield session.send(message)
        finally:
            session.deadline.close()
            _close(session.connection)


class _Deadline:
    """A wall-clock limit on one message's conversation. smtplib's timeout is per read, so a
    server dripping its replies a byte at a time could hold a message for ever while the
    batch's accepted messages wait unrecorded (``comms.pipeline`` records SMTP's outcomes in
    groups) and their claims run out, when the sweeper would let another worker send them
    again. One watcher thread per session shuts the socket down once a message has taken
    ``message_seconds()``; the message fails as a timeout (retried later), the group before it
    is recorded."""

    def __init__(self) -> None:
        self.until: float | None = None
        self.sock: socket.socket | None = None
        self.fired = False
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    def arm(self, sock: socket.socket | None, seconds: float) -> None:
        self.sock, self.fired = sock, False
        self.until = time.monotonic() + seconds
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="smtp-deadline",
                                            daemon=True)
            self._thread.start()

    def disarm(self) -> None:
        self.until = None

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    def _watch(self) -> None:
        while not self._closed:
            until = self.until
            left = 1.0 if until is None else until - time.monotonic()
            if left > 0:
                self._wake.wait(min(left, 1.0))
                continue
            sock, self.until = self.sock, None
            if sock is not None:
                self.fired = True
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def message_seconds() -> float:
    """How long one message's conversation may take: 40 % of the sending lease (120 s by
    default). A send starts at most half the lease after the claim (``comms.pipeline``'s
    hand-back), so what it and the group before it accepted is recorded inside the lease."""
    return settings.HERALD_SENDING_LEASE_SECONDS * 0.4


class _Session:
    """One SMTP session across a batch: reopened once if the server drops it."""

    def __init__(self, config: SmtpConfig, adapter: SmtpProvider) -> None:
        self.config = config
        self.adapter = adapter
        self.connection: EmailBackend | None = None
        self.reopened = False
        self.deadline = _Deadline()

    def send(self, message: EmailMessage) -> SendResult | Exception:
        try:
            self.adapter.attachments_check(message)
            outgoing = build_message(message)
        except Exception as exc:  # this message only: the rest of the batch goes
            return exc if isinstance(exc, ProviderPermanentError) else ProviderPermanentError(
                f"SMTP message not built: {exc}")
        while True:
            try:
                if self.connection is None:
                    self.connection = _opened(self.config)
                self._deliver(outgoing)
                return SendResult(provider_message_id=outgoing.message_id)
            except _Cut:
                self._drop()  # not reopened for this message: it goes again later
                return self.adapter.network_error(
                    TimeoutError(f"one message took over {message_seconds():.0f} s"),
                    timeout=message_seconds())
            except smtplib.SMTPServerDisconnected as exc:
                self._drop()
                if self.reopened:
                    return self.adapter._error(exc, self.config)
                self.reopened = True
            except smtplib.SMTPException as exc:
                if isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code in (
                        421, 554) and not isinstance(exc, smtplib.SMTPRecipientsRefused):
                    self._drop()  # the server is closing the session
                return self.adapter._error(exc, self.config)
            except OSError as exc:
                if not isinstance(exc, ssl.SSLCertVerificationError):
                    self._drop()
                return self.adapter._error(exc, self.config)

    def _deliver(self, outgoing: "Outgoing") -> None:
        """``_deliver`` within the message's deadline (``_Deadline``)."""
        assert self.connection is not None
        self.deadline.arm(getattr(self.connection.connection, "sock", None), message_seconds())
        try:
            _deliver(self.connection, outgoing)
        except (smtplib.SMTPException, OSError):
            if self.deadline.fired:
                raise _Cut from None
            raise
        finally:
            self.deadline.disarm()

    def _drop(self) -> None:
        _close(self.connection)
        self.connection = None


class _Cut(Exception):
    """The message's deadline shut its session down."""


def _opened(config: SmtpConfig) -> EmailBackend:
    """A session, or the error that opening it raised (STARTTLS, login, refused): never a
    half-open backend the next message would use (it would have no SMTP object)."""
    backend = _connection(config)
    try:
        backend.open()
    except BaseException:
        _close(backend)
        raise
    return backend


def _close(connection) -> None:
    if connection is not None:
        try:
            connection.close()
        except (smtplib.SMTPException, OSError):
            pass


Outgoing = mime.Outgoing


def build_message(message: EmailMessage) -> Outgoing:
    """``mime.outgoing``: a value that cannot be sent (a line break in a header, a bad
    address) is a permanent error of this one message, before any SMTP command."""
    try:
        return mime.outgoing(message)
    except (mime.MimeError, UnicodeError) as exc:  # UnicodeError: lone surrogates
        raise ProviderPermanentError(f"SMTP message refused before sending: {exc}"[:500]) from exc


def _deliver(connection: EmailBackend, outgoing: Outgoing) -> None:
    """One MAIL/RCPT/DATA on the backend's open session (what its send_messages does, minus
    the MIME generation), with smtplib's errors for the same replies as its ``sendmail``, so
    a session is classified, dropped or reopened alike. Where the server offers PIPELINING
    (RFC 2920) the three commands go in one write: two round trips a message, not four.
    The addresses are ``mime.addr_spec``'s already: put in angle brackets as they are
    (smtplib's ``quoteaddr`` parses each again, ~10 % of a message's CPU)."""
    smtp = connection.connection
    smtp.ehlo_or_helo_if_needed()
    _envelope(smtp, outgoing)
    body = re.sub(rb"(?m)^\.", b"..", outgoing.data)  # dot-stuffed, as smtplib's ``data``
    smtp.send(body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n")
    code, reply = smtp.getreply()
    if code != 250:
        _refused(smtp, code)
        raise smtplib.SMTPDataError(code, reply)


def _envelope(smtp: smtplib.SMTP, outgoing: Outgoing) -> None:
    """MAIL, RCPT and DATA up to the server's 354: in one write where it offers PIPELINING
    (every reply read in order), else each after the previous one's reply. A refusal resets
    the transaction (a 421 closes the session) and raises ``sendmail``'s error."""
    size = f" size={len(outgoing.data)}" if smtp.has_extn("size") else ""
    steps = (
        (f"mail FROM:<{outgoing.sender}>{size}\r\n", (250,),
         lambda code, reply: smtplib.SMTPSenderRefused(code, reply, outgoing.sender)),
        (f"rcpt TO:<{outgoing.recipient}>\r\n", (250, 251),
         lambda code, reply: smtplib.SMTPRecipientsRefused({outgoing.recipient: (code, reply)})),
        ("data\r\n", (354,), smtplib.SMTPDataError),
    )
    pipelined = smtp.has_extn("pipelining")
    if pipelined:
        smtp.send("".join(command for command, _, _ in steps))
    refusal: Exception | None = None
    for command, accepted, error in steps:
        if not pipelined:
            if refusal is not None:
                break
            smtp.send(command)
        code, reply = smtp.getreply()
        if code == 421 or (code not in accepted and refusal is None):
            refusal = refusal or error(code, reply)
            if code == 421:
                break
        elif code == 354 and refusal is not None:  # DATA taken after a refusal: end it empty
            smtp.send(b".\r\n")
            smtp.getreply()
    if refusal is not None:
        _refused(smtp, code)
        raise refusal


def _refused(smtp: smtplib.SMTP, code: int) -> None:
    """After a refusal, as ``sendmail``: a 421 (the server is closing) closes the session,
    anything else resets the transaction for the next message."""
    if code == 421:
        smtp.close()
    else:
        smtp._rset()


def _connection(config: SmtpConfig) -> EmailBackend:
    return get_connection(
        BACKEND, fail_silently=False, host=config.host, port=config.port,
        username=config.username, password=config.password, use_tls=config.use_tls,
        use_ssl=config.use_ssl, timeout=config.timeout,
    )


def _classify(exc: smtplib.SMTPException) -> Exception:
    if isinstance(exc, smtplib.SMTPAuthenticationError | smtplib.SMTPNotSupportedError):
        return ProviderConfigurationError(f"SMTP login or TLS refused: {_reason(exc)}")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        # One recipient per message: the lowest code decides (5xx before 4xx).
        code, reply = min(exc.recipients.values(), key=lambda answer: answer[0],
                          default=(0, b""))
        return _by_code(code, f"SMTP recipient refused: {_reply_reason(code, reply)}")
    if isinstance(exc, smtplib.SMTPResponseException):
        return _by_code(exc.smtp_code, _reason(exc))
    return ProviderTransientError(_reason(exc))  # disconnected mid-session and the like


def _reason(exc: Exception) -> str:
    """What a tenant sees of an smtplib error: the reply's codes, else the error's kind."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return _reply_reason(exc.smtp_code, exc.smtp_error)
    return vendor_reason("SMTP", None, type(exc).__name__, body=str(exc))


def _reply_reason(code: int, reply: bytes | str) -> str:
    """``SMTP <code> <enhanced code>``; the reply's text only to the server log."""
    text = _text(reply)
    enhanced = _ENHANCED_RE.match(text)
    return vendor_reason("SMTP", code, enhanced.group(1) if enhanced else "", body=text)


def _tls_refused(exc: ssl.SSLCertVerificationError) -> ProviderConfigurationError:
    label = getattr(exc, "reason", None) or type(exc).__name__  # CERTIFICATE_VERIFY_FAILED
    return ProviderConfigurationError(
        f"SMTP TLS certificate refused: {vendor_reason('SMTP', None, label, body=str(exc))}")


def _by_code(code: int, text: str) -> Exception:
    """RFC 5321: 5xx is a permanent refusal, 4xx (and anything odd) worth another try."""
    if 500 <= code < 600:
        return ProviderPermanentError(text[:500])
    return ProviderTransientError(text[:500])


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def from_settings() -> SmtpProvider:
    """The platform's SMTP adapter (``HERALD_EMAIL_PROVIDER=smtp``); settings read per send."""
    from django.conf import settings

    return SmtpProvider(lambda: SmtpConfig(
        host=settings.EMAIL_HOST, port=settings.EMAIL_PORT,
        username=settings.EMAIL_HOST_USER, password=settings.EMAIL_HOST_PASSWORD,
        use_tls=settings.EMAIL_USE_TLS, use_ssl=settings.EMAIL_USE_SSL,
        timeout=settings.EMAIL_TIMEOUT,
    ))
