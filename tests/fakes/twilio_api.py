"""A dependency-free fake of Twilio's Messages API for tests.

Drive it with the real client (``TwilioSmsProvider`` with ``api_base=fake.url``)::

    with FakeTwilio() as fake:
        ...send...
        assert fake.messages[0].to == "+15551230000"

``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` checks Basic auth (401, code
20003), the account in the path (404, code 20404), the form fields the way Twilio does (To
in E.164: 400 code 21211; From or MessagingServiceSid: 21603; Body: 21602), numbers marked
with :meth:`FakeTwilio.unsubscribe` (21610) or :meth:`FakeTwilio.add_landline` (21614), and
answers 201 with a Twilio-shaped message resource. Faults (:meth:`FakeTwilio.fail_next`,
:meth:`FakeTwilio.hang_next`) come before any check, so they simulate outages whatever the
request.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.http_host import FakeHost, TrackedHandler

__all__ = ["FakeTwilio", "SentSms"]

_PATH_RE = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Messages\.json$")
_E164_RE = re.compile(r"^\+[1-9]\d{1,14}$")
_DEFAULT_MESSAGES = {
    400: "Bad Request", 401: "Authenticate", 404: "The requested resource was not found",
    429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable",
}


@dataclass(frozen=True)
class SentSms:
    """One accepted message: the form fields as Twilio read them, and the answer's sid."""

    sid: str
    to: str
    from_: str
    messaging_service_sid: str
    body: str
    form: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Fault:
    status: int
    code: int | None
    message: str
    headers: dict[str, str]
    hang: float = 0.0


def _error(status: int, code: int, message: str) -> bytes:
    """Twilio's error body (``more_info`` points at the error's documentation page)."""
    return json.dumps({"code": code, "message": message, "status": status,
                       "more_info": f"https://www.twilio.com/docs/errors/{code}"}).encode()


class FakeTwilio(FakeHost):
    """Twilio's Messages API on ``127.0.0.1`` and an ephemeral port, served in a thread."""

    def __init__(self, account_sid: str = "AC" + "0" * 31 + "1",
                 auth_token: str = "twilio-test-token") -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._lock = threading.Lock()
        self._messages: list[SentSms] = []
        self._faults: deque[list[Any]] = deque()  # [remaining, _Fault]
        self._unsubscribed: set[str] = set()
        self._landlines: set[str] = set()
        self._attempts = 0
        FakeHost.__init__(self)

    # -- inspection and scripting --------------------------------------------

    @property
    def messages(self) -> list[SentSms]:
        """The accepted messages, oldest first."""
        with self._lock:
            return list(self._messages)

    @property
    def attempts(self) -> int:
        """How many Messages requests arrived (accepted, rejected or faulted)."""
        return self._attempts

    def unsubscribe(self, number: str) -> None:
        """The number replied STOP: sends to it answer 400 with code 21610."""
        with self._lock:
            self._unsubscribed.add(number)

    def add_landline(self, number: str) -> None:
        """The number is not a mobile: sends to it answer 400 with code 21614."""
        with self._lock:
            self._landlines.add(number)

    def fail_next(self, n: int, status: int, *, code: int | None = None, message: str = "",
                  headers: dict[str, str] | None = None) -> None:
        """Answer the next ``n`` requests with ``status`` and a Twilio error body (``code``
        defaults to ``status``, as Twilio does for generic errors). A 429 without ``headers``
        carries ``Retry-After: 1``."""
        if headers is None:
            headers = {"Retry-After": "1"} if status == 429 else {}
        fault = _Fault(status, code, message or _DEFAULT_MESSAGES.get(status, "error"),
                       dict(headers))
        with self._lock:
            self._faults.append([n, fault])

    def hang_next(self, n: int, seconds: float = 30.0) -> None:
        """Hold the next ``n`` requests for ``seconds`` (or until ``stop()``) before a 500."""
        with self._lock:
            self._faults.append([n, _Fault(500, None, "Internal Server Error", {}, seconds)])

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

    # -- request handling ----------------------------------------------------

    def handle(self, method: str, path: str, headers: Any,
               raw: bytes) -> tuple[int, bytes, dict[str, str]]:
        """``(status, body, extra headers)`` for one request."""
        match = _PATH_RE.match(path.split("?", 1)[0])
        if match is None:
            return 404, _error(404, 20404, _DEFAULT_MESSAGES[404]), {}
        fault = self._take_fault()
        if fault is not None:
            if fault.hang:
                self._stopping.wait(fault.hang)
            return fault.status, _error(fault.status, fault.code or fault.status,
                                        fault.message), fault.headers
        if not self._authorized(headers.get("Authorization") or ""):
            return 401, _error(401, 20003, "Authenticate"), {
                "WWW-Authenticate": 'Basic realm="Twilio API"'}
        if match.group(1) != self.account_sid:
            return 404, _error(404, 20404, _DEFAULT_MESSAGES[404]), {}
        if method != "POST":
            return 405, _error(405, 20004, "Method not allowed"), {"Allow": "POST"}
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace"),
                                             keep_blank_values=True).items()}
        problem = self._validate(form)
        if problem is not None:
            code, message = problem
            return 400, _error(400, code, message), {}
        return 201, json.dumps(self._accept(form)).encode(), {}

    def _authorized(self, header: str) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return header == f"Basic {expected}"

    def _validate(self, form: dict[str, str]) -> tuple[int, str] | None:
        to = form.get("To", "")
        if not to:
            return 21604, "A 'To' phone number is required."
        if not _E164_RE.match(to):
            return 21211, f"Invalid 'To' Phone Number: {to}"
        if not (form.get("From") or form.get("MessagingServiceSid")):
            return 21603, "A 'From' phone number is required."
        if not form.get("Body"):
            return 21602, "Message body is required."
        with self._lock:
            if to in self._unsubscribed:
                return 21610, "Attempt to send to unsubscribed recipient"
            if to in self._landlines:
                return 21614, f"'To' number {to} is not a valid mobile number"
        return None

    def _accept(self, form: dict[str, str]) -> dict[str, Any]:
        sid = "SM" + uuid.uuid4().hex
        now = formatdate(usegmt=True)
        base = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}"
        service = form.get("MessagingServiceSid") or None
        with self._lock:
            self._messages.append(SentSms(sid, form["To"], form.get("From", ""),
                                          service or "", form["Body"], form))
        return {
            "account_sid": self.account_sid, "api_version": "2010-04-01", "body": form["Body"],
            "date_created": now, "date_sent": None, "date_updated": now,
            "direction": "outbound-api", "error_code": None, "error_message": None,
            "from": form.get("From") or None, "messaging_service_sid": service,
            "num_media": "0", "num_segments": "1", "price": None, "price_unit": "USD",
            "sid": sid, "status": "accepted" if service and not form.get("From") else "queued",
            "subresource_uris": {"media": f"{base}/Media.json"}, "to": form["To"],
            "uri": f"{base}.json",
        }


class _Handler(TrackedHandler):
    server_version = "FakeTwilio/1.0"
    timeout = 60

    def _serve(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, body, headers = self.server.fake.handle(self.command, self.path, self.headers,
                                                        raw)
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _serve


FakeTwilio.handler = _Handler
