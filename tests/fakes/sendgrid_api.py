"""A dependency-free fake of the SendGrid v3 mail API for tests and benchmarks.

Drive it with the real client::

    with FakeSendGrid() as fake:
        client = SendGridAPIClient(fake.api_key, host=fake.url)
        client.send(mail)
        assert fake.messages[0].body["subject"] == "Hi"

``POST /v3/mail/send`` validates requests the way SendGrid does (auth, content
type, JSON shape) and answers 202 with an ``X-Message-Id`` header. It refuses, with
SendGrid's 400 error document, what batching can run into: more than 1,000
personalizations or recipients, an address repeated within a personalization or across
the personalizations of one request, substitutions over 10,000 bytes in a personalization,
and custom_args over 10,000 bytes (request or personalization).

Domain authentication (``/v3/whitelabel/domains``): create (201, records
``dns.mail_cname``/``dkim1``/``dkim2`` each ``{valid, type, host, data}``), list,
get, ``POST …/{id}/validate`` and delete (204). Records become valid on the next
validation after :meth:`FakeSendGrid.set_domain_valid`; faults for these endpoints
are queued with :meth:`FakeSendGrid.fail_next_domain`. Any other path answers 404.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from tests.fakes.http_host import FakeHost, TrackedHandler

__all__ = ["FakeSendGrid", "Recipient", "SentMessage"]

MAIL_SEND_PATH = "/v3/mail/send"
DOMAINS_PATH = "/v3/whitelabel/domains"
_DOMAIN_PATH_RE = re.compile(r"^/v3/whitelabel/domains(?:/(\d+))?(/validate)?$")
_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")
RECORD_NAMES = ("mail_cname", "dkim1", "dkim2")
MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
# Mail Send reference: "The total collective size of your substitutions may not exceed 10,000
# bytes per personalization object"; custom_args (request or personalization) "may not exceed
# 10,000 bytes". Sizes count the UTF-8 bytes of every key and value.
MAX_SUBSTITUTIONS_BYTES = 10_000
MAX_CUSTOM_ARGS_BYTES = 10_000
MAX_BODY_BYTES = 30 * 1024 * 1024
_HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message."
_EMAIL_RE = re.compile(r"^[^@\s<>(),;:\"\[\]]+@[^@\s<>(),;:\"\[\]]+\.[^@\s<>(),;:\"\[\]]+$")
_TYPE_NAMES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}
_DEFAULT_MESSAGES = {
    400: "Bad Request",
    401: "authorization required",
    403: "access forbidden",
    404: "resource not found",
    413: "payload too large",
    429: "too many requests",
    500: "internal server error",
    502: "bad gateway",
    503: "service unavailable",
    504: "gateway timeout",
}


@dataclass(frozen=True)
class SentMessage:
    """One accepted ``mail/send`` request."""

    body: dict[str, Any]
    message_id: str
    headers: dict[str, str]
    received_at: float = field(default_factory=time.time)


class Recipient(NamedTuple):
    """A ``to`` address of an accepted personalization."""

    email: str
    custom_args: dict[str, str]
    message_id: str


@dataclass(frozen=True)
class _Fault:
    status: int
    headers: Mapping[str, str] | None
    body: bytes | str | Mapping[str, Any] | list[Any] | None


class _Invalid(Exception):
    """A validation failure, rendered as one SendGrid error object."""

    def __init__(self, message: str, field_name: str | None, anchor: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field_name = field_name
        self.help = _HELP + anchor if anchor else None


def _error_body(message: str, field_name: str | None = None, help_url: str | None = None) -> bytes:
    """Encode a SendGrid-style error document."""
    errors = [{"message": message, "field": field_name, "help": help_url}]
    return json.dumps({"errors": errors}).encode()


def _new_message_id() -> str:
    """Return a random 22-character url-safe id, like SendGrid's."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")


def _type_name(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _check_string_map(value: object, where: str) -> None:
    """Require a JSON object whose values are all strings (custom_args, substitutions)."""
    if not isinstance(value, dict):
        raise _Invalid(f"Invalid type. Expected: object, given: {_type_name(value)}.", where)
    for key, item in value.items():
        if not isinstance(item, str):
            raise _Invalid(
                f"Invalid type. Expected: string, given: {_type_name(item)}.",
                f"{where}.{key}",
                where.rsplit(".", 1)[-1],
            )


def _check_size(value: dict[str, str], where: str, limit: int) -> None:
    """Refuse a string map (``…custom_args``, ``…substitutions``) whose keys and values
    together exceed ``limit`` UTF-8 bytes."""
    size = sum(len(k.encode()) + len(v.encode()) for k, v in value.items())
    if size > limit:
        *parent, what = where.split(".")
        scope = "per personalization object" if parent else "per request"
        anchor = f"personalizations.{what}" if parent else what
        raise _Invalid(f"The total collective size of your {what} may not exceed {limit:,} "
                       f"bytes {scope}. You have provided {size:,} bytes.", where, anchor)


def _check_address(value: object, where: str) -> str:
    """Require ``{"email": <plausible address>, "name"?: str}``; return the email."""
    if not isinstance(value, dict) or "email" not in value:
        raise _Invalid("The email parameter is required.", f"{where}.email", "recipient-email")
    email = value["email"]
    if not isinstance(email, str) or not _EMAIL_RE.match(email):
        raise _Invalid("Does not contain a valid address.", f"{where}.email", "recipient-email")
    name = value.get("name")
    if name is not None and not isinstance(name, str):
        raise _Invalid(
            f"Invalid type. Expected: string, given: {_type_name(name)}.", f"{where}.name"
        )
    return email


# Mail Send: "You may not overwrite the following reserved headers".
RESERVED_HEADERS = frozenset({"x-sg-id", "x-sg-eid", "received", "dkim-signature",
                              "content-type", "content-transfer-encoding", "to", "from",
                              "subject", "reply-to", "cc", "bcc"})


def _check_headers(headers: object, where: str) -> None:
    """A string map of header names to one-line values, none of them reserved."""
    _check_string_map(headers, where)
    assert isinstance(headers, dict)
    for name, value in headers.items():
        if name.lower() in RESERVED_HEADERS:
            raise _Invalid(f"The header {name} is reserved and cannot be set.", f"{where}.{name}",
                           "headers")
        if "\r" in value or "\n" in value:
            raise _Invalid("Header values cannot contain CRLF characters.", f"{where}.{name}",
                           "headers")


def _check_attachments(attachments: object) -> None:
    """Each attachment: base64 ``content`` and a ``filename``; a ``type`` without CRLF or a
    second parameter (SendGrid answers "The attachment type cannot contain ';', or CRLF
    characters" for ``text/calendar;method=REQUEST;charset="utf-8"``, sendgrid-nodejs#1313,
    while one ``method`` parameter goes through); an inline one needs its ``content_id``."""
    if not isinstance(attachments, list) or not attachments:
        raise _Invalid("The attachments field must be a non-empty array.", "attachments",
                       "attachments")
    for i, item in enumerate(attachments):
        where = f"attachments.{i}"
        if not isinstance(item, dict):
            raise _Invalid(f"Invalid type. Expected: object, given: {_type_name(item)}.", where,
                           "attachments")
        content = item.get("content")
        try:
            base64.b64decode(content if isinstance(content, str) else "", validate=True)
        except ValueError:
            content = None
        if not isinstance(content, str) or not content:
            raise _Invalid("The attachment content must be base64 encoded.",
                           f"{where}.content", "attachments.content")
        if not isinstance(item.get("filename"), str) or not item["filename"]:
            raise _Invalid("The attachment filename parameter is required.",
                           f"{where}.filename", "attachments.filename")
        kind = item.get("type", "application/octet-stream")
        if (not isinstance(kind, str) or not kind or kind.count(";") > 1
                or any(c in kind for c in '\r\n"')):
            raise _Invalid("The attachment type cannot contain ';', or CRLF characters.",
                           f"{where}.type", "attachments.type")
        disposition = item.get("disposition", "attachment")
        if disposition not in ("inline", "attachment"):
            raise _Invalid("The disposition must be inline or attachment.",
                           f"{where}.disposition", "attachments.disposition")
        if disposition == "inline" and not item.get("content_id"):
            raise _Invalid("The content_id parameter is required if disposition is set to "
                           "inline.", f"{where}.content_id", "attachments.content_id")


def _validate_mail(body: object) -> None:
    """Raise ``_Invalid`` for the first problem SendGrid would reject."""
    if not isinstance(body, dict):
        raise _Invalid(f"Invalid type. Expected: object, given: {_type_name(body)}.", None)

    has_template = isinstance(body.get("template_id"), str) and bool(body["template_id"])

    sender = body.get("from")
    if not isinstance(sender, dict) or not sender.get("email"):
        raise _Invalid(
            "The from object must be provided for every email send. It is an object that "
            "requires the email parameter, but may also contain a name parameter.  e.g. "
            '{"email" : "example@example.com"}',
            "from.email",
            "from",
        )
    _check_address(sender, "from")
    if "reply_to" in body:
        _check_address(body["reply_to"], "reply_to")

    if "custom_args" in body:
        _check_string_map(body["custom_args"], "custom_args")
        _check_size(body["custom_args"], "custom_args", MAX_CUSTOM_ARGS_BYTES)

    subject = body.get("subject")
    if subject is not None and not isinstance(subject, str):
        raise _Invalid(
            f"Invalid type. Expected: string, given: {_type_name(subject)}.", "subject", "subject"
        )

    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        raise _Invalid(
            "The personalizations field is required and must have at least one personalization.",
            "personalizations",
            "personalizations",
        )
    if len(personalizations) > MAX_PERSONALIZATIONS:
        raise _Invalid(
            f"The personalization block is limited to {MAX_PERSONALIZATIONS} personalizations "
            f"per API request. You have provided {len(personalizations)} personalizations. "
            "Please consider splitting this into multiple requests and resending your request.",
            "personalizations",
            "personalizations",
        )

    total_recipients = 0
    everywhere: set[str] = set()  # every address of every personalization, lowercased
    subject_everywhere = True
    for i, pers in enumerate(personalizations):
        where = f"personalizations.{i}"
        if not isinstance(pers, dict):
            raise _Invalid(
                f"Invalid type. Expected: object, given: {_type_name(pers)}.",
                where,
                "personalizations",
            )
        to = pers.get("to")
        if not isinstance(to, list) or not to:
            raise _Invalid(
                "The to array is required for all personalization objects, and must have at "
                "least one email object with a valid email address.",
                f"{where}.to",
                "personalizations.to",
            )
        seen: set[str] = set()
        for kind in ("to", "cc", "bcc"):
            if kind not in pers:
                continue
            addresses = pers[kind]
            if not isinstance(addresses, list):
                raise _Invalid(
                    f"Invalid type. Expected: array, given: {_type_name(addresses)}.",
                    f"{where}.{kind}",
                    f"personalizations.{kind}",
                )
            for j, address in enumerate(addresses):
                email = _check_address(address, f"{where}.{kind}.{j}").lower()
                if email in seen:
                    raise _Invalid(
                        "Each email address in the personalization block should be unique "
                        "between to, cc, and bcc. We found the first duplicate instance of "
                        f"[{address['email']}] in the {where}.{kind} field.",
                        f"{where}.{kind}",
                        f"personalizations.{kind}",
                    )
                seen.add(email)
                if email in everywhere:
                    raise _Invalid(
                        "Each unique email address in the personalizations array should only "
                        f"be included once. You have included [{address['email']}] more than "
                        "once.",
                        "personalizations",
                        "personalizations",
                    )
                everywhere.add(email)
            total_recipients += len(addresses)
        pers_subject = pers.get("subject")
        if pers_subject is not None and not isinstance(pers_subject, str):
            raise _Invalid(
                f"Invalid type. Expected: string, given: {_type_name(pers_subject)}.",
                f"{where}.subject",
                "personalizations.subject",
            )
        if not pers_subject:
            subject_everywhere = False
        for key, limit in (("custom_args", MAX_CUSTOM_ARGS_BYTES),
                           ("substitutions", MAX_SUBSTITUTIONS_BYTES)):
            if key in pers:
                _check_string_map(pers[key], f"{where}.{key}")
                _check_size(pers[key], f"{where}.{key}", limit)
        if "headers" in pers:
            _check_headers(pers["headers"], f"{where}.headers")
    if total_recipients > MAX_RECIPIENTS:
        raise _Invalid(
            f"The total number of recipients must be no more than {MAX_RECIPIENTS}.",
            "personalizations",
            "personalizations",
        )

    if not subject and not subject_everywhere and not has_template:
        raise _Invalid(
            "The subject is required. You can get around this requirement if you use a "
            "template with a subject defined or if every personalization has a subject defined.",
            "subject",
            "subject",
        )

    if "headers" in body:
        _check_headers(body["headers"], "headers")
    if "attachments" in body:
        _check_attachments(body["attachments"])

    content = body.get("content")
    if content is None and has_template:
        return
    if not isinstance(content, list) or not content:
        raise _Invalid(
            "Unless a valid template_id is provided, the content parameter is required. "
            "There must be at least one defined content block. We typically suggest both "
            "text/plain and text/html blocks are included, but only one block is required.",
            "content",
            "content",
        )
    types: list[str] = []
    for i, block in enumerate(content):
        where = f"content.{i}"
        if not isinstance(block, dict):
            raise _Invalid(
                f"Invalid type. Expected: object, given: {_type_name(block)}.", where, "content"
            )
        ctype, value = block.get("type"), block.get("value")
        if not isinstance(ctype, str) or not ctype:
            raise _Invalid(
                "The content type must be a string at least one character in length.",
                f"{where}.type",
                "content.type",
            )
        if not isinstance(value, str) or not value:
            raise _Invalid(
                "The content value must be a string at least one character in length.",
                f"{where}.value",
                "content.value",
            )
        types.append(ctype.lower())
    expected_prefix = [t for t in ("text/plain", "text/html") if t in types]
    if types[: len(expected_prefix)] != expected_prefix:
        raise _Invalid(
            "If present, text/plain and text/html may only be provided in this order, "
            "followed by any other content.",
            "content",
            "content",
        )


class _Handler(TrackedHandler):
    """One buffered write per response."""

    server_version = "FakeSendGrid/1.0"
    wbufsize = -1  # buffer headers and body, flushed once after each request
    disable_nagle_algorithm = True
    timeout = 120  # idle keep-alive connections are closed after this many seconds


    def _read_body(self) -> bytes | None:
        """Read the request body (Content-Length or chunked); ``None`` if too large."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            size = 0
            while True:
                line = self.rfile.readline(65537)
                length = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if length == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(length))
                self.rfile.readline(65537)
                size += length
            return b"".join(chunks) if size <= MAX_BODY_BYTES else None
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # do not bother draining a huge body
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _respond(
        self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> None:
        """Send a complete response (always with Content-Length)."""
        delay = self.server.fake.delay
        if delay > 0:
            self.server.fake._stopping.wait(delay)
        self.send_response(status)
        if body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if headers:
            for name, value in headers.items():
                self.send_header(name, str(value))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _dispatch(self) -> None:
        try:
            raw = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._respond(400, _error_body("Bad Request"))
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        if path.startswith(DOMAINS_PATH) and _DOMAIN_PATH_RE.match(path):
            if raw is None:
                self._respond(413, _error_body("payload too large"))
                return
            status, body, headers = self.server.fake._handle_domains(
                self.command, path, raw, self.headers)
            self._respond(status, body, headers)
            return
        if path != MAIL_SEND_PATH:
            self._respond(404, _error_body("resource not found"))
            return
        if self.command != "POST":
            self._respond(405, _error_body("method not allowed"), {"Allow": "POST"})
            return
        if raw is None:
            self._respond(413, _error_body("payload too large", None, _HELP + "payload-size"))
            return
        status, body, headers = self.server.fake._handle_mail_send(raw, self.headers)
        self._respond(status, body, headers)

    do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch


class FakeSendGrid(FakeHost):
    """In-process fake SendGrid v3 server on ``127.0.0.1`` (ephemeral port).

    Accepted ``mail/send`` requests are recorded in :attr:`messages`.
    Faults (:meth:`fail_next`) take precedence over authentication and validation,
    so they simulate outages regardless of the request content.
    """

    def __init__(self, api_key: str = "SG.test-key") -> None:
        self.api_key = api_key
        self._expected_auth = f"Bearer {api_key}"
        self._lock = threading.Lock()
        self._messages: list[SentMessage] = []
        self._faults: deque[list[Any]] = deque()  # [remaining, _Fault]
        self._delay = 0.0
        self._attempts = 0
        self._domains: dict[int, dict[str, Any]] = {}
        self._dns_truth: dict[int, dict[str, bool]] = {}
        self._domain_faults: deque[list[Any]] = deque()
        self._domain_requests: list[tuple[str, str]] = []
        self._next_domain_id = 4_200_001
        FakeHost.__init__(self)

    # -- inspection ----------------------------------------------------------

    @property
    def messages(self) -> list[SentMessage]:
        """A snapshot of the accepted requests, oldest first."""
        with self._lock:
            return list(self._messages)

    @property
    def attempts(self) -> int:
        """How many ``mail/send`` requests arrived (accepted, rejected or faulted)."""
        return self._attempts

    def recipients(self) -> list[Recipient]:
        """One ``(email, custom_args, message_id)`` per ``to`` address of every personalization.

        ``custom_args`` is the request-level dict overlaid with the personalization's.
        """
        result: list[Recipient] = []
        for message in self.messages:
            base = message.body.get("custom_args") or {}
            for pers in message.body["personalizations"]:
                args = {**base, **(pers.get("custom_args") or {})}
                for address in pers["to"]:
                    result.append(Recipient(address["email"], dict(args), message.message_id))
        return result

    def clear(self) -> None:
        """Forget recorded messages and the attempt counter."""
        with self._lock:
            self._messages.clear()
            self._attempts = 0

    def reset(self) -> None:
        """``clear()`` plus drop pending faults and the delay."""
        with self._lock:
            self._faults.clear()
            self._delay = 0.0
        self.clear()

    # -- fault injection -----------------------------------------------------

    def fail_next(
        self,
        n: int,
        status: int,
        headers: Mapping[str, str] | None = None,
        body: bytes | str | Mapping[str, Any] | list[Any] | None = None,
    ) -> None:
        """Answer the next ``n`` ``mail/send`` calls with ``status`` (queued after earlier faults).

        ``body`` may be bytes, text or a JSON-able object; by default a SendGrid-style
        error. For 429 without ``headers``, ``X-RateLimit-*`` headers are sent with a
        reset one second ahead.
        """
        if n <= 0:
            return
        with self._lock:
            self._faults.append([n, _Fault(status, dict(headers) if headers else None, body)])

    def set_delay(self, seconds: float) -> None:
        """Delay every response by ``seconds`` (0 disables)."""
        with self._lock:
            self._delay = max(0.0, float(seconds))

    @property
    def delay(self) -> float:
        """The current per-response delay in seconds."""
        return self._delay

    # -- request handling ----------------------------------------------------

    def _take_fault(self) -> _Fault | None:
        with self._lock:
            self._attempts += 1
            if not self._faults:
                return None
            entry = self._faults[0]
            entry[0] -= 1
            if entry[0] <= 0:
                self._faults.popleft()
            fault: _Fault = entry[1]
            return fault

    @staticmethod
    def _render_fault(fault: _Fault) -> tuple[int, bytes, dict[str, str]]:
        headers = dict(fault.headers) if fault.headers is not None else {}
        if fault.headers is None and fault.status == 429:
            headers = {
                "X-RateLimit-Limit": "600",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(int(time.time()) + 1),
            }
        body = fault.body
        if body is None:
            if fault.status < 400:
                data = b""
            else:
                data = _error_body(_DEFAULT_MESSAGES.get(fault.status, "error"))
        elif isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = json.dumps(body).encode()
        if fault.status == 202 and "X-Message-Id" not in headers:
            headers["X-Message-Id"] = _new_message_id()
        return fault.status, data, headers

    def _handle_mail_send(
        self, raw: bytes, headers: Any
    ) -> tuple[int, bytes, dict[str, str] | None]:
        """Return ``(status, body, extra headers)`` for one ``POST /v3/mail/send``."""
        fault = self._take_fault()
        if fault is not None:
            return self._render_fault(fault)

        auth = headers.get("Authorization")
        if not auth:
            return 401, _error_body("authorization required"), None
        if auth != self._expected_auth:
            return (
                401,
                _error_body("The provided authorization grant is invalid, expired, or revoked"),
                None,
            )
        ctype = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            return 400, _error_body("Content-Type should be application/json."), None
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, _error_body("Bad Request"), None
        try:
            _validate_mail(body)
        except _Invalid as err:
            return 400, _error_body(err.message, err.field_name, err.help), None

        message_id = _new_message_id()
        message = SentMessage(body, message_id, dict(headers.items()))
        with self._lock:
            self._messages.append(message)
        return 202, b"", {"X-Message-Id": message_id}


    # -- domain authentication -----------------------------------------------

    @property
    def domains(self) -> list[dict[str, Any]]:
        """Snapshots of the stored domain authentications, oldest first."""
        with self._lock:
            return [json.loads(json.dumps(d)) for d in self._domains.values()]

    @property
    def domain_requests(self) -> list[tuple[str, str]]:
        """``(method, path)`` of every ``/v3/whitelabel/domains`` request, oldest first."""
        with self._lock:
            return list(self._domain_requests)

    def set_domain_valid(self, domain: int | str, valid: bool | Mapping[str, bool] = True) -> None:
        """What the DNS holds for a domain (by id or name): all records, or per record name
        (``mail_cname``, ``dkim1``, ``dkim2``). Applied at the next validation, as SendGrid does."""
        with self._lock:
            ids = [i for i, d in self._domains.items() if domain in (i, d["domain"])]
            if not ids:
                raise KeyError(domain)
            for domain_id in ids:
                truth = self._dns_truth[domain_id]
                for name in truth:
                    truth[name] = bool(valid if isinstance(valid, bool) else valid.get(name,
                                                                                   truth[name]))

    def fail_next_domain(
        self,
        n: int,
        status: int,
        body: bytes | str | Mapping[str, Any] | list[Any] | None = None,
    ) -> None:
        """Answer the next ``n`` domain-authentication calls with ``status`` (a SendGrid-style
        error body by default)."""
        if n > 0:
            with self._lock:
                self._domain_faults.append([n, _Fault(status, None, body)])

    def _take_domain_fault(self) -> _Fault | None:
        with self._lock:
            if not self._domain_faults:
                return None
            entry = self._domain_faults[0]
            entry[0] -= 1
            if entry[0] <= 0:
                self._domain_faults.popleft()
            fault: _Fault = entry[1]
            return fault

    def _handle_domains(
        self, method: str, path: str, raw: bytes, headers: Any
    ) -> tuple[int, bytes, dict[str, str] | None]:
        """Return ``(status, body, extra headers)`` for one ``/v3/whitelabel/domains`` call."""
        with self._lock:
            self._domain_requests.append((method, path))
        fault = self._take_domain_fault()
        if fault is not None:
            return self._render_fault(fault)
        auth = headers.get("Authorization")
        if auth != self._expected_auth:
            message = ("authorization required" if not auth else
                       "The provided authorization grant is invalid, expired, or revoked")
            return 401, _error_body(message), None
        match = _DOMAIN_PATH_RE.match(path)
        assert match is not None
        domain_id = int(match.group(1)) if match.group(1) else None
        validate = bool(match.group(2))
        if domain_id is None and not validate:
            if method == "POST":
                return self._domain_create(raw)
            if method == "GET":
                return 200, json.dumps(self.domains).encode(), None
            return 405, _error_body("method not allowed"), {"Allow": "GET, POST"}
        with self._lock:
            known = domain_id in self._domains
        if not known:
            return 404, _error_body("authenticated domain not found", "domain_id"), None
        assert domain_id is not None
        if validate:
            if method != "POST":
                return 405, _error_body("method not allowed"), {"Allow": "POST"}
            return 200, json.dumps(self._domain_validate(domain_id)).encode(), None
        if method == "GET":
            with self._lock:
                return 200, json.dumps(self._domains[domain_id]).encode(), None
        if method == "DELETE":
            with self._lock:
                del self._domains[domain_id]
                del self._dns_truth[domain_id]
            return 204, b"", None
        return 405, _error_body("method not allowed"), {"Allow": "GET, DELETE"}

    def _domain_create(self, raw: bytes) -> tuple[int, bytes, dict[str, str] | None]:
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            return 400, _error_body("Bad Request"), None
        if not isinstance(body, dict) or not isinstance(body.get("domain"), str):
            return 400, _error_body("domain is required", "domain"), None
        name = body["domain"]
        if not _DOMAIN_RE.match(name):
            return 400, _error_body("invalid domain", "domain"), None
        with self._lock:
            domain_id = self._next_domain_id
            self._next_domain_id += 1
            user = f"u{domain_id % 100_000}.wl{domain_id % 1000:03d}.sendgrid.net"
            sub = f"em{domain_id % 10_000}"
            hosts = {"mail_cname": (f"{sub}.{name}", user),
                     "dkim1": (f"s1._domainkey.{name}", f"s1.domainkey.{user}"),
                     "dkim2": (f"s2._domainkey.{name}", f"s2.domainkey.{user}")}
            document = {
                "id": domain_id, "user_id": 1, "subdomain": sub, "domain": name,
                "username": "herald", "ips": [], "custom_spf": False, "default": False,
                "legacy": False, "automatic_security": True, "valid": False,
                "dns": {key: {"valid": False, "type": "cname", "host": host, "data": data}
                        for key, (host, data) in hosts.items()},
            }
            self._domains[domain_id] = document
            self._dns_truth[domain_id] = dict.fromkeys(RECORD_NAMES, False)
            return 201, json.dumps(document).encode(), None

    def _domain_validate(self, domain_id: int) -> dict[str, Any]:
        with self._lock:
            document, truth = self._domains[domain_id], self._dns_truth[domain_id]
            results = {}
            for name, record in document["dns"].items():
                record["valid"] = truth[name]
                results[name] = {"valid": truth[name], "reason": None if truth[name] else (
                    f"Expected CNAME for \"{record['host']}\" to match \"{record['data']}\".")}
            document["valid"] = all(truth.values())
            return {"id": domain_id, "valid": document["valid"], "validation_results": results}


def _main() -> None:  # pragma: no cover - manual use
    """Run standalone: ``python tests/fakes/sendgrid_api.py`` prints the URL and serves."""
    fake = FakeSendGrid().start()
    print(f"FakeSendGrid listening on {fake.url} (api key {fake.api_key})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":  # pragma: no cover
    _main()


FakeSendGrid.handler = _Handler
