"""Every request gets an id (#17 item 4): the caller's ``X-Request-Id`` when well-formed, else
a new one; answered as ``X-Request-Id`` on every response of every family, errors included
(401, 404, 413, 500), and carried by the request's log lines and the tasks it publishes."""

import io
import json
import logging
import re

import pytest
from django.test import Client
from django.urls import path
from rest_framework.test import APIClient

from common import request_id
from config import urls as site

# (a path of the family that needs a key, the key it takes)
FAMILIES = [
    ("/checkin/v1/api/event", "live"),
    ("/api/v1/communications/send", "admin"),
    ("/v1/Email/", "live"),
    ("/v1/events", "live"),
]
# Reads that succeed with a key (spec 002's only read, the inbox, needs a user).
READS = [("/checkin/v1/api/event", "live"), ("/v1/Email/", "live"), ("/v1/events", "live"),
         ("/v1/webhooks", "live")]
PREFIXES = ["checkin/v1/api/", "api/v1/communications/", "v1/Email/", "v1/"]
OURS = re.compile(r"req-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
TOO_BIG = b'{"name": "' + b"x" * (5 * 1024 * 1024) + b'"}'


def _bug(request):
    raise RuntimeError("a bug")


# This module is also the URLconf of the 500 tests: the site's URLs, plus a view with a bug
# under each family's prefix, and the site's error handlers.
urlpatterns = [path(f"{prefix}bug", _bug) for prefix in PREFIXES] + site.urlpatterns
handler400, handler404, handler500 = site.handler400, site.handler404, site.handler500


def client_for(keys, which: str | None) -> APIClient:
    client = APIClient()
    if which:
        raw = keys.admin_key if which == "admin" else keys.live_key
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}",
                           HTTP_OCP_APIM_SUBSCRIPTION_KEY=keys.subscription_key)
    return client


def assert_ours(response) -> str:
    rid = response["X-Request-Id"]
    assert OURS.fullmatch(rid), rid
    return rid


@pytest.mark.parametrize(("url", "key"), READS)
def test_a_success_has_an_id(keys, url, key):
    response = client_for(keys, key).get(url)
    assert response.status_code == 200, response.content
    assert_ours(response)
    assert request_id.current() is None  # bound to the request only


@pytest.mark.parametrize(("url", "key"), FAMILIES)
def test_an_unauthenticated_request_has_one(db, url, key):
    response = client_for(None, None).get(url)
    assert response.status_code == 401
    assert_ours(response)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_an_unknown_path_has_one(db, prefix):
    response = Client().get(f"/{prefix}no-such-thing", HTTP_X_REQUEST_ID="lost-1")
    assert response.status_code == 404
    assert response["X-Request-Id"] == "lost-1"


@pytest.mark.parametrize(("url", "key"), FAMILIES)
def test_a_body_over_the_limit_has_one(keys, url, key):
    response = client_for(keys, key).post(url, TOO_BIG, content_type="application/json")
    assert response.status_code == 413
    assert_ours(response)


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("prefix", PREFIXES)
def test_a_server_error_has_one(db, prefix):
    response = Client(raise_request_exception=False).get(f"/{prefix}bug",
                                                         HTTP_X_REQUEST_ID="boom-7")
    assert response.status_code == 500
    assert response["X-Request-Id"] == "boom-7"


def test_the_admin_has_one_too(db):
    assert_ours(Client().get("/admin/login/"))


@pytest.mark.parametrize("given", [
    "order-42", "3f1c2d9e-8a4b-4c7d-9e2f-1a2b3c4d5e6f", "01HZX3K9Q7Y5V2N8M4T6R1W0AB",
    "Zm9vYmFy+/=", "svc.api:try_2@edge", "a" * 128,
])
def test_a_well_formed_id_is_honoured(db, given):
    assert Client().get("/v1/nowhere", HTTP_X_REQUEST_ID=given)["X-Request-Id"] == given


@pytest.mark.parametrize("hostile", [
    "", " ", "a" * 129, "two words", "x\r\nSet-Cookie: s=1", "x\nforged log line",
    "<script>alert(1)</script>", "naïve", "-leading-dash", "a;b", 'quo"te', "%0d%0a",
])
def test_a_hostile_id_is_replaced(db, hostile):
    response = Client().get("/v1/nowhere", HTTP_X_REQUEST_ID=hostile)
    assert response["X-Request-Id"] != hostile
    assert_ours(response)


@pytest.fixture
def log() -> io.StringIO:
    """What the site's configured log handler writes (settings.LOGGING), captured."""
    [handler] = [h for h in logging.getLogger().handlers
                 if any(isinstance(f, request_id.RequestIdFilter) for f in h.filters)]
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


def test_the_requests_log_lines_carry_its_id(db, log):
    Client().get("/v1/nowhere", HTTP_X_REQUEST_ID="trace-me-1")
    response = Client().get("/v1/Email/nowhere")
    lines = [json.loads(line) for line in log.getvalue().splitlines()]  # JSON (common.logs)
    assert any(line["request_id"] == "trace-me-1" and line["event"] == "Not Found: /v1/nowhere"
               for line in lines)
    theirs = response["X-Request-Id"]
    assert any(line["request_id"] == theirs and line["event"] == "Not Found: /v1/Email/nowhere"
               for line in lines)
    logging.getLogger("herald.test").warning("outside any request")
    last = json.loads(log.getvalue().splitlines()[-1])
    assert (last["request_id"], last["event"]) == ("-", "outside any request")


def test_ids_are_new_each_time():
    assert len({request_id.accepted(None) for _ in range(100)}) == 100


def test_a_task_published_during_a_request_carries_its_id_and_runs_with_it():
    """Celery's own signals, as a publisher and a worker send them (a real worker's check:
    the message header reaches ``task.request``)."""
    from celery import signals

    from config.celery import app

    headers: dict = {}
    with request_id.bound("req-from-api"):
        signals.before_task_publish.send(sender="comms.send_delivery", headers=headers,
                                         body=None)
    signals.before_task_publish.send(sender="comms.send_delivery", headers=(outside := {}),
                                     body=None)
    assert headers[request_id.TASK_HEADER] == "req-from-api" and outside == {}
    task = app.tasks["comms.send_delivery"]
    task.push_request(id="t-1", **{request_id.TASK_HEADER: "req-from-api"})
    try:
        signals.task_prerun.send(sender=task, task_id="t-1", task=task, args=(), kwargs={})
        assert request_id.current() == "req-from-api"
        signals.task_postrun.send(sender=task, task_id="t-1", task=task, args=(), kwargs={},
                                  retval=None, state="SUCCESS")
        assert request_id.current() is None
    finally:
        task.pop_request()


def test_a_task_without_an_id_leaves_the_requests_own():
    """An eager task inside a request (no message, no header) keeps the request's id."""
    from celery import signals

    from config.celery import app

    task = app.tasks["comms.send_delivery"]
    task.push_request(id="t-2")
    try:
        with request_id.bound("req-eager"):
            signals.task_prerun.send(sender=task, task_id="t-2", task=task, args=(), kwargs={})
            assert request_id.current() == "req-eager"
            signals.task_postrun.send(sender=task, task_id="t-2", task=task, args=(),
                                      kwargs={}, retval=None, state="SUCCESS")
            assert request_id.current() == "req-eager"
    finally:
        task.pop_request()
