"""Kept connections (common/http_conn.py) against hostile receivers on real sockets: a retry
only before any byte of an answer and never to another address, idle connections bounded in
number and age, framing decided whatever the header order, poll for high descriptors, threads
and forks never sharing a connection (a review of 661f8c0)."""

import selectors
import socket
import threading
import time

import pytest

from common import http, http_conn
from common.ssrf import Target
from tests.webhooks.test_http_conn import post, servers  # noqa: F401  (fixture)

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture(autouse=True)
def _fresh_pool():
    http_conn._forget()
    yield
    http_conn._forget()


# Check (holds): a dripped TLS handshake is cut by the socket timeout (_ssl's own deadline) ---
def test_tls_handshake_dripped_is_cut_by_the_deadline():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def drip():
        conn, _ = listener.accept()
        conn.recv(65536)  # the ClientHello
        conn.sendall(b"\x16\x03\x03\x40\x00")  # a handshake record of 16 KiB...
        for _ in range(12):  # ...dripped a byte every 0.3 s (each recv's timeout is 0.5 s)
            time.sleep(0.3)
            try:
                conn.sendall(b"\x02")
            except OSError:
                return
        conn.close()
    threading.Thread(target=drip, daemon=True).start()
    target = Target("https", "hooks.example", port, "/", ("127.0.0.1",))
    started = time.monotonic()
    outcome = post(target, timeout=0.5)
    elapsed = time.monotonic() - started
    assert outcome.status_code is None
    assert elapsed < 1.5, f"timeout 0.5 s, the POST took {elapsed:.1f} s"


# F2: a kept connection that answered part of its head, then closed, is sent the request again
def test_a_partial_answer_then_close_is_not_sent_again(servers):  # noqa: F811
    def script(conn, request):
        if len(server.requests) == 2:
            conn.sendall(b"HTTP/1.1 200 OK\r\n")  # the receiver has the request: it answers
            return False                           # ...and dies
        conn.sendall(OK)
        return True
    server = servers(script)
    post(server.target())
    post(server.target())
    assert len(server.requests) == 2, f"sent {len(server.requests)} times"


# F3: after a dropped kept connection, a refused reconnect moves on to the next address --------
def test_a_dropped_kept_connection_then_a_refused_one_does_not_go_to_other_addresses():
    addresses = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
    first = socket.create_server((addresses[0], 0))
    port = first.getsockname()[1]
    listeners = [first] + [socket.create_server((a, port)) for a in addresses[1:]]
    got: list[str] = []
    dropping = threading.Event()

    def serve(listener, address):
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            while conn.recv(65536):
                got.append(address)
                if dropping.is_set():  # it has the request; it dies (stops listening too)
                    listener.shutdown(socket.SHUT_RDWR)
                    listener.close()
                    conn.close()
                    return
                conn.sendall(OK)
    for listener, address in zip(listeners, addresses, strict=True):
        threading.Thread(target=serve, args=(listener, address), daemon=True).start()
    for address in addresses:  # one kept connection per vetted address
        assert post(Target("http", "h.example", port, "/", (address,))).status_code == 200
    dropping.set()
    got.clear()
    outcome = post(Target("http", "h.example", port, "/", addresses))
    assert got == [addresses[0]], f"one POST reached {got}, recorded as {outcome.error!r}"
    assert not outcome.error.startswith("connection failed")  # = "nothing was sent"


# F4: idle connections never expire; one per (host name, port) held forever --------------------
def test_idle_connections_are_bounded_in_number_and_age():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            for key, _ in sel.select(0.1):
                if key.fileobj is listener:
                    sel.register(listener.accept()[0], selectors.EVENT_READ)
                elif key.fileobj.recv(65536):
                    key.fileobj.sendall(OK)
    threading.Thread(target=loop, daemon=True).start()
    for n in range(600):  # 600 host names of one wildcard DNS zone (or 600 ports)
        assert post(Target("http", f"h{n}.example", port, "/", ("127.0.0.1",))).status_code == 200
    time.sleep(1)
    held = sum(len(kept) for kept in http_conn._idle.values())
    stop.set()
    assert held <= 64, f"{held} idle sockets held by one process, with no idle timeout"


# Checks that hold (no finding): desync, both framings, 1xx, garbage, threads ----------------
@pytest.mark.parametrize("first", [
    OK + b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\npoison",  # longer than its length
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n"
    b"2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\npoison",
    b"HTTP/1.1 204 No Content\r\nContent-Length: 39\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\npoison",
])
def test_no_desync(servers, first):  # noqa: F811
    answers = iter([first, OK, OK])
    server = servers(lambda conn, request: conn.sendall(next(answers)) or True)
    post(server.target())
    assert post(server.target()).body == b"ok"


def test_threads_never_share_a_connection(servers):  # noqa: F811
    def echo(conn, request):
        wid = request.split(b"webhook-id: ")[1].split(b"\r\n")[0]
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(wid), wid))
        return True
    server = servers(echo)
    bad = []

    def worker(t):
        for i in range(40):
            wid = f"t{t}-{i}"
            out = http.post(target=server.target(), body=b"{}", headers={"webhook-id": wid},
                            timeout=5, max_bytes=100)
            if out.body != wid.encode():
                bad.append((wid, out))
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not bad


# F5: select() cannot watch an fd >= 1024: every kept connection there is thrown away --------
def test_keep_alive_works_on_high_file_descriptors(servers):  # noqa: F811
    filler = [socket.socket() for _ in range(1100)]
    try:
        server = servers(lambda conn, request: conn.sendall(OK) or True)
        assert [post(server.target()).status_code for _ in range(3)] == [200] * 3
        assert server.connections == 1, f"{server.connections} connections for 3 POSTs"
    finally:
        [s.close() for s in filler]


# F6: framing/keep decisions depend on header order ------------------------------------------
@pytest.mark.parametrize("head", [
    b"Connection: close\r\nConnection: keep-alive\r\nContent-Length: 2",
    b"Transfer-Encoding: gzip\r\nConnection: keep-alive\r\nContent-Length: 2",
])
def test_close_or_a_non_chunked_coding_always_closes(servers, head):  # noqa: F811
    server = servers(lambda conn, request: conn.sendall(
        b"HTTP/1.1 200 OK\r\n" + head + b"\r\n\r\nok") or True)
    post(server.target())
    post(server.target())
    assert server.connections == 2


def test_a_forked_child_neither_sees_nor_breaks_the_parents_kept_connection(servers):  # noqa: F811
    import gc
    import os
    server = servers(lambda conn, request: conn.sendall(OK) or True)
    post(server.target())
    pid = os.fork()
    if pid == 0:  # the child: an empty pool, its copies of the sockets dropped
        gc.collect()
        os._exit(0 if not http_conn._idle else 1)
    assert os.waitpid(pid, 0)[1] == 0
    assert post(server.target()).status_code == 200 and server.connections == 1
