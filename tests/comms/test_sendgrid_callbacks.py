"""SendGrid's signed Event Webhook → normalized lifecycle: every event type, dedupe,
reordering, correlation fallbacks, forged/stale signatures, crash recovery."""

import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from comms.callbacks.services import callback_batches_sweep
from comms.models import CallbackBatch, Delivery, DeliveryEvent
from tests.conftest import guest
from tests.fakes.sendgrid_api import FakeSendGrid
from tests.fakes.sendgrid_signing import SendGridSigner, dumps, sendgrid_event


@pytest.fixture
def signer(settings) -> SendGridSigner:
    signer = SendGridSigner()
    settings.SENDGRID_WEBHOOK_PUBLIC_KEY = signer.public_key
    return signer


@pytest.fixture
def sent(api, settings, signer, event_id, template_id) -> Delivery:
    """A ticket sent through the real sendgrid client to the fake SendGrid server."""
    with FakeSendGrid(api_key="SG.cb") as server:
        settings.HERALD_EMAIL_PROVIDER = "sendgrid"
        settings.SENDGRID_API_KEY = server.api_key
        settings.SENDGRID_API_HOST = server.url
        response = api.post("/checkin/v1/api/guest", guest(event_id, template_id))
    delivery = Delivery.objects.get(id=response.json()["attendeeInvitationId"])
    assert delivery.status == "sent" and delivery.provider_message_id
    return delivery


def post(api, signer, events, **overrides):
    body = dumps(events)
    headers = {**signer.headers(body), **overrides}
    with api.capture(execute=True):
        return api.client.generic("POST", "/callbacks/sendgrid", body,
                                  content_type="application/json", **headers)


def ev(delivery, kind, n, **extra):
    return sendgrid_event(kind, delivery_id=str(delivery.id),
                          message_id=delivery.provider_message_id, email=delivery.recipient,
                          event_id=f"evt-{delivery.id}-{n}", **extra)


def test_signed_callbacks_move_a_sent_ticket_to_opened(api, signer, sent):
    response = post(api, signer, [ev(sent, "processed", 1), ev(sent, "delivered", 2),
                                  ev(sent, "open", 3)])
    assert response.status_code == 200
    sent.refresh_from_db()
    assert sent.status == "opened" and sent.delivered_at is not None
    names = list(sent.events.order_by("id").values_list("name", flat=True))
    assert names == ["comms.sent", "comms.processed", "comms.delivered", "comms.opened"]
    assert all(e.correlation_id == "order-2026-0042" for e in sent.events.all())


@pytest.mark.parametrize("kind,extra,status,name", [
    ("processed", {}, "sent", "comms.processed"),
    ("deferred", {"response": "451 try later", "attempt": "1"}, "sent", "comms.deferred"),
    ("delivered", {"response": "250 OK"}, "delivered", "comms.delivered"),
    ("open", {"useragent": "Mozilla"}, "opened", "comms.opened"),
    ("click", {"url": "https://example.com"}, "clicked", "comms.clicked"),
    ("bounce", {"type": "bounce", "reason": "550 5.1.1 No such user", "status": "5.1.1",
                "bounce_classification": "Invalid Address"}, "bounced", "comms.bounced"),
    ("bounce", {"type": "blocked", "reason": "554 blocked by policy"}, "failed",
     "comms.bounced"),
    ("dropped", {"reason": "Bounced Address"}, "dropped", "comms.dropped"),
    ("spamreport", {}, "spam_reported", "comms.spam_reported"),
    ("unsubscribe", {}, "unsubscribed", "comms.unsubscribed"),
    ("group_unsubscribe", {"asm_group_id": 1}, "unsubscribed", "comms.unsubscribed"),
    ("group_resubscribe", {"asm_group_id": 1}, "sent", "comms.resubscribed"),
])
def test_every_event_type(api, signer, sent, kind, extra, status, name):
    assert post(api, signer, [ev(sent, kind, 1, **extra)]).status_code == 200
    sent.refresh_from_db()
    assert sent.status == status
    assert sent.events.filter(name=name).count() == 1


def test_bounce_details_fill_the_422(api, signer, sent):
    post(api, signer, [ev(sent, "delivered", 1),
                       ev(sent, "bounce", 2, type="bounce", reason="550 5.1.1 No such user",
                          bounce_classification="Invalid Address")])
    sent.refresh_from_db()
    assert sent.status == "bounced"  # a bounce after delivered still becomes the failure
    assert (sent.bounce_type, sent.bounce_subtype) == ("bounce", "Invalid Address")
    response = api.post("/comms/v1/api/comms/send", {
        "attendeeId": str(sent.owner_id), "templateId": str(sent.template_id)})
    assert response.status_code == 422
    assert response.json()["failureType"] == "bounced"
    assert response.json()["lastFailureReason"] == "550 5.1.1 No such user"


def test_blocked_bounce_allows_a_resend(api, signer, sent):
    post(api, signer, [ev(sent, "bounce", 1, type="blocked", reason="554 policy")])
    response = api.post("/comms/v1/api/comms/send", {
        "attendeeId": str(sent.owner_id), "templateId": str(sent.template_id)})
    assert response.status_code == 200


def test_duplicate_batches_apply_once(api, signer, sent):
    batch = [ev(sent, "delivered", 1), ev(sent, "open", 2)]
    post(api, signer, batch)
    post(api, signer, batch)
    assert sent.events.filter(name="comms.opened").count() == 1
    assert CallbackBatch.objects.count() == 2


def test_late_events_never_move_backwards(api, signer, sent):
    now = int(time.time())
    post(api, signer, [ev(sent, "open", 2, timestamp=now)])
    post(api, signer, [ev(sent, "delivered", 1, timestamp=now - 5)])
    sent.refresh_from_db()
    assert sent.status == "opened"
    assert sent.delivered_at is not None
    assert sent.events.filter(name="comms.delivered").exists()


def test_out_of_order_within_a_batch(api, signer, sent):
    now = int(time.time())
    post(api, signer, [ev(sent, "click", 3, timestamp=now), ev(sent, "open", 2, timestamp=now),
                       ev(sent, "delivered", 1, timestamp=now - 1)])
    sent.refresh_from_db()
    assert sent.status == "clicked"


def test_correlation_falls_back_to_sg_message_id(api, signer, sent):
    event = ev(sent, "delivered", 1)
    del event["herald_delivery_id"]
    post(api, signer, [event])
    sent.refresh_from_db()
    assert sent.status == "delivered"


def test_unknown_types_and_deliveries_are_skipped_not_fatal(api, signer, sent):
    stranger = sendgrid_event("delivered", delivery_id=str(uuid.uuid4()), message_id="nope",
                              email="x@example.com", event_id="evt-x")
    response = post(api, signer, [{"event": "mystery", "sg_event_id": "m1"}, "not-an-object",
                                  stranger, ev(sent, "delivered", 1)])
    assert response.status_code == 200
    sent.refresh_from_db()
    assert sent.status == "delivered"
    batch = CallbackBatch.objects.get()
    assert (batch.events_total, batch.events_applied) == (2, 1)


@pytest.mark.parametrize("change", ["forged", "missing", "stale", "garbage"])
def test_bad_signatures_are_403_and_store_nothing(api, signer, sent, change):
    events = [ev(sent, "delivered", 1)]
    body = dumps(events)
    if change == "forged":
        headers = SendGridSigner().headers(body)
    elif change == "missing":
        headers = {}
    elif change == "stale":
        headers = signer.headers(body, timestamp=int(time.time()) - 3600)
    else:
        headers = {"HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE": "%%%",
                   "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP": "abc"}
    response = api.client.generic("POST", "/callbacks/sendgrid", body,
                                  content_type="application/json", **headers)
    assert response.status_code == 403
    assert CallbackBatch.objects.count() == 0
    sent.refresh_from_db()
    assert sent.status == "sent"


def test_tampered_body_is_403(api, signer, sent):
    body = dumps([ev(sent, "delivered", 1)])
    headers = signer.headers(body)
    response = api.client.generic("POST", "/callbacks/sendgrid", body.replace("delivered",
                                  "bounce"), content_type="application/json", **headers)
    assert response.status_code == 403


def test_signed_but_malformed_bodies_are_400(api, signer):
    for body in ("{not json", '{"event": "delivered"}'):
        response = api.client.generic("POST", "/callbacks/sendgrid", body,
                                      content_type="application/json", **signer.headers(body))
        assert response.status_code == 400
    assert CallbackBatch.objects.count() == 0


def test_a_stored_batch_survives_a_lost_task(api, signer, sent, settings):
    body = dumps([ev(sent, "delivered", 1)])
    response = api.client.generic("POST", "/callbacks/sendgrid", body,
                                  content_type="application/json", **signer.headers(body))
    assert response.status_code == 200  # on-commit task dropped: as if the broker lost it
    assert callback_batches_sweep() == 0
    CallbackBatch.objects.update(received_at=timezone.now() - timedelta(hours=1))
    assert callback_batches_sweep() == 1
    sent.refresh_from_db()
    assert sent.status == "delivered"
    assert DeliveryEvent.objects.filter(name="comms.delivered").count() == 1


def test_get_is_not_allowed(api):
    assert api.client.get("/callbacks/sendgrid").status_code == 405
