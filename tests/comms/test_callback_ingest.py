"""Callback ingestion in groups: a task applies its stored batch together with the other
unprocessed ones in one transaction, counts each event once, never loses a batch (a crash
leaves the whole group to the sweeper), skips batches another task holds, and on PostgreSQL
costs a fixed number of statements and rewrites only the deliveries that change."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from comms.callbacks.services import callback_batch_process, callback_batches_sweep
from comms.lifecycle import provider_events_apply
from comms.models import CallbackBatch, Delivery, DeliveryEvent
from comms.providers.base import ProviderConfigurationError, ProviderEvent
from tests.comms.test_sendgrid_callbacks import ev, sent, signer  # noqa: F401 - fixtures
from tests.fakes.sendgrid_signing import dumps


def store(*bodies: str) -> list[int]:
    """Batches as the view stores them, their tasks lost (nothing processes them yet)."""
    return [CallbackBatch.objects.create(provider="sendgrid", body=body).id for body in bodies]


def batches() -> list[tuple]:
    return list(CallbackBatch.objects.order_by("id").values_list(
        "processed_at", "events_total", "events_applied", "error"))


def test_a_task_applies_the_other_stored_batches_with_its_own(sent):  # noqa: F811
    ids = store(dumps([ev(sent, "delivered", 1)]), dumps([ev(sent, "open", 2)]),
                dumps([ev(sent, "click", 3)]))
    assert callback_batch_process(batch_id=ids[0]) == 3
    assert [row[1:] for row in batches()] == [(1, 1, "")] * 3
    assert all(row[0] is not None for row in batches())
    assert callback_batch_process(batch_id=ids[1]) == 0  # its own task finds it done
    sent.refresh_from_db()
    assert sent.status == "clicked" and sent.delivered_at is not None


def test_a_repeated_event_is_counted_once_in_a_group(sent):  # noqa: F811
    event = ev(sent, "delivered", 1)
    ids = store(dumps([event, event]), dumps([event]))
    assert callback_batch_process(batch_id=ids[0]) == 1
    assert [row[1:3] for row in batches()] == [(2, 1), (1, 0)]
    assert sent.events.filter(name="comms.delivered").count() == 1


def test_an_unreadable_batch_does_not_hold_back_the_others(sent):  # noqa: F811
    ids = store("{not json", dumps([ev(sent, "delivered", 1)]))
    assert callback_batch_process(batch_id=ids[0]) == 1
    bad, good = batches()
    assert bad[0] is not None and bad[1:3] == (0, 0) and "Expecting" in bad[3]
    assert good[1:] == (1, 1, "")


def test_a_batch_that_cannot_be_applied_never_holds_back_the_others(sent):  # noqa: F811
    poison = CallbackBatch.objects.create(provider="retired", body="[]").id  # unknown: raises
    store(dumps([ev(sent, "delivered", 1)]), dumps([ev(sent, "open", 2)]))
    # Its group failed, then it alone: left to the sweeper.
    with pytest.raises(ProviderConfigurationError):
        callback_batch_process(batch_id=poison)
    # The group's other batches were re-enqueued alone (run here at once: eager tasks).
    assert CallbackBatch.objects.get(id=poison).processed_at is None
    CallbackBatch.objects.filter(id=poison).delete()
    assert [row[1:] for row in batches()] == [(1, 1, "")] * 2
    sent.refresh_from_db()
    assert sent.status == "opened"


def test_a_failed_group_applies_its_batch_and_requeues_the_others_alone(sent):  # noqa: F811
    """Their own tasks may have skipped them while this group held them: without the
    re-enqueue they would wait for the sweeper."""
    first = store(dumps([ev(sent, "delivered", 1)]))[0]
    poison = CallbackBatch.objects.create(provider="retired", body="[]").id
    last = store(dumps([ev(sent, "open", 2)]))[0]
    assert callback_batch_process(batch_id=first) == 1  # the group [first, poison, last] failed
    done = dict(CallbackBatch.objects.values_list("id", "processed_at"))
    assert done[first] is not None and done[last] is not None and done[poison] is None


def test_a_failed_group_commits_nothing_and_what_is_not_requeued_waits_for_the_sweeper(
        sent, settings):  # noqa: F811
    from config.celery import app as celery_app

    poison = CallbackBatch.objects.create(provider="retired", body="[]").id
    ids = store(dumps([ev(sent, "delivered", 1)]), dumps([ev(sent, "open", 2)]))
    celery_app.conf.task_always_eager = False  # the re-enqueued tasks are lost, as in a crash
    try:
        with pytest.raises(ProviderConfigurationError):
            callback_batch_process(batch_id=poison)
    finally:
        celery_app.conf.task_always_eager = True
    assert all(row[0] is None for row in batches())  # the group's transaction rolled back
    assert not DeliveryEvent.objects.filter(name__in=["comms.delivered", "comms.opened"])
    CallbackBatch.objects.filter(id=poison).delete()
    CallbackBatch.objects.update(received_at=timezone.now() - timedelta(hours=1))
    assert callback_batches_sweep() == 2  # eager: the first task applies both
    assert [row[1:] for row in batches()] == [(1, 1, "")] * 2
    assert all(CallbackBatch.objects.filter(id__in=ids).values_list("processed_at", flat=True))


# --- PostgreSQL -----------------------------------------------------------------------------

def test_a_group_costs_a_fixed_number_of_statements(sent):  # noqa: F811
    ids = store(*(dumps([ev(sent, kind, f"{n}-{i}") for i in range(20)])
                  for n, kind in enumerate(["processed", "delivered", "open", "click", "open"])))
    with CaptureQueriesContext(connection) as queries:
        assert callback_batch_process(batch_id=ids[0]) == 100
    statements = [q["sql"][:60] for q in queries.captured_queries
                  if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]
    # claim (2), deliveries, events, statuses, webhook endpoints, batches: not per batch/event
    assert len(statements) == 7, statements


def test_an_event_that_changes_nothing_does_not_rewrite_the_delivery(sent):  # noqa: F811
    def apply(kind: str, n: int) -> None:
        provider_events_apply([ProviderEvent(
            provider="sendgrid", provider_event_id=f"e{n}", event=kind,
            occurred_at=timezone.now(), delivery_id=str(sent.id))])

    def version() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SELECT ctid::text FROM comms_delivery WHERE id = %s", [sent.id])
            return cursor.fetchone()[0]

    apply("delivered", 1)
    apply("opened", 2)
    before = version()
    apply("delivered", 3)  # late, and delivered_at is already set: nothing to write
    assert version() == before
    assert DeliveryEvent.objects.filter(delivery=sent, provider_event_id="e3").exists()


@pytest.mark.django_db(transaction=True)
def test_a_batch_another_task_holds_is_skipped_not_waited_for(keys):
    delivery = Delivery.objects.create(account=keys.account, recipient="a@example.com",
                                       status="sent", provider_message_id="m1")
    event = {"event": "delivered", "sg_event_id": "e1", "herald_delivery_id": str(delivery.id),
             "timestamp": int(time.time()), "email": "a@example.com"}
    held, other = store(dumps([event]), dumps([{**event, "event": "open", "sg_event_id": "e2"}]))
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                CallbackBatch.objects.select_for_update().get(id=held)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        assert callback_batch_process(batch_id=held) == 0  # held elsewhere: not waited for
        assert callback_batch_process(batch_id=other) == 1  # takes only what is free
        assert time.monotonic() - started < 5
    finally:
        release.set()
        holder.join()
    assert callback_batch_process(batch_id=held) == 1
    delivery.refresh_from_db()
    assert delivery.status == "opened"
