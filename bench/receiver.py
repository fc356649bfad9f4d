"""A fast local webhook receiver for the benchmarks: answers 204 after reading each request's
headers and body, on kept-alive HTTP/1.1 connections (a thread each). Prints its URL; counts
requests at GET /count.

    .venv/bin/python bench/receiver.py [port] [answer delay in seconds]

It shares the benchmark machine's cores with Herald, a cost no customer's receiver puts on
Herald's machine, so it parses only what framing needs: 7 µs of CPU per request on one
connection, where ``http.server`` spent 67 µs (and 130-160 µs per delivery in
``bench/webhooks_fanout.py``, ~15 % of a core at 1,000 deliveries/s). A path starting
with /hang is answered after 600 s (``bench/webhooks_fanout.py``'s hung endpoint).
"""

import socket
import sys
import threading
import time

count = 0
_lock = threading.Lock()
_NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def _answer(conn: socket.socket, method: bytes, path: bytes, delay: float) -> None:
    global count
    if method == b"GET" and path == b"/count":
        body = str(count).encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        return
    with _lock:
        count += 1
    if path.startswith(b"/hang"):
        time.sleep(600)
    elif delay:
        time.sleep(delay)
    conn.sendall(_NO_CONTENT)


def _serve(conn: socket.socket, delay: float) -> None:
    """Requests one after another: head, Content-Length body, answer; until the client
    closes, asks to close, or sends what this receiver does not read (chunked, no length)."""
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # else delayed ACKs: ~40 ms
    buffer = b""
    with conn:
        while True:
            while (end := buffer.find(b"\r\n\r\n")) < 0:
                chunk = conn.recv(65536)
                if not chunk or len(buffer) > 65536:
                    return
                buffer += chunk
            lines = buffer[:end].split(b"\r\n")
            buffer = buffer[end + 4:]
            request = lines[0].split(b" ")
            length, close = 0, request[-1] != b"HTTP/1.1"
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection":
                    close = close or value.strip().lower() == b"close"
                elif name == b"transfer-encoding":
                    conn.sendall(_BAD)
                    return
            while len(buffer) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            buffer = buffer[length:]
            _answer(conn, request[0], request[1] if len(request) > 1 else b"/", delay)
            if close:
                return


def serve(port: int = 0, delay: float = 0.0) -> None:
    listener = socket.create_server(("127.0.0.1", port), backlog=128)
    print(f"http://127.0.0.1:{listener.getsockname()[1]}", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_serve, args=(conn, delay), daemon=True).start()


if __name__ == "__main__":
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0,
          float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
