"""A line break in a header value (``Hello\\nBcc: v@evil.example``) would add a header: every
API family refuses one in a subject or sender name with its own 400 (issue 15, item 8), and the
message layer folds whatever still carries one onto one line before a provider sees it."""

from typing import Any

import pytest

from common.headers import header_fold, header_problem
from comms.models import Delivery, Status
from comms.queueing import enqueue
from templates.models import MessageTemplate
from tests.conftest import TICKET, guest
from tests.multichannel.test_api import EXAMPLE, Client
from tests.notifications.test_api import ORDER, V004

INJECTED = ["Hello\nBcc: v@evil.example", "Hello\r\nBcc: v@evil.example", "Hello\rBcc: x@y.z",
            "Hello\u2028Bcc: v@evil.example", "Hello\x00Bcc: v@evil.example"]


@pytest.fixture
def v4(keys, django_capture_on_commit_callbacks) -> V004:
    return V004(keys.live_key, django_capture_on_commit_callbacks)


@pytest.fixture
def admin(keys, django_capture_on_commit_callbacks) -> Client:
    return Client(keys.admin_key, django_capture_on_commit_callbacks)


@pytest.mark.parametrize("subject", INJECTED)
def test_spec_004_refuses_a_line_break_in_the_subject_override(v4, subject):
    assert v4.post("/v1/events", ORDER).status_code == 201
    response = v4.post("/v1/send/order.confirmed/email", {
        "to": "ann@example.com", "overrides": {"email": {"subject": subject}}})
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert "overrides.email.subject" in response.json()["error"]
    assert not Delivery.objects.exists()


def test_spec_004_keeps_a_one_line_subject_override(v4):
    assert v4.post("/v1/events", ORDER).status_code == 201
    response = v4.post("/v1/send/order.confirmed/email", {
        "to": "ann@example.com", "overrides": {"email": {"subject": "Hello\tthere "}}})
    assert response.status_code == 200, response.content
    assert Delivery.objects.get().subject == "Hello\tthere "


@pytest.mark.parametrize("subject", INJECTED)
def test_spec_002_refuses_a_line_break_in_the_subject(admin, subject):
    response = admin.post("/api/v1/communications/send",
                          {**EXAMPLE, "subject": subject, "channels": ["Email"]})
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert "subject" in response.json()["errors"], response.json()
    assert not Delivery.objects.exists()


@pytest.mark.parametrize("subject", INJECTED[:4])  # NUL: every family's 400 for NUL
def test_check_in_template_subjects_are_one_line(api, subject):
    response = api.post("/comms/v1/api/comms/template", {**TICKET, "subject": subject})
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "template_syntax_error"
    assert "single line" in response.json()["message"]
    assert not MessageTemplate.objects.exists()


@pytest.mark.parametrize("subject", INJECTED[:2])
def test_spec_004_event_template_subjects_are_one_line(v4, subject):
    email = {**ORDER["templates"][0], "subject": subject}
    response = v4.post("/v1/events", {**ORDER, "templates": [email, ORDER["templates"][2]]})
    assert response.status_code == 400, response.content
    assert "templates[0].subject" in response.json()["error"]


@pytest.mark.parametrize("fields", [
    {"FromName": "Photo Co\r\nBcc: v@evil.example"},
    {"Templates": {"token": {"Subject": "Hi\nBcc: v@evil.example", "TextBody": "b"}}},
])
def test_spec_003_brands_refuse_a_line_break_in_a_header(api, fields: dict[str, Any]):
    response = api.post("/v1/Brand/", {"Name": "Photo Co", "FromEmail": "hello@photo.example",
                                       **fields})
    assert response.status_code == 400, response.content
    assert "single line" in response.json()["Error"], response.json()


def test_header_rule_and_fold():
    assert header_problem("Hello there") is None
    assert header_problem("Tabs\tare fine") is None
    assert all(header_problem(value) for value in INJECTED)
    assert header_fold("Hello \r\n  Bcc: v@evil.example\n") == "Hello Bcc: v@evil.example"
    assert header_fold("Hello\u2028\u2029there") == "Hello there"
    assert header_fold("One line") == "One line"


def test_the_message_layer_folds_what_was_stored_before_the_rule(api, smtp, event_id,
                                                                  template_id, keys):
    """A delivery stored with a CR/LF subject override and a guest named with one (both
    accepted before this rule) go out with one-line headers: no Bcc reaches the server."""
    response = api.post("/checkin/v1/api/guest", guest(
        event_id, template_id, firstName="Jane\r\nBcc: v@evil.example"))
    assert response.status_code in (200, 201), response.content
    template = MessageTemplate.objects.get(id=template_id)
    stored = Delivery.objects.create(
        account=keys.account, template=template, channel="email", recipient="ann@example.com",
        context={"_options": {"subject": "Hello\r\nBcc: v@evil.example"}})
    enqueue(str(stored.id))
    deliveries = list(Delivery.objects.order_by("created_at"))
    assert [d.status for d in deliveries] == [Status.SENT, Status.SENT], [
        (d.status, d.status_reason) for d in deliveries]
    stored.refresh_from_db()
    assert stored.subject == "Hello Bcc: v@evil.example"
    assert sorted(str(m["Subject"]) for m in smtp.messages) == [
        "Hello Bcc: v@evil.example", "Your ticket for Spring Gala"]
    assert all(m["Bcc"] is None for m in smtp.messages)
    for envelope in smtp.envelopes:  # no header line of its own, folded or not
        head = envelope.original_content.split(b"\r\n\r\n")[0]
        assert not any(line.lstrip().lower().startswith(b"bcc:")
                       for line in head.split(b"\r\n")), head
    assert {e.rcpt_tos[0] for e in smtp.envelopes} == {"jane@example.com", "ann@example.com"}
