"""Requests to vetted addresses: pinned IP, Host/SNI kept, no redirects, capped reads.

The one HTTP client of every URL an account can steer: ``post`` (customer webhooks, the
webhook channel; on ``common.http_conn``'s lean kept-alive connections), ``request``
(providers on urllib3 pointed at an account's ``api_base``) and ``pinned_session`` (a
``requests`` session for the official clients built on requests, google-auth's token
requests among them). Connections are kept per (scheme, vetted IP, port, host name), so
keep-alive works across requests while every request still goes to an address checked just
before it.
"""

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError, NewConnectionError

from common import http_conn, ssrf
from common.ssrf import Target

_pools: dict[tuple[str, str, int, str], urllib3.HTTPConnectionPool] = {}
_pools_lock = threading.Lock()
_MAX_POOLS = 512
USER_AGENT = "Herald-Webhooks/1.0"


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    body: bytes
    error: str
    duration_ms: int
    timed_out: bool = False  # no answer within the timeout (connect or read)


def _pool(target: Target, address: str) -> urllib3.HTTPConnectionPool:
    key = (target.scheme, address, target.port, target.host)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            if len(_pools) >= _MAX_POOLS:
                _pools.pop(next(iter(_pools))).close()
            if target.scheme == "https":
                pool = urllib3.HTTPSConnectionPool(
                    address, target.port, maxsize=8, block=False, cert_reqs="CERT_REQUIRED",
                    server_hostname=target.host, assert_hostname=target.host,
                )
            else:
                pool = urllib3.HTTPConnectionPool(address, target.port, maxsize=8, block=False)
            _pools[key] = pool
        return pool


def post(*, target: Target, body: bytes, headers: dict[str, str], timeout: float,
         max_bytes: int) -> Outcome:
    """POST ``body``; never follows redirects, reads at most ``max_bytes`` of the answer, and
    gives up ``timeout`` seconds after the start (``common.http_conn``: kept-alive
    connections per vetted address, the request in one send)."""
    started = time.monotonic()
    head = _header_lines({"Content-Type": "application/json", "User-Agent": USER_AGENT,
                          **headers})
    error = "no address to connect to"
    for address in target.addresses[:3]:
        key = (target.scheme, address, target.port, target.host)
        try:
            status, data = http_conn.post(key, target.host_header, target.path, head, body,
                                          timeout=timeout, max_bytes=max_bytes,
                                          started=started)
            return Outcome(status, data, "", _elapsed_ms(started))
        except http_conn.ConnectFailed as exc:
            error = f"connection failed: {exc}"  # nothing was sent: the next address may answer
            continue
        except OSError as exc:
            timed_out = isinstance(exc, TimeoutError)
            return Outcome(None, b"", f"{type(exc).__name__}: {exc}"[:1000], _elapsed_ms(started),
                           timed_out=timed_out)
    return Outcome(None, b"", error[:1000], _elapsed_ms(started))


def _header_lines(headers: dict[str, str]) -> bytes:
    """``Name: value`` CRLF lines; a name or value that could end the line is refused (no
    header of ours has one: this keeps a future caller from splitting the request). Host and
    Content-Length are the client's own."""
    lines = []
    for name, value in headers.items():
        text = f"{name}: {value}"
        if any(ch in text for ch in "\r\n\0") or name.lower() in ("host", "content-length"):
            raise ValueError(f"header {name!r} cannot be sent as given")
        lines.append(text)
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


def _send_once(pool: urllib3.HTTPConnectionPool, method: str, path: str, body: bytes | None,
               headers: dict[str, str], timeout: float, max_bytes: int,
               started: float) -> tuple[int, bytes, Any]:
    response = pool.urlopen(
        method, path, body=body, headers=headers, redirect=False, retries=False,
        timeout=urllib3.Timeout(connect=min(timeout, 5.0), read=timeout),
        preload_content=False, decode_content=False, assert_same_host=False,
    )
    chunks, size, eof = [], 0, False
    try:
        # read1 returns what has arrived, so a receiver dripping bytes hits the deadline.
        while size <= max_bytes and time.monotonic() - started < timeout:
            chunk = response.read1(max_bytes + 1 - size)
            if not chunk:
                eof = True
                break
            chunks.append(chunk)
            size += len(chunk)
    except (HTTPError, OSError):
        eof = False
    if eof:
        response.release_conn()  # body fully read: the connection can be reused
    else:
        response.close()  # huge or slow body: drop the connection instead of draining it
        response.release_conn()
    return response.status, b"".join(chunks)[:max_bytes], response.headers


@dataclass(frozen=True)
class Answer:
    status: int
    data: bytes
    headers: Any = field(default_factory=dict)


class Refused(Exception):
    """The SSRF guard refused the URL (its message is one of the guard's fixed sentences)."""


def request(method: str, url: str, *, json_body: Any = None, body: bytes | None = None,
            headers: dict[str, str], timeout: float, allow_private: bool,
            max_bytes: int = 256 * 1024) -> Answer:
    """One request to ``url`` (``json_body`` as JSON, or ``body`` as is), vetted by the SSRF
    guard and sent to the vetted address; no redirect followed, at most ``max_bytes`` of the
    answer read. Raises ``Refused``, or urllib3's ``HTTPError``/``OSError``
    (``TimeoutError`` subclasses on a timeout)."""
    try:
        target = ssrf.url_resolve(url, allow_private=allow_private)
    except ssrf.UnsafeUrl as exc:
        raise Refused(str(exc)) from None
    all_headers = {"User-Agent": USER_AGENT, **{k: v for k, v in headers.items()
                                                if k.lower() != "host"},
                   "Host": target.host_header}
    if json_body is not None:
        body = json.dumps(json_body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    started, failure = time.monotonic(), None
    for address in target.addresses[:3]:
        try:
            status, data, answer_headers = _send_once(
                _pool(target, address), method, target.path, body, all_headers, timeout,
                max_bytes, started)
            return Answer(status, data, answer_headers)
        except NewConnectionError as exc:  # nothing was sent: the next address may answer
            failure = exc
    raise failure or NewConnectionError(None, "no address to connect to")


class PinnedAdapter(HTTPAdapter):
    """A ``requests`` transport that vets every request's URL with the SSRF guard and
    connects to the vetted address (the pools of ``request``), keeping Host and SNI. Proxies
    are not used (they would resolve the name again); certificates are always verified."""

    def __init__(self, *, allow_private: bool) -> None:
        super().__init__(max_retries=0)
        self.allow_private = allow_private
        self._pin = threading.local()

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: Any = None, verify: Any = True, cert: Any = None,
             proxies: Any = None) -> requests.Response:
        try:
            target = ssrf.url_resolve(request.url or "", allow_private=self.allow_private)
        except ssrf.UnsafeUrl as exc:
            raise RefusedRequest(str(exc), request=request) from None
        request.headers["Host"] = target.host_header
        failure: Exception | None = None
        for address in target.addresses[:3]:
            self._pin.value = (target, address)
            try:
                return super().send(request, stream=stream, timeout=timeout, verify=True,
                                    cert=None, proxies={})
            except requests.ConnectionError as exc:
                if not isinstance(getattr(exc.args[0] if exc.args else None, "reason", None),
                                  NewConnectionError):
                    raise
                failure = exc  # nothing was sent: the next address may answer
            finally:
                self._pin.value = None
        raise failure or requests.ConnectionError("no address to connect to")

    def get_connection_with_tls_context(self, request: requests.PreparedRequest, verify: Any,
                                        proxies: Any = None, cert: Any = None
                                        ) -> urllib3.HTTPConnectionPool:
        target, address = self._pin.value
        return _pool(target, address)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        """The pools verify certificates themselves (shared pools must not be changed)."""


class RefusedRequest(requests.ConnectionError):
    """``PinnedAdapter``'s refusal, a ``requests`` error so clients handle it as one."""


def pinned_session(*, allow_private: bool) -> requests.Session:
    """A ``requests.Session`` whose every request goes through the SSRF guard to the vetted
    address, following no redirect (a 3xx raises ``TooManyRedirects``)."""
    session = requests.Session()
    session.trust_env = False  # no proxies or .netrc from the environment
    session.max_redirects = 0
    adapter = PinnedAdapter(allow_private=allow_private)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
