"""The row is the outbox: the sweeper re-enqueues deliveries whose task was lost."""

from datetime import timedelta

import pytest
from django.utils import timezone

from comms.dispatch import deliveries_sweep
from comms.models import Delivery
from tests.comms import test_ses as test_ses
from tests.conftest import guest
from tests.fakes.sendgrid_signing import SendGridSigner, dumps, sendgrid_event


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


# --- reconciling a dead worker's claims with what the provider reported ---------------------

@pytest.fixture
def reporting(settings, sendgrid):
    """SendGrid with its Event Webhook set up: the provider reports what it accepted."""
    signer = SendGridSigner()
    settings.SENDGRID_WEBHOOK_PUBLIC_KEY = signer.public_key
    settings.HERALD_SENDING_LEASE_SECONDS = 300
    settings.HERALD_RECONCILE_SECONDS = 120
    return signer


def _claimed_by_a_dead_worker(api, event_id, template_id, seconds_ago: int) -> Delivery:
    delivery = _queue_without_task(api, event_id, template_id)
    _age(delivery, status="sending", attempts=1,
         claimed_at=timezone.now() - timedelta(seconds=seconds_ago))
    return delivery


def _report(api, signer, delivery: Delivery, *kinds: str) -> None:
    body = dumps([sendgrid_event(kind, delivery_id=str(delivery.id), message_id="sg-msg-1",
                                 email=delivery.recipient, event_id=f"{kind}-{delivery.id}")
                  for kind in kinds or ("processed",)])
    with api.capture(execute=True):
        response = api.client.generic("POST", "/callbacks/sendgrid", body,
                                      content_type="application/json", **signer.headers(body))
    assert response.status_code == 200, response.content


def test_an_expired_claim_the_provider_reported_is_recorded_sent_not_sent_again(
        api, reporting, sendgrid, event_id, template_id):
    delivery = _claimed_by_a_dead_worker(api, event_id, template_id, 301)
    _report(api, reporting, delivery)  # SendGrid's "processed": it had the message
    assert deliveries_sweep() == 0
    delivery.refresh_from_db()
    assert delivery.status == "sent" and delivery.attempts == 1
    assert delivery.provider == "sendgrid" and delivery.provider_message_id == "sg-msg-1"
    assert delivery.subject == "Your ticket for Spring Gala" and delivery.sent_at is not None
    [sent] = delivery.events.filter(name="comms.sent")
    assert sent.detail == {"provider": "sendgrid", "messageId": "sg-msg-1", "reconciled": True}
    assert sendgrid.attempts == 0  # never sent again
    assert deliveries_sweep() == 0 and delivery.events.filter(name="comms.sent").count() == 1


def test_an_expired_claim_waits_for_the_providers_report_then_is_sent_again(
        api, reporting, sendgrid, event_id, template_id):
    delivery = _claimed_by_a_dead_worker(api, event_id, template_id, 301)
    deliveries_sweep()
    delivery.refresh_from_db()
    assert delivery.status == "sending" and sendgrid.attempts == 0  # its report may come
    _age(delivery, claimed_at=timezone.now() - timedelta(seconds=300 + 121))
    deliveries_sweep()
    delivery.refresh_from_db()
    assert delivery.status == "sent" and delivery.attempts == 2 and sendgrid.attempts == 1


def test_without_the_providers_reports_an_expired_claim_is_sent_again_at_once(
        api, reporting, settings, sendgrid, event_id, template_id):
    settings.SENDGRID_WEBHOOK_PUBLIC_KEY = ""  # no Event Webhook: nothing to wait for
    delivery = _claimed_by_a_dead_worker(api, event_id, template_id, 301)
    deliveries_sweep()
    delivery.refresh_from_db()
    assert delivery.status == "sent" and delivery.attempts == 2 and sendgrid.attempts == 1


def test_a_live_claim_is_left_alone_even_when_reported(api, reporting, sendgrid, event_id,
                                                       template_id):
    delivery = _claimed_by_a_dead_worker(api, event_id, template_id, 60)
    _report(api, reporting, delivery)
    deliveries_sweep()
    delivery.refresh_from_db()  # its worker may still record it itself
    assert delivery.status == "sending" and not delivery.events.filter(name="comms.sent")


# SES's fixtures (moto, its sending domain, SNS signatures), for its Send event.
aws, ses, signer = test_ses.aws, test_ses.ses, test_ses.signer


def test_an_expired_claim_ses_reported_is_recorded_sent_not_sent_again(
        api, ses, signer, settings, event_id, template_id):
    settings.HERALD_SENDING_LEASE_SECONDS, settings.HERALD_RECONCILE_SECONDS = 300, 120
    delivery = _claimed_by_a_dead_worker(api, event_id, template_id, 301)
    send = test_ses.ses_event("Send", message_id="ses-msg-1", delivery_id=str(delivery.id),
                              to=delivery.recipient)
    response = test_ses.post_sns(api, signer.notification(send, topic_arn=test_ses.TOPIC))
    assert response.status_code == 200, response.content
    deliveries_sweep()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.provider, delivery.provider_message_id) == (
        "sent", "ses", "ses-msg-1")
    assert test_ses.moto_sent() == []  # never sent again


def test_an_expired_claim_an_event_moved_on_keeps_its_status_and_gets_its_send_recorded(
        api, reporting, sendgrid, event_id, template_id):
    """``processed`` and ``delivered`` arrive together while the dead worker's row is still
    ``sending``: the row becomes ``delivered`` (not sent again), and once its claim expired
    the sweeper records the send it never recorded (``comms.sent``, ``sent_at``)."""
    delivery = _claimed_by_a_dead_worker(api, event_id, template_id, 60)
    _report(api, reporting, delivery, "processed", "delivered")
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.sent_at is None
    deliveries_sweep()  # its worker may still record it itself
    assert not delivery.events.filter(name="comms.sent")
    _age(delivery, claimed_at=timezone.now() - timedelta(seconds=301),
         next_attempt_at=timezone.now() - timedelta(seconds=301))
    deliveries_sweep()
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.sent_at is not None
    assert delivery.provider_message_id == "sg-msg-1" and delivery.next_attempt_at is None
    [sent] = delivery.events.filter(name="comms.sent")
    assert sent.detail["reconciled"] is True and sendgrid.attempts == 0
    deliveries_sweep()
    assert delivery.events.filter(name="comms.sent").count() == 1
