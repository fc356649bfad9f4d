"""Tests for the fake SendGrid server, driven by the real ``sendgrid`` client (no DB)."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from python_http_client.exceptions import (
    BadRequestsError,
    InternalServerError,
    TooManyRequestsError,
    UnauthorizedError,
)
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import CustomArg, Mail, Personalization, To

from tests.fakes.sendgrid_api import FakeSendGrid


@pytest.fixture
def fake() -> Iterator[FakeSendGrid]:
    """A running fake server, stopped after the test."""
    with FakeSendGrid() as server:
        yield server


def make_client(fake: FakeSendGrid, api_key: str | None = None) -> SendGridAPIClient:
    """A real SendGrid client pointed at the fake, with a timeout."""
    client = SendGridAPIClient(api_key or fake.api_key, host=fake.url)
    client.client.timeout = 5
    return client


def make_mail(subject: str | None = "Hello") -> dict[str, Any]:
    """A minimal valid mail/send body."""
    body: dict[str, Any] = {
        "personalizations": [{"to": [{"email": "guest@example.com"}]}],
        "from": {"email": "noreply@herald.test"},
        "content": [{"type": "text/plain", "value": "Hi there"}],
    }
    if subject is not None:
        body["subject"] = subject
    return body


def test_valid_send_returns_202_with_message_id(fake: FakeSendGrid) -> None:
    mail = Mail(
        from_email="noreply@herald.test",
        to_emails="guest@example.com",
        subject="Welcome",
        plain_text_content="Hello",
        html_content="<p>Hello</p>",
    )
    response = make_client(fake).send(mail)

    assert response.status_code == 202
    assert response.body == b""
    message_id = response.headers["X-Message-Id"]
    assert len(message_id) == 22
    assert fake.messages[0].message_id == message_id
    assert fake.messages[0].body["subject"] == "Welcome"
    assert fake.messages[0].headers["Authorization"] == f"Bearer {fake.api_key}"


def test_wrong_key_is_unauthorized(fake: FakeSendGrid) -> None:
    with pytest.raises(UnauthorizedError) as excinfo:
        make_client(fake, api_key="SG.wrong").send(make_mail())
    assert excinfo.value.to_dict["errors"][0]["field"] is None
    assert fake.messages == []


def test_missing_subject_is_bad_request(fake: FakeSendGrid) -> None:
    with pytest.raises(BadRequestsError) as excinfo:
        make_client(fake).send(make_mail(subject=None))
    error = excinfo.value.to_dict["errors"][0]
    assert error["field"] == "subject"
    assert set(error) == {"message", "field", "help"}


def test_subject_in_every_personalization_is_enough(fake: FakeSendGrid) -> None:
    body = make_mail(subject=None)
    body["personalizations"][0]["subject"] = "Per recipient"
    assert make_client(fake).send(body).status_code == 202


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.pop("personalizations"), "personalizations"),
        (lambda b: b.update(personalizations=[{"to": []}]), "personalizations.0.to"),
        (
            lambda b: b["personalizations"][0]["to"].__setitem__(0, {"email": "nope"}),
            "personalizations.0.to.0.email",
        ),
        (lambda b: b.pop("from"), "from.email"),
        (lambda b: b.pop("content"), "content"),
        (lambda b: b.update(content=[{"type": "text/plain", "value": ""}]), "content.0.value"),
        (
            lambda b: b["personalizations"][0].update(custom_args={"n": 1}),
            "personalizations.0.custom_args.n",
        ),
        (lambda b: b.update(custom_args={"n": True}), "custom_args.n"),
        (
            lambda b: b.update(personalizations=[{"to": [{"email": "a@b.co"}]}] * 1001),
            "personalizations",
        ),
    ],
)
def test_invalid_bodies_name_the_field(fake: FakeSendGrid, mutate: Any, field: str) -> None:
    body = make_mail()
    mutate(body)
    with pytest.raises(BadRequestsError) as excinfo:
        make_client(fake).send(body)
    assert excinfo.value.to_dict["errors"][0]["field"] == field


def _personalizations(*emails: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"to": [{"email": email}], **extra} for email in emails]


@pytest.mark.parametrize(
    ("personalizations", "field", "message"),
    [
        (_personalizations("guest@example.com", "other@example.com", "Guest@Example.com"),
         "personalizations",
         "Each unique email address in the personalizations array should only be included "
         "once. You have included [Guest@Example.com] more than once."),
        ([{"to": [{"email": "a@example.com"}]},
          {"to": [{"email": "b@example.com"}], "bcc": [{"email": "a@example.com"}]}],
         "personalizations",
         "Each unique email address in the personalizations array should only be included "
         "once. You have included [a@example.com] more than once."),
        ([{"to": [{"email": f"g{i}@example.com"}]} for i in range(1001)],
         "personalizations",
         "The personalization block is limited to 1000 personalizations per API request. You "
         "have provided 1001 personalizations. Please consider splitting this into multiple "
         "requests and resending your request."),
        (_personalizations("a@example.com", substitutions={"%body%": "é" * 4999 + "xx"}),
         "personalizations.0.substitutions",
         "The total collective size of your substitutions may not exceed 10,000 bytes per "
         "personalization object. You have provided 10,006 bytes."),
        (_personalizations("a@example.com", custom_args={"k": "v" * 10_000}),
         "personalizations.0.custom_args",
         "The total collective size of your custom_args may not exceed 10,000 bytes per "
         "personalization object. You have provided 10,001 bytes."),
    ],
    ids=["address-twice", "address-in-bcc-of-another", "1001-personalizations",
         "substitutions-over-10000-bytes", "custom-args-over-10000-bytes"],
)
def test_what_batching_can_hit_is_refused_as_sendgrid_does(
        fake: FakeSendGrid, personalizations: list[dict[str, Any]], field: str,
        message: str) -> None:
    """SendGrid's limits a batched request can run into: a 400 with SendGrid's error
    document, and nothing accepted."""
    body = {**make_mail(), "personalizations": personalizations}
    with pytest.raises(BadRequestsError) as excinfo:
        make_client(fake).send(body)
    [error] = excinfo.value.to_dict["errors"]
    assert (error["field"], error["message"]) == (field, message)
    assert error["help"].startswith("http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/")
    assert fake.messages == []


def test_request_custom_args_over_10000_bytes_are_refused(fake: FakeSendGrid) -> None:
    body = {**make_mail(), "custom_args": {"k": "v" * 9_999}}
    make_client(fake).send(body)  # 10,000 bytes: at the limit, accepted
    body["custom_args"] = {"k": "v" * 10_000}
    with pytest.raises(BadRequestsError) as excinfo:
        make_client(fake).send(body)
    assert excinfo.value.to_dict["errors"][0]["field"] == "custom_args"
    assert len(fake.messages) == 1


def test_the_limits_themselves_are_accepted(fake: FakeSendGrid) -> None:
    """1,000 personalizations of distinct addresses, 10,000 bytes of substitutions each."""
    body = {**make_mail(), "personalizations": [
        {"to": [{"email": f"g{i}@example.com"}], "substitutions": {"%b%": "x" * 9_997},
         "custom_args": {"i": "v" * 9_999}} for i in range(1000)]}
    assert make_client(fake).send(body).status_code == 202
    assert len(fake.recipients()) == 1000


def test_template_id_needs_no_content(fake: FakeSendGrid) -> None:
    body = make_mail()
    del body["content"]
    body["template_id"] = "d-123"
    assert make_client(fake).send(body).status_code == 202


def test_rate_limit_fault(fake: FakeSendGrid) -> None:
    reset = str(int(time.time()) + 30)
    fake.fail_next(
        1,
        429,
        headers={
            "X-RateLimit-Limit": "600",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": reset,
        },
    )
    client = make_client(fake)
    with pytest.raises(TooManyRequestsError) as excinfo:
        client.send(make_mail())
    assert excinfo.value.headers["X-RateLimit-Reset"] == reset
    assert excinfo.value.headers["X-RateLimit-Remaining"] == "0"
    # The fault is consumed: the next call succeeds.
    assert client.send(make_mail()).status_code == 202
    assert fake.attempts == 2
    assert len(fake.messages) == 1


def test_server_error_fault(fake: FakeSendGrid) -> None:
    fake.fail_next(2, 500)
    client = make_client(fake)
    for _ in range(2):
        with pytest.raises(InternalServerError):
            client.send(make_mail())
    assert client.send(make_mail()).status_code == 202


def test_fault_with_custom_body(fake: FakeSendGrid) -> None:
    fake.fail_next(1, 500, body={"errors": [{"message": "boom", "field": None, "help": None}]})
    with pytest.raises(InternalServerError) as excinfo:
        make_client(fake).send(make_mail())
    assert excinfo.value.to_dict["errors"][0]["message"] == "boom"


def test_delay_triggers_client_timeout(fake: FakeSendGrid) -> None:
    fake.set_delay(1.0)
    client = make_client(fake)
    client.client.timeout = 0.2
    with pytest.raises(OSError):  # TimeoutError / URLError wrapping it
        client.send(make_mail())


def test_recipients_merges_custom_args(fake: FakeSendGrid) -> None:
    mail = Mail(from_email="noreply@herald.test", subject="Batch", plain_text_content="Hi")
    for i, email in enumerate(["a@example.com", "b@example.com"]):
        pers = Personalization()
        pers.add_to(To(email))
        pers.add_custom_arg(CustomArg("delivery_id", str(i)))
        mail.add_personalization(pers, index=i)  # default index=0 prepends (reverses order)
    mail.custom_arg = [CustomArg("tenant", "t1"), CustomArg("delivery_id", "base")]
    response = make_client(fake).send(mail)

    message_id = response.headers["X-Message-Id"]
    assert fake.recipients() == [
        ("a@example.com", {"tenant": "t1", "delivery_id": "0"}, message_id),
        ("b@example.com", {"tenant": "t1", "delivery_id": "1"}, message_id),
    ]
    fake.clear()
    assert fake.recipients() == []
    assert fake.attempts == 0


def test_keep_alive_connection_and_content_length(fake: FakeSendGrid) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    headers = {
        "Authorization": f"Bearer {fake.api_key}",
        "Content-Type": "application/json",
    }
    try:
        for _ in range(3):  # same socket reused for every request
            conn.request("POST", "/v3/mail/send", json.dumps(make_mail()), headers)
            response = conn.getresponse()
            assert response.status == 202
            assert response.getheader("Content-Length") == "0"
            assert response.read() == b""
        conn.request("POST", "/v3/mail/send", "{not json", headers)
        response = conn.getresponse()
        assert response.status == 400
        assert json.loads(response.read())["errors"][0]["field"] is None
        conn.request("GET", "/v3/nothing-here")
        response = conn.getresponse()
        assert response.status == 404
        response.read()
    finally:
        conn.close()
    assert len(fake.messages) == 3


def test_wrong_content_type_is_rejected(fake: FakeSendGrid) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    try:
        conn.request(
            "POST",
            "/v3/mail/send",
            json.dumps(make_mail()),
            {"Authorization": f"Bearer {fake.api_key}", "Content-Type": "text/plain"},
        )
        response = conn.getresponse()
        assert response.status == 400
        response.read()
    finally:
        conn.close()


def test_stop_closes_keep_alive_connections_promptly() -> None:
    fake = FakeSendGrid(api_key="SG.other").start()
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    conn.request("GET", "/v3/nothing-here")
    conn.getresponse().read()
    fake.set_delay(30)
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 2
    with pytest.raises((http.client.HTTPException, OSError)):
        conn.request("GET", "/v3/nothing-here")
        conn.getresponse()
    conn.close()
    fake.stop()  # idempotent
