"""The plumbing every fake provider server in tests/ shares: a threading HTTP server that
tracks its keep-alive connections (so ``stop()`` can cut them) and stays quiet about clients
that went away, and a handler that registers its connection and never logs."""

from __future__ import annotations

import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, fake: Any, handler: type[BaseHTTPRequestHandler]) -> None:
        self.fake = fake
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), handler)

    def close_open_connections(self) -> None:
        """Shut down keep-alive connections still held by handler threads."""
        with self.connections_lock:
            connections = list(self.open_connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore connection errors (clients timing out); report anything else."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class TrackedHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive; the connection is tracked by its ``FakeServer``; no logging."""

    server: FakeServer
    protocol_version = "HTTP/1.1"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.open_connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.open_connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet (and never print a token that travels in a path)."""


class FakeHost:
    """start/stop/``with``/``url`` of a fake provider: one ``FakeServer`` on an ephemeral port
    in a daemon thread. Subclasses set ``handler`` and call ``FakeHost.__init__``."""

    handler: type[BaseHTTPRequestHandler]

    def __init__(self) -> None:
        self._server: FakeServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()  # wakes handlers held back on purpose

    def start(self) -> Any:
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        self._stopping.clear()
        self._server = FakeServer(self, self.handler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and open connections (idempotent)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        server.close_open_connections()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL of the fake (no path): a provider's ``api_base`` or ``host``."""
        return f"http://127.0.0.1:{self.port}"
