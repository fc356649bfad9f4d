"""A real local webhook receiver for tests: an HTTP server in a thread that verifies every
request with the ``standardwebhooks`` package, exactly as an integrator's receiver would.

    with WebhookReceiver() as receiver:
        receiver.secret = "whsec_…"        # from POST /v1/webhooks
        receiver.answer(500, 500)          # the next two requests fail, then 200s
        ...
        assert receiver.verified[0].payload["type"] == "comms.sent"
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    payload: Any  # the verified JSON, or None when verification failed
    error: str  # why verification failed ("" when it passed)

    def verifies_with(self, secret: str) -> bool:
        try:
            Webhook(secret).verify(self.body, self.headers)
        except WebhookVerificationError:
            return False
        return True


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b'{"ok":true}'
    delay: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()


class WebhookReceiver:
    def __init__(self, path: str = "/hooks/herald") -> None:
        self.path = path
        self.secret: str | None = None
        self.received: list[Received] = []
        self._answers: deque[Answer] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.path}"

    @property
    def verified(self) -> list[Received]:
        return [r for r in self.received if r.payload is not None]

    def answer(self, *statuses: int) -> None:
        """The next requests are answered with these statuses, in order; then 200."""
        with self._lock:
            self._answers.extend(Answer(status=s) for s in statuses)

    def answer_with(self, answer: Answer, times: int = 1) -> None:
        with self._lock:
            self._answers.extend([answer] * times)

    def types(self) -> list[str]:
        return [r.payload.get("type") or r.payload.get("event") for r in self.verified]

    def _next_answer(self) -> Answer:
        with self._lock:
            return self._answers.popleft() if self._answers else Answer()

    def _verify(self, body: bytes, headers: dict[str, str]) -> tuple[Any, str]:
        if self.secret is None:
            return None, "no secret configured"
        try:
            return Webhook(self.secret).verify(body, headers), ""
        except WebhookVerificationError as exc:
            return None, str(exc)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as two writes

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                answer = receiver._next_answer()
                payload, error = receiver._verify(body, headers)
                with receiver._lock:
                    receiver.received.append(
                        Received(self.path, headers, body, answer.status, payload, error))
                if answer.delay:
                    time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers:
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:
                    pass  # the client gave up (timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def payloads(receiver: WebhookReceiver) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in receiver.verified]
