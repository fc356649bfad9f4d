"""What goes wrong in real life: broken or hostile templates, stuck rows, odd headers,
suppressed addresses, retried two-step sends, hostile request bodies."""

from datetime import timedelta

import pytest
from django.utils import timezone

from comms.dispatch import deliveries_sweep
from comms.models import Delivery, DeliveryEvent, Suppression
from comms.tasks import send_delivery
from config.celery import app
from tests.conftest import TICKET, guest


def _template(api, text):
    response = api.post("/comms/v1/api/comms/template", {"name": "t", "subject": "s",
                                                         "textBody": text})
    return response


def _send(api, event_id, template_id, **fields) -> Delivery:
    response = api.post("/checkin/v1/api/guest", guest(event_id, template_id, **fields))
    assert response.status_code == 200, response.content
    return Delivery.objects.get(id=response.json()["attendeeInvitationId"])


@pytest.mark.parametrize("source", [
    "{{ firstName | nosuchfilter }}",
    "{% if firstName is nosuchtest %}x{% endif %}",
    '{% include "other.html" %}',
    '{% extends "base.html" %}',
    '{% import "macros" as m %}',
    "{{ 'a' * 100000000 }}",  # past a render limit with any data: refused at save
    "{{ 2 ** 100000000 }}",
])
def test_templates_that_cannot_work_are_refused_at_save(api, source):
    response = _template(api, source)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "template_syntax_error"


@pytest.mark.parametrize("source", [
    "{{ 1 / 0 }}",
    "{{ [1, 2] + 3 }}",
    # Past a render limit with a send's data only (the sample data's attendee id passes).
    "{{ 'a' * (1 if attendeeId == '00000000-0000-4000-8000-000000000000' else 100000000) }}",
    "{{ 2 ** (1 if attendeeId == '00000000-0000-4000-8000-000000000000' else 100000000) }}",
])
def test_templates_failing_at_render_fail_only_their_delivery(api, sendgrid, event_id, source):
    template = _template(api, source).json()["id"]
    delivery = _send(api, event_id, template)
    assert delivery.status == "failed" and delivery.failure_type == "template_error"
    assert sendgrid.attempts == 0


def test_unreadable_rate_limit_reset_falls_back_to_backoff(api, sendgrid, event_id,
                                                          template_id):
    sendgrid.fail_next(1, 429, headers={"X-RateLimit-Reset": "soon"})
    assert _send(api, event_id, template_id).status == "sent"


def test_huge_rate_limit_reset_is_capped(api, sendgrid, settings, event_id, template_id):
    settings.HERALD_RETRY_MAX_SECONDS = 600
    sendgrid.fail_next(1, 429, headers={"X-RateLimit-Reset": "1e300"})
    delivery = _send(api, event_id, template_id)
    retry = DeliveryEvent.objects.get(delivery=delivery, name="comms.retry_scheduled")
    assert 600 <= retry.detail["retryInSeconds"] <= 601


def test_retry_sends_the_content_rendered_first(api, sendgrid, settings, event_id,
                                                template_id):
    settings.HERALD_RETRY_BASE_SECONDS = 60
    sendgrid.fail_next(1, 503)
    delivery = _send(api, event_id, template_id)
    assert delivery.status == "queued"
    api.put(f"/comms/v1/api/comms/template/{template_id}", {**TICKET, "subject": "Changed"})
    Delivery.objects.filter(id=delivery.id).update(next_attempt_at=timezone.now())
    send_delivery.delay(str(delivery.id))
    assert sendgrid.messages[0].body["subject"] == "Your ticket for Spring Gala"
    delivery.refresh_from_db()
    assert delivery.status == "sent" and delivery.template_version == 1


def test_sweeper_fails_a_delivery_that_killed_its_worker_every_time(api, settings, event_id,
                                                                    template_id):
    settings.HERALD_SEND_MAX_ATTEMPTS = 3
    delivery = _send(api, event_id, template_id)
    Delivery.objects.filter(id=delivery.id).update(
        status="sending", attempts=3, claimed_at=timezone.now() - timedelta(hours=1))
    deliveries_sweep()
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.failure_type == "transient"


def test_sweeper_does_not_re_enqueue_the_same_rows_every_run(api, settings, event_id,
                                                            template_id):
    settings.HERALD_EMAIL_PROVIDER = "sendgrid"
    settings.SENDGRID_API_KEY = ""  # misconfigured: every attempt is released, not failed
    app.conf.task_eager_propagates = False  # as in a worker: the sweep itself carries on
    api.client.post("/checkin/v1/api/guest", guest(event_id, template_id), format="json")
    Delivery.objects.update(created_at=timezone.now() - timedelta(hours=1))
    assert deliveries_sweep() == 1
    assert deliveries_sweep() == 0  # just re-enqueued: it waits another grace period
    delivery = Delivery.objects.get()
    assert delivery.status == "queued" and delivery.attempts == 0


def test_bounced_address_is_suppressed_for_later_sends(sandbox_api, event_id, template_id):
    first = _send(sandbox_api, event_id, template_id, email="Bounce@Example.com")
    assert first.status == "bounced"
    suppression = Suppression.objects.get()
    assert (suppression.address, suppression.reason) == ("bounce@example.com", "bounced")
    second = _send(sandbox_api, event_id, template_id, email="bounce@example.com")
    assert second.status == "suppressed" and second.provider_message_id == ""
    failed = DeliveryEvent.objects.get(delivery=second, name="comms.failed")
    assert "550 5.1.1 No such user" in failed.detail["reason"]
    listed = sandbox_api.get("/comms/v1/api/comms/suppression?email=bounce@example.com").json()
    assert [s["reason"] for s in listed["items"]] == ["bounced"]
    removed = sandbox_api.client.delete("/comms/v1/api/comms/suppression/bounce@example.com",
                                        {"reason": "fixed their mailbox"}, format="json")
    assert removed.status_code == 200 and removed.json()["removedReason"] == "fixed their mailbox"
    assert Suppression.objects.get().removed_at is not None
    third = _send(sandbox_api, event_id, template_id, email="bounce@example.com")
    assert third.status == "bounced"  # sent again (and the sandbox bounces it again)


def test_suppression_removal_needs_a_reason_and_an_active_row(api):
    assert api.client.delete("/comms/v1/api/comms/suppression/x@example.com", {},
                             format="json").status_code == 400
    assert api.client.delete("/comms/v1/api/comms/suppression/x@example.com",
                             {"reason": "r"}, format="json").status_code == 404


def test_two_step_send_with_idempotency_key(api, event_id, template_id):
    body = guest(event_id)
    api.post("/checkin/v1/api/guest", body)
    send = {"attendeeId": body["id"], "templateId": template_id}
    first = api.post("/comms/v1/api/comms/send", send, HTTP_IDEMPOTENCY_KEY="k-1")
    again = api.post("/comms/v1/api/comms/send", send, HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert Delivery.objects.count() == 1
    other = api.post("/comms/v1/api/comms/send", {**send, "correlationId": "x"},
                     HTTP_IDEMPOTENCY_KEY="k-1")
    assert other.status_code == 409 and other.json()["error"] == "idempotency_key_reused"
    assert api.post("/comms/v1/api/comms/send", send).status_code == 200  # no key: a new send
    assert Delivery.objects.count() == 2


def test_two_step_send_needs_a_verified_account(api, event_id, template_id):
    body = guest(event_id)
    api.post("/checkin/v1/api/guest", body)
    api.keys.account.verified_for_sending = False
    api.keys.account.save()
    response = api.post("/comms/v1/api/comms/send",
                        {"attendeeId": body["id"], "templateId": template_id})
    assert response.status_code == 403 and Delivery.objects.count() == 0


def test_correlation_id_is_echoed_verbatim(api, event_id, template_id):
    delivery = _send(api, event_id, template_id, correlationId="  order 1  ")
    assert delivery.correlation_id == "  order 1  "
    assert DeliveryEvent.objects.get(name="comms.sent").correlation_id == "  order 1  "


def test_hostile_bodies_get_json_errors(api):
    deep = api.client.post("/checkin/v1/api/guest", data="[" * 100_000,
                           content_type="application/json")
    assert deep.status_code == 400 and deep.json()["error"] == "invalid_json"
    huge = api.client.post("/checkin/v1/api/guest", data='"' + "x" * (6 * 1024 * 1024) + '"',
                           content_type="application/json")
    assert huge.status_code == 413 and huge.json()["error"] == "payload_too_large"
    offset = api.get("/checkin/v1/api/event?offset=100000000000000000000000")
    assert offset.status_code == 400
    assert api.get("/checkin/v1/api/event?_=123").status_code == 200


def test_an_active_suppression_is_kept_once(keys):
    from comms.services import suppressions_add
    from tests.comms.factories import suppression_add

    suppression_add(account_id=keys.account.id, address=" X@Example.com ", reason="bounced",
                    detail="550 first")
    suppressions_add(items=[{"account_id": keys.account.id, "address": "x@example.com",
                             "reason": "spam_reported", "detail": "later"}])
    [row] = Suppression.objects.all()
    assert (row.address, row.reason, row.detail) == ("x@example.com", "bounced", "550 first")


def test_refusals_before_any_view_use_the_familys_shape(api, keys):
    huge = '"' + "x" * (6 * 1024 * 1024) + '"'
    v004 = api.client.post("/v1/contacts", data=huge, content_type="application/json")
    assert v004.status_code == 413 and v004.json()["code"] == "PAYLOAD_TOO_LARGE"
    v003 = api.client.post("/v1/Email/", data=huge, content_type="application/json")
    assert v003.status_code == 413 and "Error" in v003.json()
    from rest_framework.test import APIClient

    admin = APIClient()
    admin.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.admin_key}")
    problem = admin.post("/api/v1/communications/send", data=huge,
                         content_type="application/json")
    assert problem.status_code == 413 and problem.json()["status"] == 413
    assert problem["Content-Type"] == "application/problem+json"
    assert api.client.get("/v1/nothing-here").json()["code"] == "NOT_FOUND"


def test_nul_characters_in_paths_and_queries_are_400s(api):
    listing = api.get("/comms/v1/api/comms/suppression?email=a%00b@example.com")
    assert listing.status_code == 400 and listing.json()["error"] == "validation_error"
    contact = api.client.get("/v1/contacts/a%00b")
    assert contact.status_code == 400 and contact.json()["code"] == "VALIDATION_ERROR"
