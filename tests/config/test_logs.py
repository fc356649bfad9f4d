"""Structured logs (issue #20, Operations 3): every line a JSON object with the request id, and
the account and the delivery where known; one line per delivery state change; no secret or
key in any line, at DEBUG with SQL logging on, after a workload that handles every kind of
secret Herald holds."""

import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import structlog
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import account_create
from common import logs, request_id
from common.request_id import RequestIdFilter
from comms import unsubscribe
from comms.channels import integration_save
from comms.models import Delivery
from comms.unsubscribe import Recipient
from config.celery import app as celery_app
from guests.models import Attendee
from guests.tokens import checkin_token, ticket_token
from tests.conftest import TICKET, guest

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
LOGGERS = ("", "herald.deliveries", "axes", "django.db.backends")


class Captured:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.text.splitlines() if line.startswith("{")]


@pytest.fixture
def captured() -> Iterator[Captured]:
    """Every log line at DEBUG (SQL statements and their parameters included) through the
    production formatter (JSON). Every app's tasks imported first, as a worker does: the
    first publish of a task not imported yet has Celery's Django fix-up run django.setup(),
    which configures logging again (our handler with it)."""
    celery_app.loader.import_default_modules()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logs.formatter("json"))
    saved = {name: logging.getLogger(name).level for name in LOGGERS}
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    connection.force_debug_cursor = True
    try:
        yield Captured(stream)
    finally:
        connection.force_debug_cursor = False
        logging.getLogger().removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _client(keys, key: str | None = None) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key or keys.live_key}",
                       HTTP_OCP_APIM_SUBSCRIPTION_KEY=keys.subscription_key)
    return client


def _event_and_template(client) -> tuple[str, str]:
    event = client.post("/checkin/v1/api/event", {"name": "Spring Gala"}, format="json")
    template = client.post("/comms/v1/api/comms/template", TICKET, format="json")
    assert event.status_code == 201 and template.status_code == 201
    return event.json()["id"], template.json()["id"]


@pytest.mark.django_db(transaction=True)
def test_a_send_is_one_json_line_per_state_change_with_request_account_and_delivery(
        sendgrid, captured):
    """The atomic send in a real request (no test transaction: on-commit work runs as in
    production, the eager send task inside the request)."""
    keys = account_create(name="Acme Events")
    client = _client(keys)
    event_id, template_id = _event_and_template(client)
    body = guest(event_id, template_id)
    response = client.post("/checkin/v1/api/guest", body, format="json",
                           HTTP_X_REQUEST_ID="req-logs-0001")
    assert response.status_code == 200, response.content
    delivery = Delivery.objects.get(owner_id=body["id"])
    assert delivery.status == "sent"
    lines = captured.lines()
    assert lines and all({"event", "level", "logger", "timestamp", "request_id"} <= set(line)
                         for line in lines)
    states = [line for line in lines if line.get("delivery_id") == str(delivery.id)
              and line["logger"] == "herald.deliveries"]
    assert [line["status"] for line in states] == ["queued", "sending", "sent"]
    for line in states:
        assert line["request_id"] == "req-logs-0001"
        assert line["account"] == str(keys.account.id)
        assert line["event"] == f"delivery {line['status']}"
    assert states[-1]["provider"] == "sendgrid"
    # a line of the request that is not about a delivery still says whose request it was
    missing = client.get(f"/checkin/v1/api/event/{uuid.uuid4()}",
                         HTTP_X_REQUEST_ID="req-logs-0002")
    assert missing.status_code == 404
    [not_found] = [line for line in captured.lines() if line["logger"] == "django.request"
                   and line["request_id"] == "req-logs-0002"]
    assert not_found["account"] == str(keys.account.id) and not_found["mode"] == "live"
    assert not_found["status_code"] == 404


@pytest.mark.django_db(transaction=True)
def test_a_cancel_and_a_bounce_are_lines_too(settings, captured):
    settings.HERALD_EMAIL_PROVIDER = "sandbox"
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0
    keys = account_create(name="Acme Events")
    client = _client(keys)
    event_id, template_id = _event_and_template(client)
    bounced = guest(event_id, template_id, email="bounce@example.com")
    assert client.post("/checkin/v1/api/guest", bounced, format="json").status_code == 200
    later = guest(event_id, template_id,
                  sendAt=(timezone.now() + timedelta(days=30)).isoformat())
    assert client.post("/checkin/v1/api/guest", later, format="json").status_code == 200
    scheduled = Delivery.objects.get(owner_id=later["id"])
    assert client.delete(f"/comms/v1/api/comms/send/{scheduled.id}").status_code in (200, 204)

    def statuses(delivery_id) -> list[str]:
        return [line["status"] for line in captured.lines()
                if line["logger"] == "herald.deliveries"
                and line["delivery_id"] == str(delivery_id)]

    assert statuses(scheduled.id) == ["scheduled", "cancelled"]
    bounce = Delivery.objects.get(owner_id=bounced["id"])
    assert bounce.status == "bounced"
    assert statuses(bounce.id) == ["queued", "sending", "sent", "bounced"]


def test_delivery_lines_cost_nothing_when_switched_off(settings):
    """HERALD_DELIVERY_LOG_LEVEL=WARNING: the rows are not even read."""
    logger = logging.getLogger("herald.deliveries")
    saved = logger.level
    logger.setLevel(logging.WARNING)

    def rows():
        raise AssertionError("read while the logger is off")
        yield

    try:
        logs.delivery_states("sent", rows())
        logs.delivery_rows(rows())
    finally:
        logger.setLevel(saved)


@pytest.mark.django_db(transaction=True)
def test_no_secret_or_key_in_any_log_line(settings, sendgrid, smtp, captured):
    """Every kind of secret, used the way callers and providers use them, with DEBUG lines of
    every library (python-http-client logs its request headers) and SQL with parameters."""
    keys = account_create(name="Acme Events")
    client = _client(keys)
    secrets = {"live key": keys.live_key, "test key": keys.test_key,
               "subscription key": keys.subscription_key,
               "SendGrid API key": sendgrid.api_key}
    event_id, template_id = _event_and_template(client)
    # a send through SendGrid (its API key in a header the HTTP client logs at DEBUG)
    body = guest(event_id, template_id)
    assert client.post("/checkin/v1/api/guest", body, format="json").status_code == 200
    # a test-key send and a wrong key, a wrong subscription key
    sandbox = _client(keys, keys.test_key)
    assert sandbox.post("/checkin/v1/api/guest", guest(event_id, template_id),
                        format="json").status_code == 200
    wrong = "live_" + "x" * 40
    secrets["wrong key"] = wrong
    assert _client(keys, wrong).get("/checkin/v1/api/event").status_code == 401
    bad_sub = APIClient()
    bad_sub.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.live_key}",
                        HTTP_OCP_APIM_SUBSCRIPTION_KEY="sub-wrong-Jd83kq")
    secrets["wrong subscription key"] = "sub-wrong-Jd83kq"
    assert bad_sub.get("/checkin/v1/api/event").status_code == 401
    # a webhook endpoint's signing secret
    webhook = client.post("/v1/webhooks", {"url": "https://93.184.215.14/hooks"}, format="json")
    assert webhook.status_code == 201, webhook.content
    secrets["webhook secret"] = webhook.json()["webhook"]["signing_secret"]
    # a provider integration's credentials
    integration_save(account=keys.account, provider="twilio",
                     config={"from_number": "+15551234567"},
                     credentials={"account_sid": "AC" + "1" * 32,
                                  "auth_token": "twilio-token-Pq71zz"})
    secrets["Twilio auth token"] = "twilio-token-Pq71zz"
    # the platform's SMTP password (the fake server offers no AUTH: the send fails)
    settings.HERALD_EMAIL_PROVIDER = "smtp"
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "herald", "smtp-pw-Vb62xx"
    secrets["SMTP password"] = "smtp-pw-Vb62xx"
    client.post("/checkin/v1/api/guest", guest(event_id, template_id, email="b@example.com"),
                format="json")
    # an unsubscribe link: the page, the one-click POST, a damaged one (a logged 4xx)
    token = unsubscribe.token_make(Recipient(keys.account.id, "live", "jane@example.com",
                                             "event-updates"))
    secrets["unsubscribe token"] = token
    page = APIClient()
    assert page.get(f"/u/{token}").status_code == 200
    page.post(f"/u/{token}", "List-Unsubscribe=One-Click",
              content_type="application/x-www-form-urlencoded")
    assert page.get(f"/u/{token[:-3]}xyz").status_code >= 400
    # a ticket's check-in token: let in, then again (a logged 409), and a forged one
    ticket = ticket_token(Attendee.objects.get(id=body["id"]))
    secrets["check-in token"] = ticket
    for _ in range(2):
        client.post("/checkin/v1/api/checkin", {"token": ticket}, format="json")
    forged = checkin_token(uuid.uuid4(), "")[:-2] + "xx"
    secrets["forged token"] = forged
    client.post("/checkin/v1/api/checkin", {"token": forged}, format="json")

    text = captured.text
    loggers = {line["logger"] for line in captured.lines()}
    assert {"django.db.backends", "herald.deliveries", "django.request"} <= loggers
    assert "/u/<redacted>" in text
    leaked = {name for name, value in secrets.items() if value in text}
    assert not leaked, leaked


def test_credentials_in_library_lines_are_masked(captured):
    """What python-http-client (SendGrid's client) logs at DEBUG, a URL with a password (a
    broker's), a token in a query string, and secret-named fields given with a line."""
    logging.getLogger("python_http_client.client").debug(
        "HEADERS: {'Authorization': 'Bearer SG.abc-Secret1', "
        "'Ocp-Apim-Subscription-Key': 'sub-Secret2', 'User-agent': 'sendgrid/6'}")
    logging.getLogger("kombu").warning("Cannot connect to redis://:pw-Secret3@10.0.0.1:6379/0")
    logging.getLogger("urllib3").debug('"GET /hook?token=tok-Secret4&x=1 HTTP/1.1" 200')
    logging.getLogger("comms").info("stored", extra={"password": "pw-Secret5"})
    text = captured.text
    for secret in ("SG.abc-Secret1", "sub-Secret2", "pw-Secret3", "tok-Secret4"):
        assert secret not in text
    assert "sendgrid/6" in text and "10.0.0.1:6379" in text and "x=1" in text
    # a field not among the loggable ones never leaves the record at all
    assert "pw-Secret5" not in text


class _Records(logging.Handler):
    """Keeps each record and how both formatters render it, the short way and through
    structlog's chain, when it is written (the chain reads the bound fields then)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.lines: dict[str, list[tuple[str, str]]] = {"json": [], "text": []}
        self.formatters = {style: logs.formatter(style) for style in self.lines}
        self.addFilter(RequestIdFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        for style, lines in self.lines.items():
            formatter = self.formatters[style]
            lines.append((formatter.format(record),
                          structlog.stdlib.ProcessorFormatter.format(formatter, record)))


def _write_delivery_lines(secret_text: str) -> _Records:
    """Delivery lines of every shape (one, a batch, rows of different statuses, ids that are
    not ints or UUIDs, no account), inside a request with an account bound, kept as records."""
    logger = logging.getLogger("herald.deliveries")
    handler, saved = _Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    account = uuid.uuid4()
    logs.bind(account=str(account), mode="live")
    try:
        with request_id.bound("req-logs-lines"):
            logs.delivery_states("sent", [(uuid.uuid4(), account)], provider="sendgrid")
            logs.delivery_states("failed", [(7, account), (8, None), (12, account)],
                                 provider="smtp",
                                 failure="rejected", attempts=3, reason=secret_text)
            logs.delivery_rows([(9, account, "queued"), ("id/u/odd-Id", "a:b=c", "scheduled")],
                               reason="due")
            logs.delivery_states("bounced", [(11, account)], provider="smtp", attempts=0,
                                 reason='Postfach voll \u2013 "ü" \\ \t')
        logs.delivery_states("cancelled", [(10, None)], reason=secret_text)  # no request
    finally:
        logs.clear()
        logger.removeHandler(handler)
        logger.setLevel(saved)
    return handler


SECRET_TEXT = ("550 from smtp://herald:smtp-pw-Zz7@mx.example.com: Bearer SG.tok-Zz8 "
               "see https://h.example/u/unsub-Zz9?token=q-Zz10")
SECRETS_IN_TEXT = ("smtp-pw-Zz7", "SG.tok-Zz8", "unsub-Zz9", "q-Zz10")


@pytest.mark.parametrize("style", ["json", "text"])
def test_a_delivery_line_is_what_structlog_s_chain_writes(style):
    """Delivery lines are rendered the short way (without the processor chain): the same
    fields, in the same order, masked the same as the chain renders the same record."""
    written = _write_delivery_lines(SECRET_TEXT)
    assert len(written.records) == 8
    assert all(hasattr(record, "_herald_line") for record in written.records)
    for short, chain in written.lines[style]:
        assert len(TIMESTAMP.findall(short)) == 1
        assert TIMESTAMP.sub("<time>", short) == TIMESTAMP.sub("<time>", chain)
        assert not [secret for secret in SECRETS_IN_TEXT if secret in short]
    if style == "json":
        line = json.loads(written.lines["json"][1][0])
        assert line["request_id"] == "req-logs-lines" and line["delivery_id"] == "7"
        assert line["mode"] == "live" and line["status"] == "failed"


def test_no_secret_reaches_a_delivery_line_through_its_free_text(captured):
    """A provider's answer quoted in a reason or a failure (a URL with a password, a bearer
    token, an unsubscribe link, a query token) is masked in the line, written through the
    production handler and formatter, in a batch and alone."""
    delivery_ids = [uuid.uuid4(), uuid.uuid4()]
    logs.delivery_states("failed", [(pk, uuid.uuid4()) for pk in delivery_ids],
                         provider="smtp", failure=SECRET_TEXT, reason=SECRET_TEXT)
    logs.delivery_rows([(delivery_ids[0], None, "queued")], reason=SECRET_TEXT)
    lines = [line for line in captured.lines() if line["logger"] == "herald.deliveries"]
    assert [line["delivery_id"] for line in lines] == [str(pk) for pk in
                                                       [*delivery_ids, delivery_ids[0]]]
    assert all("<redacted>" in line["reason"] for line in lines)
    assert "mx.example.com" in lines[0]["failure"]
    leaked = [secret for secret in SECRETS_IN_TEXT if secret in captured.text]
    assert not leaked, leaked
