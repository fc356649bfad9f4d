"""A body over the upload limit (5 MB) is a 413 in each API family's error shape, whether its
size is declared (Content-Length) or not (chunked); the admin keeps Django's answer."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path

import pytest
from django.db import connection
from django.test import RequestFactory
from rest_framework.test import APIClient

from accounts.services import account_create
from config import urls
from tests.fakes.smtp_server import free_port

LIMIT = 5 * 1024 * 1024
OVER = json.dumps({"name": "x" * LIMIT}).encode()
RFC = "https://tools.ietf.org/html/rfc9110#section-15.5."
TOO_LARGE = "The request body is larger than 5 MB."

# (path, the key it needs, the family's 413 body)
FAMILIES = [
    ("/checkin/v1/api/event", "live",
     {"error": "payload_too_large", "message": TOO_LARGE}),
    ("/comms/v1/api/comms/send", "live",
     {"error": "payload_too_large", "message": TOO_LARGE}),
    ("/api/v1/communications/send", "admin",
     {"type": RFC + "14", "title": "Content Too Large", "status": 413, "detail": TOO_LARGE}),
    ("/v1/Email/", "live", {"Error": TOO_LARGE}),
    ("/v1/events", "live", {"error": TOO_LARGE, "code": "PAYLOAD_TOO_LARGE"}),
]
MEDIA = {"/api/v1/communications/send": "application/problem+json"}


def client_for(keys, which: str) -> APIClient:
    client = APIClient()
    raw = keys.admin_key if which == "admin" else keys.live_key
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}",
                       HTTP_OCP_APIM_SUBSCRIPTION_KEY=keys.subscription_key)
    return client


def chunked(body: bytes) -> dict[str, object]:
    """What a WSGI server (gunicorn) gives Django for a chunked body: the decoded bytes, no
    Content-Length."""
    return {"CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked",
            "wsgi.input": BytesIO(body)}


def assert_413(response, path: str, expected: dict) -> None:
    assert response.status_code == 413, response.content[:300]
    assert response.json() == expected
    assert response["Content-Type"] == MEDIA.get(path, "application/json")


@pytest.mark.parametrize(("path", "key", "expected"), FAMILIES)
def test_a_body_over_the_limit_is_a_413_in_the_familys_shape(keys, path, key, expected):
    response = client_for(keys, key).post(path, OVER, content_type="application/json")
    assert_413(response, path, expected)


@pytest.mark.parametrize(("path", "key", "expected"), FAMILIES)
def test_a_chunked_body_over_the_limit_is_a_413_too(keys, path, key, expected):
    response = client_for(keys, key).post(path, b"", content_type="application/json",
                                          **chunked(OVER))
    assert_413(response, path, expected)


@pytest.mark.parametrize("key", ["idem-1", None])
def test_with_or_without_an_idempotency_key(keys, key):
    """The idempotency claim reads the body first (its fingerprint): the same 413."""
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    response = client_for(keys, "live").post("/v1/events", OVER,
                                             content_type="application/json", **headers)
    assert response.status_code == 413
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"


def test_a_chunked_body_within_the_limit_is_read(keys):
    """Before, Django read a body without Content-Length as empty: a 400 for a valid event."""
    body = json.dumps({"name": "Spring Gala"}).encode()
    response = client_for(keys, "live").post("/checkin/v1/api/event", b"",
                                             content_type="application/json", **chunked(body))
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "Spring Gala"


def test_a_body_of_exactly_the_limit_is_not_refused_for_its_size(keys):
    body = json.dumps({"name": ""}).encode()
    body = body[:-2] + b" " * (LIMIT - len(body)) + body[-2:]
    assert len(body) == LIMIT
    response = client_for(keys, "live").post("/checkin/v1/api/event", body,
                                             content_type="application/json")
    assert response.status_code == 400 and response.json()["error"] == "validation_error"


def test_unauthenticated_is_still_a_401_before_the_body_is_read():
    response = APIClient().post("/v1/events", OVER, content_type="application/json")
    assert response.status_code == 401


@pytest.mark.parametrize("path", [path for path, _, _ in FAMILIES])
def test_a_chunked_body_is_not_read_before_authentication(path):
    """Read only when a view parses it, after authentication: a 401 takes none of it (the
    stream's position is what was read)."""
    body = chunked(b"x" * (6 * 1024 * 1024))
    response = APIClient().post(path, b"", content_type="application/json", **body)
    assert response.status_code == 401
    assert body["wsgi.input"].tell() == 0


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_chunked_body_to_an_unknown_path_is_not_read(method):
    body = chunked(b"x" * (6 * 1024 * 1024))
    response = getattr(APIClient(), method)("/nonexistent", content_type="application/json",
                                            **body)
    assert response.status_code == 404
    assert body["wsgi.input"].tell() == 0


def test_a_chunked_body_is_read_one_byte_past_the_limit_never_further(keys):
    body = chunked(b"x" * (6 * 1024 * 1024))
    response = client_for(keys, "live").post("/v1/events", b"", content_type="application/json",
                                             HTTP_IDEMPOTENCY_KEY="idem-2", **body)
    assert response.status_code == 413
    assert body["wsgi.input"].tell() == LIMIT + 1


def test_an_empty_chunked_body_is_an_empty_body(keys):
    """Its end read, its length is known (0): the same answer as ``Content-Length: 0``."""
    client = client_for(keys, "live")
    declared = client.post("/checkin/v1/api/event", b"", content_type="application/json",
                           HTTP_IDEMPOTENCY_KEY="idem-3")
    sent_chunked = client.post("/checkin/v1/api/event", b"", content_type="application/json",
                               HTTP_IDEMPOTENCY_KEY="idem-4", **chunked(b""))
    assert sent_chunked.status_code == declared.status_code == 400
    assert sent_chunked.json() == declared.json()


def test_the_admin_keeps_djangos_answer():
    from django.core.exceptions import RequestDataTooBig

    request = RequestFactory().post("/admin/login/")
    response = urls.handler400(request, RequestDataTooBig("too big"))
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


def test_other_refusals_before_any_view_stay_400():
    from django.core.exceptions import SuspiciousOperation

    request = RequestFactory().post("/v1/events")
    response = urls.handler400(request, SuspiciousOperation("bad header"))
    assert response.status_code == 400
    assert json.loads(response.content)["code"] == "VALIDATION_ERROR"


def _database_url() -> str:
    s = connection.settings_dict
    return (f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST'] or '127.0.0.1'}:"
            f"{s['PORT'] or 5432}/{s['NAME']}")


def _post_chunked(port: int, keys, path: str, body: bytes) -> tuple[int, dict]:
    connection_ = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {keys.live_key}", "Content-Type": "application/json",
               "Ocp-Apim-Subscription-Key": keys.subscription_key}
    parts = (body[i:i + 65536] for i in range(0, len(body), 65536))
    connection_.request("POST", path, body=parts, headers=headers, encode_chunked=True)
    response = connection_.getresponse()
    return response.status, json.loads(response.read())


@contextmanager
def _gunicorn() -> Iterator[int]:
    """The production server (one worker, two threads) on a free port, until it answers."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": _database_url(), "WEB_CONCURRENCY": "1",
           "WEB_THREADS": "2", "HERALD_RATE_LIMIT_LIVE": "0", "LOG_LEVEL": "WARNING"}
    web = subprocess.Popen([str(Path(sys.executable).with_name("gunicorn")), "config.wsgi",
                            "-b", f"127.0.0.1:{port}"], cwd=Path(__file__).parents[2], env=env,
                           start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and web.poll() is None, "gunicorn not up"
                time.sleep(0.2)
        yield port
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=60)


@pytest.mark.django_db(transaction=True)  # committed, so the server sees the account
def test_gunicorn_gives_a_chunked_body_to_the_views_and_a_413_past_the_limit():
    """The production server, really chunked: gunicorn hands Django no Content-Length."""
    keys = account_create(name="Chunked")
    with _gunicorn() as port:
        small = _post_chunked(port, keys, "/checkin/v1/api/event",
                              json.dumps({"name": "Chunked Gala"}).encode())
        big = _post_chunked(port, keys, "/v1/events", OVER)
    assert small[0] == 201 and small[1]["name"] == "Chunked Gala"
    assert big == (413, {"error": TOO_LARGE, "code": "PAYLOAD_TOO_LARGE"})


def _sent_when_answered(port: int, method: str, path: str, size: int) -> tuple[int, int]:
    """Send ``size`` bytes chunked, from a thread, as fast as the server takes them, and read
    the answer meanwhile: its status, and how much of the body the client had handed over
    when it came — what the server read plus what the two sockets' buffers hold (the
    client's send buffer made small, so that is little)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    sent = 0

    def send() -> None:
        nonlocal sent
        chunk = b"x" * 65536
        try:
            sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         "Content-Type: application/json\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n".encode())
            while sent < size:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server closed the connection: it takes no more

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        response = http.client.HTTPResponse(sock)
        response.begin()
        when_answered = sent
        response.read()
    finally:
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes the sender if it waits
        except OSError:  # ENOTCONN: the server already closed it (then the sender has ended)
            pass
        sender.join(timeout=30)
        sock.close()
    return response.status, when_answered


@pytest.mark.django_db
def test_gunicorn_answers_401_and_404_without_reading_a_chunked_body():
    """The security review's finding: the body was read up to the limit before any
    authentication, on every URL (8 chunked 5 MB requests to /nonexistent grew a worker by
    58 MB). Now the answer comes before the server read more than the sockets buffer."""
    size = 6 * 1024 * 1024
    with _gunicorn() as port:
        unauthenticated = _sent_when_answered(port, "POST", "/v1/events", size)
        unknown = _sent_when_answered(port, "GET", "/nonexistent", size)
    assert unauthenticated[0] == 401 and unknown[0] == 404
    assert unauthenticated[1] < 1024 * 1024, unauthenticated
    assert unknown[1] < 1024 * 1024, unknown
