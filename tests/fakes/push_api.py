"""Dependency-free fakes of the push vendors' HTTP APIs, for tests (real sockets, real clients).

``FakeExpo`` serves Expo's ``POST /--/api/v2/push/send``: it checks the Bearer access token
(when one is configured), validates each message, answers one ticket per message in the
request's own shape (object or array), ``DeviceNotRegistered`` for malformed tokens and
for :attr:`FakeExpo.unregistered`, and any scripted ticket error of
:attr:`FakeExpo.ticket_errors`::

    with FakeExpo(access_token="s3cret") as fake:
        ExpoPushProvider({"api_base": fake.url}, {"access_token": "s3cret"}, 5).send(msg)
        assert fake.messages[0].body["to"] == msg.to

``FakeFcm`` serves FCM HTTP v1 (``POST /v1/projects/{p}/messages:send``) and Google's OAuth
token endpoint (``POST /token``), which verifies the service account's RS256 JWT grant
(signature with the registered public key, ``iss``, ``aud`` (Google's endpoint, or this
one), ``scope``, ``exp``) before
issuing the access token that the FCM endpoint then requires. :func:`make_service_account`
builds a key file whose ``token_uri`` points here.

Both: :meth:`fail_next` queues faults (status, headers, body) ahead of any validation;
:meth:`set_delay` holds every response back (a hang, for timeouts).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
import urllib.parse
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.fakes.http_host import FakeHost

__all__ = ["FakeExpo", "FakeFcm", "Received", "make_service_account"]

EXPO_SEND_PATH = "/--/api/v2/push/send"
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
# The audience Google requires; google-auth puts it in every grant, whatever the token_uri.
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_EXPO_TOKEN_RE = re.compile(r"^Expo(?:nent)?PushToken\[[^\[\]\s]+\]$")
_FCM_TOKEN_RE = re.compile(r"^[A-Za-z0-9_:\-]{20,}$")
_FCM_SEND_RE = re.compile(r"^/v1/projects/([^/]+)/messages:send$")
EXPO_MAX_PAYLOAD = 4096
Answer = tuple[int, Any, Mapping[str, str] | None]


@dataclass(frozen=True)
class Received:
    """One accepted message: its JSON body and the request headers."""

    body: dict[str, Any]
    headers: dict[str, str]
    path: str = ""
    received_at: float = field(default_factory=time.time)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakePush/1.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        fake: _FakeServer = self.server.fake  # type: ignore[attr-defined]
        status, body, headers = fake._answer(self.command, self.path.split("?", 1)[0],
                                             dict(self.headers.items()), raw)
        if fake.delay > 0:
            fake._stopping.wait(fake.delay)
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (timeout tests)
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = _dispatch


class _FakeServer(FakeHost):
    """A threaded HTTP server on 127.0.0.1 (ephemeral port) with a fault queue."""

    handler = _Handler

    def __init__(self) -> None:
        FakeHost.__init__(self)
        self._lock = threading.Lock()
        self._faults: deque[list[Any]] = deque()  # [remaining, (status, headers, body)]
        self.delay = 0.0
        self.attempts = 0

    def set_delay(self, seconds: float) -> None:
        """Hold every response back ``seconds`` (0: none)."""
        self.delay = max(0.0, seconds)

    def fail_next(self, n: int, status: int, headers: Mapping[str, str] | None = None,
                  body: Any = None) -> None:
        """Answer the next ``n`` send calls with ``status`` (a vendor-shaped error by default)."""
        with self._lock:
            self._faults.append([n, (status, dict(headers or {}), body)])

    def _take_fault(self) -> tuple[int, dict[str, str], Any] | None:
        with self._lock:
            self.attempts += 1
            if not self._faults:
                return None
            entry = self._faults[0]
            entry[0] -= 1
            if entry[0] <= 0:
                self._faults.popleft()
            return entry[1]  # type: ignore[no-any-return]

    def _answer(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Answer:
        raise NotImplementedError


# --- Expo ----------------------------------------------------------------------------------


class FakeExpo(_FakeServer):
    """Expo's push API. ``access_token``: require ``Authorization: Bearer`` with it."""

    def __init__(self, access_token: str | None = None) -> None:
        super().__init__()
        self.access_token = access_token
        self.unregistered: set[str] = set()
        self.ticket_errors: dict[str, str] = {}  # token -> details.error, e.g. MessageTooBig
        self.messages: list[Received] = []

    def _answer(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Answer:
        if path != EXPO_SEND_PATH:
            return 404, _expo_errors("NOT_FOUND", "Not found"), None
        fault = self._take_fault()
        if fault is not None:
            status, fault_headers, body = fault
            return status, body if body is not None else _expo_fault_body(status), fault_headers
        if self.access_token and headers.get("Authorization") != f"Bearer {self.access_token}":
            return 401, _expo_errors("UNAUTHORIZED", "The bearer token is invalid."), None
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, _expo_errors("VALIDATION_ERROR", "Request body is not JSON."), None
        items = body if isinstance(body, list) else [body]
        problem = next((p for p in map(_expo_problem, items) if p), None)
        if problem:
            return 400, _expo_errors("VALIDATION_ERROR", problem), None
        tickets = [self._ticket(item, headers) for item in items]
        return 200, {"data": tickets if isinstance(body, list) else tickets[0]}, None

    def _ticket(self, item: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        token = item["to"]
        if not _EXPO_TOKEN_RE.match(token):
            return _expo_ticket_error("DeviceNotRegistered",
                                      f'"{token}" is not a valid Expo push token')
        if token in self.unregistered:
            return _expo_ticket_error(
                "DeviceNotRegistered", f'"{token}" is not a registered push notification recipient')
        if len(json.dumps(item).encode()) > EXPO_MAX_PAYLOAD:
            return _expo_ticket_error("MessageTooBig", "Message too big")
        if token in self.ticket_errors:
            return _expo_ticket_error(self.ticket_errors[token], "Scripted error")
        with self._lock:
            self.messages.append(Received(item, headers, EXPO_SEND_PATH))
        return {"status": "ok", "id": str(uuid.uuid4())}


def _expo_problem(item: Any) -> str:
    if not isinstance(item, dict):
        return "Each message must be an object."
    if not isinstance(item.get("to"), str):
        return '"to" must be a string.'
    for key in ("title", "body"):
        if key in item and not isinstance(item[key], str):
            return f'"{key}" must be a string.'
    if "data" in item and not isinstance(item["data"], dict):
        return '"data" must be an object.'
    return ""


def _expo_errors(code: str, message: str) -> dict[str, Any]:
    return {"errors": [{"code": code, "message": message}]}


def _expo_ticket_error(error: str, message: str) -> dict[str, Any]:
    return {"status": "error", "message": message, "details": {"error": error}}


def _expo_fault_body(status: int) -> Any:
    if status == 429:
        return _expo_errors("TOO_MANY_REQUESTS", "Too many requests.")
    if status >= 500:
        return b"<html>upstream error</html>"  # what a proxy in front of Expo answers
    return _expo_errors("ERROR", f"HTTP {status}")


# --- FCM and Google OAuth ------------------------------------------------------------------


@dataclass
class _Account:
    project_id: str
    public_key: rsa.RSAPublicKey


class FakeFcm(_FakeServer):
    """FCM HTTP v1 plus the OAuth token endpoint at ``/token`` (:attr:`token_uri`)."""

    def __init__(self, expires_in: int = 3600) -> None:
        super().__init__()
        self.expires_in = expires_in
        self.accounts: dict[str, _Account] = {}  # client_email -> account
        self.issued: dict[str, tuple[str, float]] = {}  # access token -> (email, expiry)
        self.unregistered: set[str] = set()
        self.sender_mismatch: set[str] = set()
        self.messages: list[Received] = []
        self.token_requests = 0
        self._token_faults: deque[list[Any]] = deque()

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def register(self, client_email: str, project_id: str, public_key: rsa.RSAPublicKey) -> None:
        """Let a service account in (what Google knows of a created key)."""
        self.accounts[client_email] = _Account(project_id, public_key)

    def revoke_tokens(self) -> None:
        """Every issued access token stops working (FCM answers 401)."""
        with self._lock:
            self.issued.clear()

    def fail_next_token(self, n: int, status: int, body: Any = None) -> None:
        """Answer the next ``n`` token requests with ``status``."""
        with self._lock:
            self._token_faults.append([n, (status, {}, body)])

    def _answer(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Answer:
        if path == "/token" and method == "POST":
            return self._token(raw)
        match = _FCM_SEND_RE.match(path)
        if not match or method != "POST":
            return 404, _google_error(404, "NOT_FOUND", "Requested entity was not found."), None
        fault = self._take_fault()
        if fault is not None:
            status, fault_headers, body = fault
            return status, body if body is not None else _fcm_fault_body(status), fault_headers
        return self._send(match.group(1), path, headers, raw)

    # -- OAuth ------------------------------------------------------------------------------

    def _token(self, raw: bytes) -> Answer:
        with self._lock:
            self.token_requests += 1
            fault = None
            if self._token_faults:
                entry = self._token_faults[0]
                entry[0] -= 1
                if entry[0] <= 0:
                    self._token_faults.popleft()
                fault = entry[1]
        if fault is not None:
            status, _, body = fault
            return status, body if body is not None else {"error": "internal_failure"}, None
        form = urllib.parse.parse_qs(raw.decode())
        if form.get("grant_type") != [JWT_BEARER] or len(form.get("assertion", [])) != 1:
            return 400, {"error": "unsupported_grant_type",
                         "error_description": "Invalid grant_type."}, None
        problem, email = self._check_assertion(form["assertion"][0])
        if problem:
            return 400, {"error": "invalid_grant", "error_description": problem}, None
        access_token = f"ya29.fake-{secrets.token_urlsafe(24)}"
        with self._lock:
            self.issued[access_token] = (email, time.time() + self.expires_in)
        return 200, {"access_token": access_token, "expires_in": self.expires_in,
                     "token_type": "Bearer"}, None

    def _check_assertion(self, assertion: str) -> tuple[str, str]:
        """``(problem, client_email)``: problem is empty when the JWT grant is good."""
        try:
            head_b64, claims_b64, sig_b64 = assertion.split(".")
            header, claims = json.loads(_b64(head_b64)), json.loads(_b64(claims_b64))
            signature = _b64(sig_b64)
        except ValueError:
            return "Invalid JWT.", ""
        if header.get("alg") != "RS256":
            return "Invalid JWT: alg must be RS256.", ""
        account = self.accounts.get(claims.get("iss", ""))
        if account is None:
            return "Invalid grant: account not found", ""
        try:
            account.public_key.verify(signature, f"{head_b64}.{claims_b64}".encode(),
                                      padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return "Invalid JWT Signature.", ""
        now = time.time()
        if claims.get("aud") not in (GOOGLE_TOKEN_URI, self.token_uri):
            return "Invalid JWT: audience must be the token endpoint.", ""
        if not (claims.get("iat", 0) - 300 <= now < claims.get("exp", 0) <= now + 3900):
            return "Invalid JWT: Token must be a short-lived token.", ""
        if FCM_SCOPE not in str(claims.get("scope", "")).split():
            return "Invalid scope.", ""
        return "", claims["iss"]

    # -- FCM --------------------------------------------------------------------------------

    def _send(self, project: str, path: str, headers: dict[str, str], raw: bytes) -> Answer:
        auth = headers.get("Authorization", "")
        with self._lock:
            email, expiry = self.issued.get(auth.removeprefix("Bearer "), ("", 0.0))
        if not auth.startswith("Bearer ") or expiry < time.time():
            return 401, _google_error(401, "UNAUTHENTICATED",
                                      "Request had invalid authentication credentials."), None
        if self.accounts[email].project_id != project:
            return 403, _google_error(403, "PERMISSION_DENIED", "Permission "
                                      "'cloudmessaging.messages.create' denied on resource."), None
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, _google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload."), None
        problem = _fcm_problem(body)
        if problem:
            return 400, problem, None
        token = body["message"]["token"]
        if token in self.unregistered:
            return 404, _google_error(404, "NOT_FOUND", "Requested entity was not found.",
                                      "UNREGISTERED"), None
        if token in self.sender_mismatch:
            return 403, _google_error(403, "PERMISSION_DENIED", "SenderId mismatch",
                                      "SENDER_ID_MISMATCH"), None
        with self._lock:
            self.messages.append(Received(body, headers, path))
        return 200, {"name": f"projects/{project}/messages/{uuid.uuid4().int % 10**19}"}, None


def _fcm_problem(body: Any) -> dict[str, Any] | None:
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, dict):
        return _google_error(400, "INVALID_ARGUMENT", "Invalid value at 'message'.")
    token = message.get("token")
    if not isinstance(token, str) or not _FCM_TOKEN_RE.match(token):
        error = _google_error(400, "INVALID_ARGUMENT",
                              "The registration token is not a valid FCM registration token",
                              "INVALID_ARGUMENT")
        error["error"]["details"].append({
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": "message.token",
                                 "description": "Invalid registration token"}]})
        return error
    notification = message.get("notification", {})
    if not isinstance(notification, dict) or not all(
            isinstance(notification.get(k, ""), str) for k in ("title", "body")):
        return _google_error(400, "INVALID_ARGUMENT", "Invalid value at 'message.notification'.")
    data = message.get("data", {})
    for index, (key, value) in enumerate(data.items() if isinstance(data, dict) else []):
        if not isinstance(value, str):
            return _google_error(400, "INVALID_ARGUMENT",
                                 f"Invalid value at 'message.data[{index}].value' (TYPE_STRING),"
                                 f" {json.dumps(value)} ({key})", "INVALID_ARGUMENT")
    return None


def _google_error(code: int, status: str, message: str, fcm_code: str = "") -> dict[str, Any]:
    details = ([{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                 "errorCode": fcm_code}] if fcm_code else [])
    return {"error": {"code": code, "message": message, "status": status, "details": details}}


def _fcm_fault_body(status: int) -> dict[str, Any]:
    if status == 429:
        return _google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", "QUOTA_EXCEEDED")
    if status == 503:
        return _google_error(503, "UNAVAILABLE", "The service is unavailable.", "UNAVAILABLE")
    if status >= 500:
        return _google_error(status, "INTERNAL", "Internal error.", "INTERNAL")
    return _google_error(status, "INVALID_ARGUMENT", f"HTTP {status}")


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_service_account(fake: FakeFcm, *, project_id: str = "herald-test",
                         client_email: str = "herald@herald-test.iam.gserviceaccount.com",
                         register: bool = True) -> str:
    """A fresh RSA key's service account JSON (token_uri: the fake), registered with it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    if register:
        fake.register(client_email, project_id, key.public_key())
    return json.dumps({
        "type": "service_account", "project_id": project_id,
        "private_key_id": secrets.token_hex(20), "private_key": pem,
        "client_email": client_email, "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": fake.token_uri,
    })
