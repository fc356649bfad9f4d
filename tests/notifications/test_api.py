"""Spec 004's notifications: events (read, and created/replaced beyond the spec), send with
every ``to`` format, template variables, deliveries with their trace, integrations."""

from typing import Any

import pytest
from rest_framework.test import APIClient

from comms import channels
from comms.models import Delivery, Status
from contacts.models import Contact, PushToken
from domains.models import SenderDomain

ORDER = {
    "identifier": "order.confirmed",
    "name": "Order confirmed",
    "channels": ["email", "sms"],
    "default_language": "en",
    "templates": [
        {"channel": "email", "language": "en",
         "subject": "Order {{payload.orderNumber}} confirmed",
         "body": "Hi {{name | Guest}}, order {{payload.orderNumber}} from {{app.name}} "
                 "(tier {{contact.meta.tier | standard}}).",
         "html": "<p>Hi {{contact.name | Guest}}</p>"},
        {"channel": "email", "language": "de", "subject": "Bestellung {{payload.orderNumber}}",
         "body": "Hallo {{name | Gast}}"},
        {"channel": "sms", "language": "en", "body": "Order {{payload.orderNumber}} confirmed."},
    ],
}


class V004:
    def __init__(self, raw_key: str, capture) -> None:
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        self.capture = capture

    def __getattr__(self, method: str):
        def call(path: str, body: Any = None, **headers: Any):
            with self.capture(execute=True):
                if method == "get":
                    return self.client.get(path, body, **headers)
                return getattr(self.client, method)(path, body, format="json", **headers)
        return call


@pytest.fixture
def v4(keys, django_capture_on_commit_callbacks, settings) -> V004:
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0
    return V004(keys.live_key, django_capture_on_commit_callbacks)


@pytest.fixture
def sandbox(keys, django_capture_on_commit_callbacks, settings) -> V004:
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0
    return V004(keys.test_key, django_capture_on_commit_callbacks)


@pytest.fixture
def order(v4) -> dict[str, Any]:
    response = v4.post("/v1/events", ORDER)
    assert response.status_code == 201, response.content
    return response.json()["data"]["event"]


def test_events_list_and_detail(v4, order):
    listed = v4.get("/v1/events").json()
    assert listed == {"success": True, "data": {"events": [
        {"identifier": "order.confirmed", "name": "Order confirmed",
         "channels": ["email", "sms"]}]}}
    detail = v4.get("/v1/events/order.confirmed").json()["data"]["event"]
    assert detail["default_language"] == "en"
    assert {(t["channel"], t["language"]) for t in detail["templates"]} == {
        ("email", "en"), ("email", "de"), ("sms", "en")}
    missing = v4.get("/v1/events/order.shipped")
    assert missing.status_code == 404
    assert missing.json()["code"] == "NOT_FOUND"


def test_put_replaces_an_event_and_bumps_template_versions(v4, order):
    changed = {**ORDER, "templates": [
        {**ORDER["templates"][0], "subject": "Confirmed: {{payload.orderNumber}}"},
        ORDER["templates"][2]]}
    response = v4.put("/v1/events/order.confirmed", changed)
    assert response.status_code == 200, response.content
    templates = {(t["channel"], t["language"]): t
                 for t in response.json()["data"]["event"]["templates"]}
    assert set(templates) == {("email", "en"), ("sms", "en")}
    assert templates[("email", "en")]["version"] == 2
    assert templates[("sms", "en")]["version"] == 1
    created = v4.put("/v1/events/user.welcome", {**ORDER, "identifier": "user.welcome"})
    assert created.status_code == 201


@pytest.mark.parametrize(("changes", "needle"), [
    ({"channels": ["email", "fax"]}, "channels"),
    ({"channels": []}, "channels"),
    ({"identifier": "no spaces"}, "identifier"),
    ({"templates": [{"channel": "email", "subject": "{{ x", "body": "b"},
                    ORDER["templates"][2]]}, "templates[0].subject"),
    ({"templates": [ORDER["templates"][2]]}, "missing: email"),
])
def test_bad_events_are_refused(v4, changes, needle):
    response = v4.post("/v1/events", {**ORDER, **changes})
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR" and needle in body["error"], body


def test_send_to_an_email_renders_the_templates_variables(v4, order, keys):
    response = v4.post("/v1/send/order.confirmed/email", {
        "to": {"email": "ann@example.com", "name": "Ann", "tier": "gold"},
        "payload": {"orderNumber": "ORD-123"}})
    assert response.status_code == 200, response.content
    [entry] = response.json()["deliveries"]
    delivery = Delivery.objects.get(id=entry["email"])
    assert (delivery.status, delivery.event_name) == (Status.SENT, "order.confirmed")
    assert delivery.subject == "Order ORD-123 confirmed"
    assert delivery.text_body == "Hi Ann, order ORD-123 from Acme Events (tier gold)."
    assert delivery.html_body == "<p>Hi Ann</p>"
    assert Contact.objects.get(id=delivery.owner_id).meta == {"tier": "gold"}


def test_language_falls_back_and_fallback_text_applies(v4, order):
    german = v4.post("/v1/send/order.confirmed/email",
                     {"to": "nobody@example.com", "language": "de-AT",
                      "payload": {"orderNumber": "7"}}).json()
    french = v4.post("/v1/send/order.confirmed/email",
                     {"to": "nobody@example.com", "language": "fr",
                      "payload": {"orderNumber": "8"}}).json()
    de = Delivery.objects.get(id=german["deliveries"][0]["email"])
    fr = Delivery.objects.get(id=french["deliveries"][0]["email"])
    assert (de.subject, de.text_body) == ("Bestellung 7", "Hallo Gast")
    assert fr.subject == "Order 8 confirmed"
    assert fr.text_body.startswith("Hi Guest,")


def test_three_recipients_on_email_and_sms_make_six_deliveries_with_traces(sandbox, v4, order):
    response = sandbox.post("/v1/send/order.confirmed", {
        "to": [{"email": f"p{n}@example.com", "phone": f"+1415555{n:04d}"} for n in range(3)],
        "payload": {"orderNumber": "ORD-9"}})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True and len(body["deliveries"]) == 6
    assert sorted(next(iter(d)) for d in body["deliveries"]) == ["email"] * 3 + ["sms"] * 3
    for entry in body["deliveries"]:
        [(channel, uuid)] = entry.items()
        trace = sandbox.get(f"/v1/deliveries/{uuid}/trace").json()["data"]
        assert trace["delivery"]["channel"] == channel
        assert trace["delivery"]["status"] == "delivered"
        assert [t["event"] for t in trace["timeline"]][:2] == ["comms.sent", "comms.delivered"]
        assert trace["content"]["text"].startswith("Order ORD-9") or "ORD-9" in (
            trace["content"]["subject"])


def test_missing_identifier_and_integration_are_reported(v4, order, keys):
    response = v4.post("/v1/send/order.confirmed", {"to": "ann@example.com",
                                                    "payload": {"orderNumber": "1"}})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True  # queued: email; refused: sms (tests/notifications/
    assert [next(iter(d)) for d in body["deliveries"]] == ["email"]  # test_partial_send.py)
    assert body["errors"] == [{"code": "INTEGRATION_MISSING",
                               "message": "No sms integration configured", "channel": "sms",
                               "recipient": None, "retryable": False}]
    channels.integration_save(account=keys.account, provider="twilio",
                              config={"from_number": "+15005550006"},
                              credentials={"account_sid": "AC1", "auth_token": "x"})
    only_sms = v4.post("/v1/send/order.confirmed/sms", {"to": "ann@example.com"})
    assert only_sms.status_code == 400
    assert only_sms.json()["errors"][0]["code"] == "MISSING_IDENTIFIER"
    assert Delivery.objects.filter(channel="sms").count() == 0


@pytest.mark.parametrize(("to", "code", "status"), [
    ("not-an-email@", "INVALID_EMAIL", 400),
    ("+1234", "INVALID_PHONE", 400),
    ("550e8400-e29b-41d4-a716-446655440000", "NOT_FOUND", 404),
    (17, "VALIDATION_ERROR", 400),
    ([], "VALIDATION_ERROR", 400),
])
def test_bad_recipients(v4, order, to, code, status):
    response = v4.post("/v1/send/order.confirmed/email", {"to": to})
    assert response.status_code == status, response.content
    assert response.json()["code"] == code
    assert not Delivery.objects.exists()
    assert not Contact.objects.exists()


def test_unknown_event_and_unverified_sender(v4, order, keys):
    unknown = v4.post("/v1/send/order.shipped", {"to": "ann@example.com"})
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "Event 'order.shipped' not found",
                              "code": "EVENT_NOT_FOUND"}
    unverified = v4.post("/v1/send/order.confirmed/email",
                         {"to": "ann@example.com", "from": "billing@acme.example"})
    assert unverified.status_code == 403
    assert unverified.json()["code"] == "UNVERIFIED_SENDER"
    SenderDomain.objects.create(account=keys.account, domain="acme.example", verified=True,
                                enabled=True, provider="dev")
    verified = v4.post("/v1/send/order.confirmed/email",
                       {"to": "ann@example.com", "from": "billing@acme.example",
                        "overrides": {"email": {"subject": "Custom subject"}}})
    assert verified.status_code == 200, verified.content
    delivery = Delivery.objects.get(id=verified.json()["deliveries"][0]["email"])
    assert delivery.subject == "Custom subject"
    assert not Delivery.objects.exclude(id=delivery.id).exists()


def test_push_sends_to_each_token_and_external_ids_resolve(sandbox, v4, keys):
    v4.post("/v1/events", {"identifier": "ping", "channels": ["push"], "templates": [
        {"channel": "push", "subject": "Ping", "body": "Hello {{contact.name}}"}]})
    contact = Contact.objects.create(account=keys.account, external_id="ext_user_123",
                                     name="Bo")
    for token in ("ExponentPushToken[a1]", "ExponentPushToken[b2]"):
        PushToken.objects.create(contact=contact, token=token, provider="expo")
    response = sandbox.post("/v1/send/ping", {"to": "ext_user_123"})
    assert response.status_code == 200, response.content
    assert len(response.json()["deliveries"]) == 2
    assert set(Delivery.objects.values_list("recipient", flat=True)) == {
        "ExponentPushToken[a1]", "ExponentPushToken[b2]"}


def test_deliveries_list_filters_and_pages(sandbox, v4, order):
    for n in range(3):
        sandbox.post("/v1/send/order.confirmed/email", {"to": f"x{n}@example.com"})
    sandbox.post("/v1/send/order.confirmed/email", {"to": "bounce@example.com"})
    page = sandbox.get("/v1/deliveries", {"limit": 2}).json()
    assert page["success"] is True
    data = page["data"]
    assert (data["total"], data["limit"], data["offset"], len(data["deliveries"])) == (
        4, 2, 0, 2)
    failed = sandbox.get("/v1/deliveries", {"status": "failed"}).json()["data"]
    assert [d["recipient"] for d in failed["deliveries"]] == ["bounce@example.com"]
    assert failed["deliveries"][0]["error"]
    assert sandbox.get("/v1/deliveries", {"event": "order.confirmed", "channel": "sms"}).json()[
        "data"]["total"] == 0
    assert sandbox.get("/v1/deliveries", {"status": "weird"}).status_code == 400
    assert sandbox.get("/v1/deliveries/not-a-uuid/trace").status_code == 404


def test_integrations_strip_secrets(v4, keys):
    channels.integration_save(account=keys.account, provider="twilio",
                              config={"from_number": "+15005550006"},
                              credentials={"account_sid": "AC1", "auth_token": "s3cr3t"})
    body = v4.get("/v1/integrations").json()
    assert body["success"] is True
    rows = body["data"]["integrations"]
    assert [(r["channel"], r["provider"], r["status"]) for r in rows] == [
        ("email", "outbox", "active"), ("sms", "twilio", "active")]
    assert "s3cr3t" not in str(body) and "AC1" not in str(body)
    sms_only = v4.get("/v1/integrations", {"channel": "sms"}).json()["data"]["integrations"]
    assert [r["provider"] for r in sms_only] == ["twilio"]


def test_the_daily_quota_answers_429_and_sends_nothing_more(sandbox, order, keys, settings):
    settings.HERALD_DAILY_QUOTA_TEST = 3
    first = sandbox.post("/v1/send/order.confirmed",
                         {"to": [{"email": "a@example.com", "phone": "+14155550001"}]})
    assert first.status_code == 200, first.content
    over = sandbox.post("/v1/send/order.confirmed",
                        {"to": [{"email": "b@example.com", "phone": "+14155550002"}]})
    assert over.status_code == 429, over.content
    assert over.json()["code"] == "RATE_LIMITED" and int(over["Retry-After"]) > 0
    assert Delivery.objects.count() == 2
    assert not Contact.objects.filter(email="b@example.com").exists()


def test_templates_and_push_tokens_are_read_once_per_send_not_per_recipient(sandbox, v4, keys):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    v4.post("/v1/events", {"identifier": "ping", "channels": ["email", "push"],
                           "templates": [{"channel": c, "subject": "Ping", "body": "Hi"}
                                         for c in ("email", "push")]})
    for n in range(30):
        contact = Contact.objects.create(account=keys.account, external_id=f"u{n}",
                                         email=f"u{n}@example.com")
        PushToken.objects.create(contact=contact, token=f"ExponentPushToken[d{n}]",
                                 provider="expo")
    with CaptureQueriesContext(connection) as queries:
        response = sandbox.post("/v1/send/ping", {"to": [f"u{n}" for n in range(30)]})
    assert response.status_code == 200, response.content
    assert len(response.json()["deliveries"]) == 60
    sqls = [q["sql"] for q in queries.captured_queries]
    claim = next(i for i, sql in enumerate(sqls) if "SET status = 'sending'" in sql)
    reads = [sql for sql in sqls[:claim] if sql.startswith("SELECT")]  # the send, not dispatch
    assert sum('FROM "templates_messagetemplate"' in sql for sql in reads) == 1
    assert sum('FROM "contacts_pushtoken"' in sql for sql in reads) == 1
