"""The row is the outbox: the sweeper re-enqueues deliveries whose task was lost."""

from datetime import timedelta

from django.utils import timezone

from comms.dispatch import deliveries_sweep
from comms.models import Delivery
from tests.conftest import guest


def _queue_without_task(api, event_id, template_id) -> Delivery:
    """Create a send but drop its on-commit enqueue, as if the broker lost the message."""
    response = api.client.post("/checkin/v1/api/guest", guest(event_id, template_id),
                               format="json")
    assert response.status_code == 200
    return Delivery.objects.get(id=response.json()["attendeeInvitationId"])


def _age(delivery: Delivery, **fields) -> None:
    Delivery.objects.filter(id=delivery.id).update(**fields)  # time travel, nothing else


def test_lost_queued_delivery_is_sent_after_grace(api, settings, event_id, template_id):
    settings.HERALD_SWEEP_GRACE_SECONDS = 120
    delivery = _queue_without_task(api, event_id, template_id)
    assert deliveries_sweep() == 0  # still within its grace period: its task may be coming
    _age(delivery, created_at=timezone.now() - timedelta(seconds=121))
    assert deliveries_sweep() == 1
    delivery.refresh_from_db()
    assert delivery.status == "sent" and delivery.attempts == 1


def test_delivery_stuck_in_sending_after_worker_death_is_resent(api, settings, event_id,
                                                                 template_id):
    settings.HERALD_SENDING_LEASE_SECONDS = 300
    delivery = _queue_without_task(api, event_id, template_id)
    _age(delivery, status="sending", attempts=1, claimed_at=timezone.now() - timedelta(seconds=60))
    assert deliveries_sweep() == 0  # a live worker may still be on it
    _age(delivery, claimed_at=timezone.now() - timedelta(seconds=301))
    assert deliveries_sweep() == 1
    delivery.refresh_from_db()
    assert delivery.status == "sent" and delivery.attempts == 2


def test_scheduled_retry_is_not_swept_early(api, settings, event_id, template_id):
    delivery = _queue_without_task(api, event_id, template_id)
    _age(delivery, created_at=timezone.now() - timedelta(hours=1),
         next_attempt_at=timezone.now() + timedelta(minutes=10))
    assert deliveries_sweep() == 0


def test_duplicate_task_sends_once(api, event_id, template_id):
    from comms.tasks import send_delivery

    delivery = _queue_without_task(api, event_id, template_id)
    send_delivery.delay(str(delivery.id))
    send_delivery.delay(str(delivery.id))
    delivery.refresh_from_db()
    assert delivery.attempts == 1
    assert delivery.events.filter(name="comms.sent").count() == 1


def test_sweeper_is_scheduled_in_beat(settings):
    schedule = settings.CELERY_BEAT_SCHEDULE["comms.deliveries_sweep"]
    assert schedule["task"] == "comms.deliveries_sweep"


def test_one_sweep_publishes_one_kick_for_all_its_overdue_rows(api, settings, event_id,
                                                               template_id):
    from celery.signals import before_task_publish

    from config.celery import app as celery_app

    settings.HERALD_DISPATCH_KICK_REDIS_URL = ""  # not even coalesced: one publish per call
    for _ in range(3):
        _queue_without_task(api, event_id, template_id)
    Delivery.objects.update(created_at=timezone.now() - timedelta(hours=1))
    published: list[str] = []

    def count(sender=None, **_):
        if sender == "comms.send_delivery":
            published.append(sender)

    before_task_publish.connect(count, weak=False)
    celery_app.conf.task_always_eager = False
    try:
        assert deliveries_sweep() == 3
    finally:
        celery_app.conf.task_always_eager = True
        before_task_publish.disconnect(count)
    assert len(published) == 1
