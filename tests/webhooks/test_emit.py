"""Emitting customer webhooks from recorded lifecycle events: every field of the ``comms.*``
and ``delivery.*`` payloads exactly, messages in event order with increasing creation times,
written in the caller's transaction and enqueued when it commits, at a fixed number of
queries (two on PostgreSQL, reading only the columns the payloads need)."""

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from accounts.services import account_create
from comms.models import Delivery, DeliveryEvent
from comms.services import delivery_owner
from guests.models import Attendee, Event
from templates.models import MessageTemplate
from webhooks import catalogue, services
from webhooks.models import Message
from webhooks.tasks import deliver_message

NOW = datetime(2026, 4, 29, 20, 43, 55, 987654, tzinfo=UTC)
OCCURRED = datetime(2026, 4, 29, 20, 42, 10, 999999, tzinfo=UTC)


@pytest.fixture
def endpoint(keys, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    return services.endpoint_create(account=keys.account, url="http://127.0.0.1:9/hook",
                                    enabled_events=list(catalogue.ALL_EVENTS))[0]


@pytest.fixture
def published(monkeypatch) -> list[str]:
    """The webhook ids of the ``webhooks.deliver_message`` tasks published, not run."""
    ids: list[str] = []
    monkeypatch.setattr(deliver_message, "apply_async",
                        lambda args, countdown=None: ids.append(args[0]))
    return ids


@pytest.fixture
def full(keys) -> Delivery:
    """A delivery with every field the payloads read."""
    event = Event.objects.create(account=keys.account, name="Gala")
    attendee = Attendee.objects.create(id="0b7e0a47-5f3c-4a4e-9d55-0c1f0f6f2a11",
                                       account=keys.account, event=event,
                                       email="jane@example.com")
    template = MessageTemplate.objects.create(account=keys.account, name="T", subject="S")
    return Delivery.objects.create(
        account=keys.account, **delivery_owner(attendee),
        refs={"attendeeId": str(attendee.id), "eventId": str(event.id)},
        template=template, channel="email",
        recipient="jane@example.com", event_name="order.shipped", correlation_id="order-1",
        request_id="req-1",
        status="opened", provider_message_id="pm-1",
        sent_at=datetime(2026, 4, 29, 20, 40, 1, 500000, tzinfo=UTC),
        delivered_at=datetime(2026, 4, 29, 20, 41, 2, 900000, tzinfo=UTC),
        html_body="<p>big</p>" * 100, text_body="big" * 100, context={"big": "x" * 100})


@pytest.fixture
def bare(keys) -> Delivery:
    """A delivery with none of the optional fields, and a failure reason."""
    return Delivery.objects.create(
        account=keys.account, channel="sms", recipient="+15551230000", status="bounced",
        failure_reason="mailbox full")


def record(delivery: Delivery, name: str, status: str = "", **detail) -> DeliveryEvent:
    return DeliveryEvent.objects.create(
        delivery=delivery, name=name, status=status, correlation_id="event-corr",
        occurred_at=OCCURRED, detail=detail)


def emit(events: list[DeliveryEvent]) -> dict[tuple[str, str], dict]:
    with mock.patch("webhooks.services.timezone.now", return_value=NOW):
        services.webhooks_emit(delivery_event_ids=[e.id for e in events])
    return {(m.delivery_event.name, m.event_type): m.payload
            for m in Message.objects.select_related("delivery_event")}


def comms(delivery: Delivery, name: str, status: str, reason) -> dict:
    refs = delivery.refs or {}
    return {"type": name, "timestamp": "2026-04-29T20:43:55Z", "data": {
        "attendeeInvitationId": str(delivery.id),
        "attendeeId": refs.get("attendeeId"),
        "templateId": str(delivery.template_id) if delivery.template_id else None,
        "eventId": refs.get("eventId"),
        "email": delivery.recipient, "correlationId": delivery.correlation_id,
        "status": status, "reason": reason, "occurredAt": "2026-04-29T20:42:10Z",
        "mode": delivery.mode, "requestId": delivery.request_id}}


def test_payloads_of_a_full_delivery(endpoint, full):
    events = [record(full, "comms.sent", "sent", provider="sendgrid"),
              record(full, "comms.delivered"), record(full, "comms.opened", "opened"),
              record(full, "comms.failed", "failed")]
    payloads = emit(events)
    delivery = {"uuid": str(full.id), "channel": "email", "event_name": "order.shipped",
                "message_id": "pm-1", "sent_at": "2026-04-29T20:40:01Z",
                "delivered_at": "2026-04-29T20:41:02Z", "mode": "live"}
    envelope = {"request_id": "req-1", "timestamp": "2026-04-29T20:42:10Z"}
    assert payloads == {
        ("comms.sent", "comms.sent"): comms(full, "comms.sent", "sent", None),
        ("comms.sent", "delivery.sent"): {"event": "delivery.sent", **envelope, "delivery": {
            **delivery, "status": "sent", "detailed_status": "sent", "error": None}},
        ("comms.delivered", "comms.delivered"): comms(full, "comms.delivered", "delivered",
                                                      None),
        ("comms.delivered", "delivery.delivered"): {
            "event": "delivery.delivered", **envelope,
            "delivery": {**delivery, "status": "delivered", "detailed_status": "delivered",
                         "error": None}},
        ("comms.opened", "comms.opened"): comms(full, "comms.opened", "opened", None),
        ("comms.failed", "comms.failed"): comms(full, "comms.failed", "failed", None),
        ("comms.failed", "delivery.failed"): {"event": "delivery.failed", **envelope,
                                              "delivery": {**delivery, "status": "failed",
                                                           "detailed_status": "failed",
                                                           "error": "failed"}},
    }
    data = payloads[("comms.sent", "comms.sent")]["data"]
    assert data["attendeeId"] == "0b7e0a47-5f3c-4a4e-9d55-0c1f0f6f2a11"
    assert data["eventId"] and data["templateId"]


def test_payloads_of_a_bare_delivery_and_their_reasons(endpoint, bare):
    events = [record(bare, "comms.bounced", "bounced", reason="550 No such user"),
              record(bare, "comms.dropped", "dropped"),
              record(bare, "comms.failed", "failed", reason=""),
              record(bare, "comms.spam_reported", "spam_reported"),
              record(bare, "comms.deferred", reason="try later"),
              record(bare, "comms.clicked", "clicked", reason=42),
              record(bare, "comms.unsubscribed", "unsubscribed", reason=None),
              record(bare, "comms.processed", "sent")]
    payloads = emit(events)
    delivery = {"uuid": str(bare.id), "channel": "sms", "event_name": None, "message_id": None,
                "sent_at": None, "delivered_at": None, "mode": "live"}
    envelope = {"request_id": None, "timestamp": "2026-04-29T20:42:10Z"}

    def failed(event_type: str, detail: str, error: str) -> dict:
        """Spec 004's word is "failed" whatever ours (the detail beside it)."""
        return {"event": event_type, **envelope,
                "delivery": {**delivery, "status": "failed", "detailed_status": detail,
                             "error": error}}

    assert payloads == {
        ("comms.bounced", "comms.bounced"): comms(bare, "comms.bounced", "bounced",
                                                  "550 No such user"),
        ("comms.bounced", "delivery.bounced"): failed("delivery.bounced", "bounced",
                                                      "550 No such user"),
        ("comms.dropped", "comms.dropped"): comms(bare, "comms.dropped", "dropped",
                                                  "mailbox full"),
        ("comms.dropped", "delivery.failed"): failed("delivery.failed", "dropped",
                                                     "mailbox full"),
        ("comms.failed", "comms.failed"): comms(bare, "comms.failed", "failed", "mailbox full"),
        ("comms.failed", "delivery.failed"): failed("delivery.failed", "failed", "mailbox full"),
        ("comms.spam_reported", "comms.spam_reported"): comms(
            bare, "comms.spam_reported", "spam_reported", None),
        ("comms.spam_reported", "delivery.complained"): failed(
            "delivery.complained", "spam_reported", "spam_reported"),
        ("comms.deferred", "comms.deferred"): comms(bare, "comms.deferred", "deferred",
                                                    "try later"),
        ("comms.clicked", "comms.clicked"): comms(bare, "comms.clicked", "clicked", 42),
        ("comms.unsubscribed", "comms.unsubscribed"): comms(
            bare, "comms.unsubscribed", "unsubscribed", None),
    }


def test_only_subscribed_events_of_accounts_with_a_live_endpoint(endpoint, full):
    services.endpoint_update(endpoint=endpoint, enabled_events=["delivery.sent",
                                                                "comms.opened"])
    other = account_create(name="Other").account
    theirs = Delivery.objects.create(account=other, recipient="x@example.com", status="sent")
    events = [record(full, "comms.sent", "sent"), record(full, "comms.opened", "opened"),
              record(full, "comms.delivered", "delivered"), record(theirs, "comms.sent", "sent")]
    assert set(emit(events)) == {("comms.sent", "delivery.sent"),
                                 ("comms.opened", "comms.opened")}
    Message.objects.all().delete()
    services.endpoint_delete(endpoint=endpoint)
    assert emit(events) == {}


def test_messages_follow_the_events_in_order_with_increasing_creation_times(
        endpoint, full, bare, published):
    early = OCCURRED - timedelta(seconds=5)
    events = [record(full, "comms.opened", "opened"), record(bare, "comms.sent", "sent")]
    DeliveryEvent.objects.filter(id=events[1].id).update(occurred_at=early)
    services.webhooks_emit(delivery_event_ids=[e.id for e in events])
    rows = list(Message.objects.order_by("id").values_list(
        "delivery_event_id", "event_type", "created_at", "next_attempt_at", "status",
        "attempts", "last_error", "account_id", "endpoint_id"))
    assert [row[:2] for row in rows] == [(events[1].id, "comms.sent"),
                                         (events[1].id, "delivery.sent"),
                                         (events[0].id, "comms.opened")]
    created = [row[2] for row in rows]
    assert created == sorted(set(created))  # distinct and increasing: claims keep this order
    assert all(row[3] <= created[0] and row[4:] == ("pending", 0, "", endpoint.account_id,
                                                    endpoint.id) for row in rows)


def test_messages_are_written_in_the_callers_transaction_and_enqueued_on_commit(
        endpoint, full, published, settings, django_capture_on_commit_callbacks):
    settings.WEBHOOKS_BATCH_SIZE = 2
    events = [record(full, name) for name in ("comms.sent", "comms.delivered", "comms.opened")]
    with pytest.raises(RuntimeError), transaction.atomic():
        services.webhooks_emit(delivery_event_ids=[e.id for e in events])
        assert Message.objects.count() == 5
        raise RuntimeError("rolled back")
    assert not Message.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        services.webhooks_emit(delivery_event_ids=[e.id for e in events])
        assert published == []
    ids = list(Message.objects.order_by("id").values_list("webhook_id", flat=True))
    assert len(ids) == 5 and published == ids[::2]  # one task per WEBHOOKS_BATCH_SIZE


def test_emitting_the_same_events_again_adds_nothing(endpoint, full, published):
    events = [record(full, "comms.sent", "sent")]
    services.webhooks_emit(delivery_event_ids=[e.id for e in events])
    first = list(Message.objects.values_list("webhook_id", "payload"))
    services.webhooks_emit(delivery_event_ids=[e.id for e in events])
    assert list(Message.objects.values_list("webhook_id", "payload")) == first


@pytest.mark.parametrize("count", [1, 40])
def test_an_emit_costs_two_queries_whatever_the_number_of_events(endpoint, full, published, count):
    events = [record(full, "comms.delivered", provider="x" * 1000) for _ in range(count)]
    with CaptureQueriesContext(connection) as queries:
        services.webhooks_emit(delivery_event_ids=[e.id for e in events])
    assert Message.objects.count() == 2 * count
    statements = [q["sql"] for q in queries.captured_queries]
    assert len(statements) == 2, statements  # the events with their endpoints, the INSERT


def test_the_payloads_read_only_the_columns_they_need(endpoint, full, published):
    events = [record(full, "comms.sent", "sent", raw="x" * 1000)]
    with CaptureQueriesContext(connection) as queries:
        services.webhooks_emit(delivery_event_ids=[e.id for e in events])
    reads = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith("INSERT")]
    assert len(reads) == 1
    for column in ("html_body", "text_body", "context", "subject", '"detail"', " detail,"):
        assert column not in reads[0], column


def test_events_the_endpoint_does_not_subscribe_to_cost_one_query(endpoint, full, published):
    services.endpoint_update(endpoint=endpoint, enabled_events=["domain.verified"])
    events = [record(full, "comms.sent", "sent")]
    with CaptureQueriesContext(connection) as queries:
        services.webhooks_emit(delivery_event_ids=[e.id for e in events])
    assert len(queries.captured_queries) == 1
    assert not Message.objects.exists() and published == []
