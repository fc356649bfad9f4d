"""Kept-alive HTTP/1.1 connections to vetted addresses, for ``common.http.post`` (customer
webhooks and the webhook channel): one POST at a time per connection, written in one send,
the answer's status line, framing headers and a capped body read here.

urllib3 and ``http.client`` spent ~170 µs of CPU per POST (header objects, the email
package parsing every answer's headers, two sends); this spends ~20 µs, which is most of a
webhook delivery's CPU. What the pinned client promises is kept: the connection goes to the
address the SSRF guard vetted (connections are kept per scheme, vetted IP, port and host
name), Host and TLS SNI are the URL's host and the certificate is verified for it, nothing
is followed, at most ``max_bytes`` of the answer are read, and one deadline covers the
whole answer (a receiver dripping bytes hits it). A kept connection the receiver closed is
noticed before reuse; one that fails before any byte of an answer is replaced once (the
request is sent again: receivers dedupe on ``webhook-id``).
"""

import os
import select
import socket
import ssl
import threading
import time
from collections import OrderedDict
from urllib.parse import quote

Key = tuple[str, str, int, str]  # scheme, vetted IP, port, host name

_MAX_KEYS = 512
_IDLE_PER_KEY = 8
_MAX_IDLE = 64  # kept connections per process, all keys together
_IDLE_SECONDS = 30.0  # receivers close idle ones around 60 s: don't hold them longer
_idle_total = 0
_MAX_LINE = 8192
_MAX_HEADERS = 100
_idle: "OrderedDict[Key, list[_Connection]]" = OrderedDict()
_lock = threading.Lock()
_tls: ssl.SSLContext | None = None
_SAFE_PATH = "!#$%&'()*+,-./:;=?@[]_~"  # left as written; anything else is percent-encoded


class ConnectFailed(OSError):
    """No connection to this address (nothing was sent): the next address may answer."""


class BadAnswer(OSError):
    """The answer is not HTTP/1.x as this client reads it (the connection is dropped)."""


class _Dropped(OSError):
    """The connection ended before any byte of an answer."""


class _Connection:
    __slots__ = ("buffer", "idle_since", "received", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.received = 0  # bytes of the current answer received
        self.idle_since = 0.0

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def fill(self, deadline: float) -> None:
        """One receive, waiting at most until ``deadline``; raises ``_Dropped`` at EOF."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        self.sock.settimeout(left)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise _Dropped("the connection was closed")
        self.received += len(chunk)
        self.buffer += chunk

    def line(self, deadline: float) -> bytes:
        while (end := self.buffer.find(b"\n")) < 0:
            if len(self.buffer) > _MAX_LINE:
                raise BadAnswer("an answer line is too long")
            self.fill(deadline)
        line = bytes(self.buffer[:end + 1])
        del self.buffer[:end + 1]
        return line

    def take(self, size: int, deadline: float) -> bytes:
        """Up to ``size`` bytes: what is buffered, else one receive."""
        if not self.buffer:
            self.fill(deadline)
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data


def post(key: Key, host_header: str, path: str, head: bytes, body: bytes, *,
         timeout: float, max_bytes: int, started: float) -> tuple[int, bytes]:
    """POST ``body`` to the key's address; ``head`` holds the request's other header lines
    (each ending in CRLF). Returns (status, the answer's first ``max_bytes``). Raises
    ``ConnectFailed``, ``TimeoutError`` (connect, or no whole answer head by ``started +
    timeout``), ``BadAnswer`` and other ``OSError``s (``ssl.SSLError``: the certificate)."""
    request = b"".join((
        b"POST ", _target(path), b" HTTP/1.1\r\nHost: ", _ascii(host_header), b"\r\n", head,
        b"Content-Length: ", str(len(body)).encode(), b"\r\n\r\n", body))
    deadline = started + timeout
    connection = _idle_take(key)
    if connection is not None:
        try:
            return _exchange(key, connection, request, deadline, max_bytes)
        except (_Dropped, ConnectionResetError, BrokenPipeError):
            if connection.received:  # it began answering: it has the request
                raise BadAnswer("the receiver closed the connection mid-answer") from None
        left = deadline - time.monotonic()  # closed while idle: once more, within the deadline
        if left <= 0:
            raise TimeoutError("timed out")
        try:
            connection = _connect(key, min(left, 5.0))
        except ConnectFailed as exc:  # the request may have arrived: not the next address
            raise OSError(f"the kept connection dropped, a new one failed: {exc}") from None
    else:
        connection = _connect(key, min(timeout, 5.0))
    try:
        return _exchange(key, connection, request, deadline, max_bytes)
    except _Dropped:
        raise BadAnswer("the receiver closed the connection without answering") from None


def _exchange(key: Key, connection: _Connection, request: bytes, deadline: float,
              max_bytes: int) -> tuple[int, bytes]:
    keep = False
    try:
        connection.received = 0
        connection.sock.settimeout(max(deadline - time.monotonic(), 0.001))
        connection.sock.sendall(request)
        status, length, chunked, keep = _head(connection, deadline)
        data, whole = _body(connection, status, length, chunked, deadline, max_bytes)
        keep = keep and whole
        return status, data
    except _Dropped:
        raise
    except TimeoutError:
        raise TimeoutError("timed out") from None
    finally:
        if keep:
            _idle_put(key, connection)
        else:
            connection.close()


def _head(connection: _Connection, deadline: float) -> tuple[int, int | None, bool, bool]:
    """The final answer's status line and headers (1xx interim answers skipped): status,
    Content-Length, chunked, whether the connection may be kept."""
    while True:
        parts = connection.line(deadline).split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not (
                parts[1].isdigit() and len(parts[1]) == 3):
            raise BadAnswer("the answer is not HTTP/1.x")
        status = int(parts[1])
        length, chunked, keep = None, False, parts[0] == b"HTTP/1.1"
        close = other_coding = False
        for _ in range(_MAX_HEADERS + 1):
            line = connection.line(deadline)
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                if not value.isdigit() or (length is not None and int(value) != length):
                    raise BadAnswer("the answer's Content-Length is invalid")
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = value.rsplit(b",", 1)[-1].strip() == b"chunked"
                other_coding = other_coding or not chunked
            elif name == b"connection":
                tokens = {t.strip() for t in value.split(b",")}
                close = close or b"close" in tokens
                keep = keep or b"keep-alive" in tokens
        else:
            raise BadAnswer("the answer has too many headers")
        keep = keep and not close and not other_coding
        if chunked and length is not None:
            keep = False  # both framings: the body is read as chunked, the connection dropped
        if not 100 <= status < 200 or status == 101:
            return status, length, chunked, keep


def _body(connection: _Connection, status: int, length: int | None, chunked: bool,
          deadline: float, max_bytes: int) -> tuple[bytes, bool]:
    """At most ``max_bytes`` of the body, and whether all of it was read (else the
    connection is dropped rather than drained). Past the deadline, what arrived so far."""
    if status in (204, 304) or (length == 0 and not chunked):
        return b"", True
    if chunked:
        return _chunked(connection, deadline, max_bytes)
    want = max_bytes + 1 if length is None else min(length, max_bytes + 1)
    chunks, size = [], 0
    try:
        while size < want:
            chunk = connection.take(want - size, deadline)
            chunks.append(chunk)
            size += len(chunk)
    except _Dropped:
        return b"".join(chunks)[:max_bytes], False
    except (TimeoutError, OSError):
        return b"".join(chunks)[:max_bytes], False
    return b"".join(chunks)[:max_bytes], length is not None and size == length


def _chunked(connection: _Connection, deadline: float, max_bytes: int) -> tuple[bytes, bool]:
    chunks, size = [], 0
    try:
        while size <= max_bytes:
            line = connection.line(deadline).split(b";", 1)[0].strip()
            try:
                left = int(line, 16)
            except ValueError:
                return b"".join(chunks)[:max_bytes], False
            if left == 0:
                while connection.line(deadline) not in (b"\r\n", b"\n"):
                    pass  # trailers
                return b"".join(chunks)[:max_bytes], True
            while left > 0 and size <= max_bytes:
                chunk = connection.take(min(left, max_bytes + 1 - size), deadline)
                chunks.append(chunk)
                size += len(chunk)
                left -= len(chunk)
            if left == 0 and connection.line(deadline) not in (b"\r\n", b"\n"):
                return b"".join(chunks)[:max_bytes], False
    except (OSError, BadAnswer):
        pass
    return b"".join(chunks)[:max_bytes], False


# --- connections ----------------------------------------------------------------------------

def _connect(key: Key, timeout: float) -> _Connection:
    scheme, address, port, host = key
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except TimeoutError:
        raise TimeoutError("timed out connecting") from None  # a hanging host ends the batch
    except OSError as exc:
        raise ConnectFailed(str(exc) or type(exc).__name__) from None
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if scheme == "https":
            sock = _tls_context().wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise
    return _Connection(sock)


def _tls_context() -> ssl.SSLContext:
    """The system's trust store, certificates and host names checked (SNI = the host)."""
    global _tls
    if _tls is None:
        _tls = ssl.create_default_context()
    return _tls


def _idle_take(key: Key) -> _Connection | None:
    """A kept connection to this key that the receiver has not closed meanwhile."""
    global _idle_total
    while True:
        with _lock:
            kept = _idle.get(key)
            if not kept:
                return None
            connection = kept.pop()
            _idle_total -= 1
        if (not connection.buffer and not _readable(connection.sock)
                and time.monotonic() - connection.idle_since < _IDLE_SECONDS):
            return connection
        connection.close()  # closed by the receiver, idle too long, or it sent something


def _readable(sock: socket.socket) -> bool:
    try:  # poll, not select: select cannot watch a descriptor >= 1024
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def _idle_put(key: Key, connection: _Connection) -> None:
    global _idle_total
    connection.idle_since = time.monotonic()
    dropped: list[_Connection] = []
    with _lock:
        while _idle and (len(_idle) >= _MAX_KEYS or _idle_total >= _MAX_IDLE) and (
                next(iter(_idle)) != key):
            evicted = _idle.popitem(last=False)[1]  # the least recently used key
            _idle_total -= len(evicted)
            dropped += evicted
        kept = _idle.setdefault(key, [])
        _idle.move_to_end(key)
        if len(kept) < _IDLE_PER_KEY:
            kept.append(connection)
            _idle_total += 1
        else:
            dropped.append(connection)
    for extra in dropped:
        extra.close()


def _forget() -> None:
    """A forked child must not share its parent's sockets (a prefork pool)."""
    global _lock, _idle_total
    _lock = threading.Lock()
    _idle.clear()
    _idle_total = 0


os.register_at_fork(after_in_child=_forget)


def _target(path: str) -> bytes:
    try:
        return path.encode("ascii")
    except UnicodeEncodeError:
        return quote(path, safe=_SAFE_PATH).encode("ascii")


def _ascii(host: str) -> bytes:
    try:
        return host.encode("ascii")
    except UnicodeEncodeError:
        return host.encode("idna")
