"""The webhooks' HTTP client (``common.http.post`` on ``common.http_conn``) against raw
socket servers that answer as scripted: one kept-alive connection for many POSTs, a kept
connection the receiver closed replaced without a failed attempt, chunked and capped answers,
one deadline for the whole answer, the next vetted address after a refused connection, the
certificate checked, no header able to split the request."""

import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable

import pytest

from common import http
from common.ssrf import Target

Script = Callable[[socket.socket, bytes], bool]  # (connection, request) → keep the connection


class RawServer:
    """Accepts connections on 127.0.0.1, reads each request (head and Content-Length body)
    and answers with ``script``; records every request and counts connections."""

    def __init__(self, script: Script, wrap: ssl.SSLContext | None = None) -> None:
        self.script, self.wrap = script, wrap
        self.requests: list[bytes] = []
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def target(self, *, addresses: tuple[str, ...] = ("127.0.0.1",), scheme: str = "http",
               host: str = "127.0.0.1") -> Target:
        return Target(scheme=scheme, host=host, port=self.port, path="/hook?a=1",
                      addresses=addresses)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.wrap is not None:
                conn = self.wrap.wrap_socket(conn, server_side=True)
            reader = conn.makefile("rb")
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                request = head + reader.read(length)
                self.requests.append(request)
                if not self.script(conn, request):
                    return
        except (OSError, ssl.SSLError):
            return
        finally:
            conn.close()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def servers():
    started: list[RawServer] = []

    def make(script: Script, wrap: ssl.SSLContext | None = None) -> RawServer:
        started.append(RawServer(script, wrap))
        return started[-1]

    yield make
    for server in started:
        server.close()


def answer(data: bytes, keep: bool = True) -> Script:
    def script(conn: socket.socket, request: bytes) -> bool:
        conn.sendall(data)
        return keep
    return script


def post(target: Target, body: bytes = b'{"a":1}', timeout: float = 5.0,
         max_bytes: int = 1024) -> http.Outcome:
    return http.post(target=target, body=body, headers={"webhook-id": "msg_1"},
                     timeout=timeout, max_bytes=max_bytes)


def test_many_posts_share_one_connection_and_arrive_whole(servers):
    server = servers(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    target = server.target(host="hooks.example")
    outcomes = [post(target, body=b'{"n":%d}' % n) for n in range(20)]
    assert [(o.status_code, o.body, o.error) for o in outcomes] == [(200, b"ok", "")] * 20
    assert server.connections == 1
    head, body = server.requests[7].split(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /hook?a=1 HTTP/1.1"
    assert {b"Host: hooks.example:%d" % server.port, b"Content-Type: application/json",
            b"User-Agent: Herald-Webhooks/1.0", b"webhook-id: msg_1",
            b"Content-Length: 7"} == set(lines[1:])
    assert body == b'{"n":7}'


def test_a_kept_connection_the_receiver_closed_is_replaced_without_a_failure(servers):
    # The receiver closes after every answer without saying so (as an idle timeout does).
    server = servers(answer(b"HTTP/1.1 204 No Content\r\n\r\n", keep=False))
    target = server.target()
    for _ in range(5):
        assert post(target).status_code == 204
        time.sleep(0.05)  # the close has arrived before the next POST
    assert len(server.requests) == 5 and server.connections == 5


def test_a_connection_closed_while_the_request_is_sent_is_retried_once(servers):
    def close_first_of_each(conn: socket.socket, request: bytes) -> bool:
        if len(server.requests) == 2:  # the second request: close without an answer
            conn.shutdown(socket.SHUT_RDWR)
            return False
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        return True
    server = servers(close_first_of_each)
    target = server.target()
    assert [post(target).status_code for _ in range(3)] == [200, 200, 200]
    assert len(server.requests) == 4  # the dropped one was sent again on a new connection


def test_chunked_answers_are_read_and_huge_ones_capped(servers):
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: 1\r\n\r\n")
    server = servers(answer(chunked))
    target = server.target()
    assert [(o.status_code, o.body) for o in (post(target), post(target))] == [(200, b"abcde")] * 2
    assert server.connections == 1

    huge = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1000\r\n" + b"x" * 4096
    big = servers(answer(huge + b"\r\n" + b"1000\r\n" + b"y" * 4096 + b"\r\n0\r\n\r\n"))
    outcome = post(big.target(), max_bytes=1024)
    assert outcome.status_code == 200 and outcome.body == b"x" * 1024
    post(big.target(), max_bytes=1024)
    assert big.connections == 2, "an answer not read to its end is not reused"


def test_interim_answers_are_skipped_and_a_close_is_honoured(servers):
    server = servers(answer(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\n"
                            b"Connection: close\r\nContent-Length: 2\r\n\r\nok"))
    assert (post(server.target()).status_code, post(server.target()).status_code) == (202, 202)
    assert server.connections == 2


def test_one_deadline_covers_an_answer_dripped_a_byte_at_a_time(servers):
    def drip(conn: socket.socket, request: bytes) -> bool:
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100:
            conn.sendall(bytes([byte]))
            time.sleep(0.05)
        return False
    server = servers(drip)
    started = time.monotonic()
    outcome = post(server.target(), timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert outcome.status_code is None and outcome.timed_out
    assert "timed out" in outcome.error.lower()


def test_a_refused_address_moves_on_to_the_next_vetted_one(servers):
    server = servers(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
    outcome = post(server.target(addresses=("127.0.0.2", "127.0.0.1")))
    assert outcome.status_code == 200 and len(server.requests) == 1


def test_a_redirect_is_an_answer_not_followed(servers):
    server = servers(answer(b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\n"
                            b"Content-Length: 0\r\n\r\n"))
    assert post(server.target()).status_code == 302 and len(server.requests) == 1


def test_the_certificate_is_checked(servers, tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=hooks.example", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = servers(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), wrap=context)
    outcome = post(server.target(scheme="https", host="hooks.example"))
    assert outcome.status_code is None and not outcome.timed_out
    assert "certificate verify failed" in outcome.error
    assert server.requests == []


@pytest.mark.parametrize("headers", [{"webhook-id": "a\r\nX-Injected: 1"},
                                     {"X-Bad\r\nName": "v"}, {"Host": "elsewhere"}])
def test_no_header_can_split_the_request_or_replace_the_host(servers, headers):
    server = servers(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
    with pytest.raises(ValueError):
        http.post(target=server.target(), body=b"{}", headers=headers, timeout=1,
                  max_bytes=10)
    assert server.requests == []
