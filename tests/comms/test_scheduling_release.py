"""Scheduled deliveries wait on the due-time index, not in a worker: beat's tick
(``comms.scheduling.deliveries_release``) releases the due ones, earliest first, with one
kick; nothing else (a send task, the sweeper) touches them before then, and a tick whose kick
cannot be published loses nothing."""

from datetime import timedelta

import pytest
from celery.signals import before_task_publish
from django.utils import timezone
from kombu.exceptions import OperationalError

from comms.dispatch import deliveries_sweep, delivery_dispatch
from comms.messages import Message
from comms.models import Delivery
from comms.scheduling import deliveries_cancel, deliveries_release
from comms.services import messages_queue
from comms.tasks import send_delivery
from config.celery import app as celery_app


@pytest.fixture
def schedule(keys, template_id, sendgrid, django_capture_on_commit_callbacks):
    """Queue live emails through ``messages_queue`` as a front end does; each at its time
    (hours from now; None: now). Returns their ids in order."""
    now = timezone.now()

    def queue(*hours: float | None, prefix: str = "s") -> list:
        with django_capture_on_commit_callbacks(execute=True):
            return messages_queue([
                Message(account_id=keys.account.id, mode="live", template_id=template_id,
                        recipient=f"{prefix}{i}@example.com",
                        context={"firstName": "Ann", "event": {"name": "Gala"}},
                        send_at=None if at is None else now + timedelta(hours=at))
                for i, at in enumerate(hours)])

    queue.now = now
    return queue


@pytest.fixture
def published(settings):
    """The send tasks published to the broker (not run)."""
    celery_app.conf.task_always_eager = False
    seen: list = []

    def count(sender=None, body=None, **_):
        if sender == "comms.send_delivery":
            seen.append(body[0])  # protocol 2: (args, kwargs, embed)

    before_task_publish.connect(count, weak=False)
    yield seen
    before_task_publish.disconnect(count)


def statuses(ids: list) -> list[str]:
    found = dict(Delivery.objects.filter(id__in=ids).values_list("id", "status"))
    return [found[pk] for pk in ids]


def sent_to(sendgrid) -> list[str]:
    return [r.email for r in sendgrid.recipients()]


def test_release_sends_only_due_rows_earliest_first_and_never_a_cancelled_one(
        schedule, sendgrid):
    # Created in this order; due at +3 h, +1 h, +2 h, +1.5 h (cancelled), +5 h.
    ids = schedule(3, 1, 2, 1.5, 5)
    assert statuses(ids) == ["scheduled"] * 5 and sendgrid.messages == []
    deliveries_cancel(ids[3:4], reason="Changed plans.")
    later = schedule.now + timedelta(hours=2.5)

    assert deliveries_release(now=later, limit=1) == 1  # the earliest due, not the oldest
    assert statuses(ids) == ["scheduled", "sent", "scheduled", "cancelled", "scheduled"]
    assert deliveries_release(now=later) == 1
    assert statuses(ids) == ["scheduled", "sent", "sent", "cancelled", "scheduled"]
    assert deliveries_release(now=later) == 0
    assert sorted(sent_to(sendgrid)) == ["s1@example.com", "s2@example.com"]


def test_a_release_publishes_one_kick_that_drains_every_released_row(
        schedule, sendgrid, published, settings):
    settings.HERALD_DISPATCH_BATCH_SIZE = 10
    ids = schedule(*[1] * 45)
    assert published == []  # scheduled rows publish nothing when queued
    assert deliveries_release(now=schedule.now + timedelta(hours=1)) == 45
    assert published == [[None]]  # one kick, for any due rows
    celery_app.conf.task_always_eager = True  # a worker runs it: each full claim kicks on
    send_delivery.delay(None)
    assert statuses(ids) == ["sent"] * 45
    assert len(sendgrid.messages) == 5  # batches of 10


def test_a_scheduled_row_is_not_claimed_before_its_time(schedule, sendgrid):
    later, now = schedule(1, None)
    assert statuses([later, now]) == ["scheduled", "sent"]
    delivery_dispatch(delivery_id=str(later))  # its own task, had one been published
    delivery_dispatch(delivery_id=None)  # a kick for any due rows
    assert statuses([later]) == ["scheduled"]
    assert sent_to(sendgrid) == ["s1@example.com"]
    assert Delivery.objects.get(id=later).attempts == 0


def test_the_sweeper_leaves_scheduled_rows_to_the_tick(schedule, sendgrid):
    """Old rows, one of them past its time (no tick ran yet): the sweeper's grace period is
    for lost tasks of queued rows; a scheduled row has no task to lose."""
    ids = schedule(1, 1)
    Delivery.objects.filter(id__in=ids).update(  # time travel, nothing else
        created_at=timezone.now() - timedelta(days=2))
    Delivery.objects.filter(id=ids[1]).update(
        next_attempt_at=timezone.now() - timedelta(hours=1))
    assert deliveries_sweep() == 0
    assert statuses(ids) == ["scheduled", "scheduled"] and sendgrid.messages == []
    assert deliveries_release() == 1
    assert statuses(ids) == ["scheduled", "sent"]


def test_a_row_due_while_the_broker_was_down_goes_on_the_next_tick(
        schedule, sendgrid, monkeypatch):
    [pk] = schedule(1)
    due = schedule.now + timedelta(hours=1, seconds=1)

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    with monkeypatch.context() as patch:
        patch.setattr(send_delivery, "apply_async", broker_down)
        with pytest.raises(OperationalError):
            deliveries_release(now=due)  # the tick runs, its kick cannot be published
    delivery = Delivery.objects.get(id=pk)
    assert (delivery.status, delivery.next_attempt_at) == ("scheduled", due)
    assert deliveries_release(now=due + timedelta(seconds=2)) == 1  # the next tick
    assert statuses([pk]) == ["sent"] and sent_to(sendgrid) == ["s0@example.com"]


def test_the_tick_task_releases_due_rows(schedule, sendgrid):
    """What beat publishes every HERALD_SCHEDULE_TICK_SECONDS, by its stable name."""
    from comms.tasks import scheduled_release

    [pk] = schedule(1)
    Delivery.objects.filter(id=pk).update(next_attempt_at=timezone.now())  # its time came
    assert celery_app.conf.beat_schedule["comms.scheduled_release"]["task"] == \
        scheduled_release.name
    assert scheduled_release.delay().get() == 1
    assert statuses([pk]) == ["sent"]
