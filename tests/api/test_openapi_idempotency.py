"""The schema documents the shared API layer (``api/schema.py``): idempotency keys on every
POST, 429 on every operation, each in its family's error shape; real 409/422/429 answers are
validated by schemathesis against the operation's documented response (body, media type and
headers)."""

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from schemathesis.core import NOT_SET
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.models import ApiKey, IdempotentRequest
from accounts.services import AccountKeys, key_hash
from api import idempotency
from config.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
CHECKS = [status_code_conformance, response_schema_conformance, content_type_conformance,
          response_headers_conformance]
FAMILIES = {  # path prefix: (error component, media type)
    "/checkin/": ("CommsError", "application/json"),
    "/comms/": ("CommsError", "application/json"),
    "/v1/Email/": ("ErrorOut", "application/json"),
    "/v1/Brand/": ("ErrorOut", "application/json"),
    "/api/v1/communications/": ("ProblemDetails", "application/problem+json"),
    "/v1/": ("V004Error", "application/json"),
}


def _operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in schema.raw_schema["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield path, method, operation


def _family(path: str) -> tuple[str, str]:
    return next(shape for prefix, shape in FAMILIES.items() if path.startswith(prefix))


def _error_schema(operation: dict[str, Any], code: str, path: str) -> dict[str, Any]:
    """The family's error component, alone or beside the view's own body for that code."""
    name, media = _family(path)
    documented = operation["responses"][code]["content"][media]["schema"]
    ref = {"$ref": f"#/components/schemas/{name}"}
    assert ref == documented or ref in documented.get("anyOf", []), (path, code, documented)
    return schema.raw_schema["components"]["schemas"][name]


def test_every_operation_documents_429_in_its_familys_shape():
    for path, _, operation in _operations():
        _error_schema(operation, "429", path)
        headers = operation["responses"]["429"]["headers"]
        assert headers["Retry-After"]["required"] is True
        assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(headers)
        for code, response in operation["responses"].items():
            if code.startswith("2"):
                assert "X-RateLimit-Remaining" in response["headers"], (path, code)


def test_every_post_takes_idempotency_keys_and_documents_replays_and_refusals():
    posts = [(path, op) for path, method, op in _operations() if method == "post"]
    assert len(posts) > 20
    for path, operation in posts:
        names = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
        assert {"Idempotency-Key", "X-Idempotency-Key"} <= names, path
        responses = operation["responses"]
        assert "Retry-After" in responses["409"]["headers"]
        assert "still running" in responses["409"]["description"]
        reused = "409" if _family(path)[0] == "CommsError" else "422"  # as each family answers
        assert "different request" in responses[reused]["description"], path
        for code in ("400", "409", reused):
            _error_schema(operation, code, path)
        for code, response in responses.items():
            if code.startswith("2"):
                assert response["headers"]["Idempotent-Replayed"]["schema"]["enum"] == ["true"]
    for method in ("get", "put", "patch", "delete"):  # keys are a POST matter only
        assert all("Idempotency-Key" not in str(op.get("parameters"))
                   for _, m, op in _operations() if m == method)


def test_an_existing_error_response_keeps_its_description_and_gains_the_body():
    domain = schema.raw_schema["paths"]["/comms/v1/api/comms/domain"]["post"]["responses"]
    assert domain["409"]["description"].startswith("Another account's domain")
    assert "still running" in domain["409"]["description"]
    send = schema.raw_schema["paths"]["/comms/v1/api/comms/send"]["post"]
    assert send["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SendRejected"}


# --- real answers against the schema --------------------------------------------------------

@pytest.fixture
def wsgi(keys) -> Iterator[AccountKeys]:
    """Requests go straight to the WSGI app; keep the test's connection open (see
    test_fuzz_api)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield keys
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _call(keys: AccountKeys, method: str, path: str, body: Any = NOT_SET,
          key: str = "live", **headers: str) -> Response:
    """Call the operation through schemathesis and validate the answer against it."""
    raw = keys.admin_key if key == "admin" else keys.live_key
    case = schema[path.split("?")[0]][method].Case(
        body=body, query=dict([path.split("?")[1].split("=")]) if "?" in path else None,
        headers={"Authorization": f"Bearer {raw}",
                 "Ocp-Apim-Subscription-Key": keys.subscription_key, **headers})
    response = case.call()
    case.validate_response(response, checks=CHECKS)
    return response


@pytest.mark.parametrize(("path", "first", "other", "status"), [
    ("/checkin/v1/api/event", {"name": "Gala"}, {"name": "Ball"}, 409),
    ("/v1/contacts", {"email": "a@example.com"}, {"email": "b@example.com"}, 422),
    ("/v1/Brand/", {"Name": "A", "FromEmail": "a@example.com"},
     {"Name": "B", "FromEmail": "b@example.com"}, 422),
])
def test_a_replay_and_a_reused_key_answer_as_documented(wsgi, path, first, other, status):
    created = _call(wsgi, "POST", path, first, **{"Idempotency-Key": "k-1"})
    replay = _call(wsgi, "POST", path, first, **{"X-Idempotency-Key": "k-1"})
    assert replay.status_code == created.status_code and replay.content == created.content
    assert replay.headers["idempotent-replayed"] == ["true"]
    refused = _call(wsgi, "POST", path, other, **{"Idempotency-Key": "k-1"})
    assert refused.status_code == status


@pytest.mark.parametrize(("path", "body", "key", "code"), [
    ("/checkin/v1/api/event", {"name": "Gala"}, "live", "idempotency_request_in_progress"),
    ("/v1/webhooks", {"url": "https://93.184.215.14/h"}, "live", "CONFLICT"),
    ("/api/v1/communications/send", {"subject": "s", "body": "b", "channels": ["email"]},
     "admin", "Conflict"),
])
def test_a_key_still_in_flight_is_a_documented_409_with_retry_after(wsgi, monkeypatch, path,
                                                                    body, key, code):
    monkeypatch.setattr(idempotency, "fingerprint", lambda request: "the same request")
    raw = wsgi.admin_key if key == "admin" else wsgi.live_key
    api_key = ApiKey.objects.get(key_hash=key_hash(raw))
    IdempotentRequest.objects.create(account_id=api_key.account_id, mode=api_key.mode,
                                     key="busy", fingerprint="the same request")
    response = _call(wsgi, "POST", path, body, key, **{"Idempotency-Key": "busy"})
    assert response.status_code == 409 and response.headers["retry-after"] == ["1"]
    assert code in response.content.decode()


@pytest.mark.parametrize(("path", "key"), [
    ("/checkin/v1/api/event", "live"), ("/v1/Email/", "live"), ("/v1/contacts", "live"),
    ("/api/v1/communications/inapp?userId=u", "admin"),
])
def test_a_rate_limited_get_is_a_documented_429(wsgi, settings, path, key):
    settings.HERALD_RATE_LIMIT_REDIS_URL = ""
    settings.HERALD_RATE_LIMIT_LIVE = settings.HERALD_RATE_LIMIT_TEST = 1
    statuses = []
    while 429 not in statuses and len(statuses) < 5:  # two in one second, whenever it ends
        response = _call(wsgi, "GET", path, key=key)
        statuses.append(response.status_code)
    assert statuses[-1] == 429 and response.headers["x-ratelimit-limit"] == ["1"]
    assert int(response.headers["retry-after"][0]) >= 1


def test_the_two_step_send_documents_the_keys_as_every_post_does():
    operation = schema.raw_schema["paths"]["/comms/v1/api/comms/send"]["post"]
    assert {"Idempotency-Key", "X-Idempotency-Key"} <= {p["name"] for p in operation["parameters"]}
    assert "different request" in operation["responses"]["409"]["description"]
    assert _error_schema(operation, "409", "/comms/v1/api/comms/send")["required"] == [
        "error", "message"]
