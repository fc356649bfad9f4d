"""Senders publish one send task while one is pending (comms/queueing.py): the task claims
their rows anyway, so the API and the worker are spared a broker message per send."""

import pytest
from celery.signals import before_task_publish

from comms.models import Delivery
from comms.queueing import kick_taken
from config.celery import app as celery_app
from tests.conftest import guest

REDIS_URL = "redis://127.0.0.1:6379/14"


@pytest.fixture
def published(settings):
    """Send tasks really published to the broker (not run in-process)."""
    settings.HERALD_DISPATCH_KICK_REDIS_URL = REDIS_URL
    celery_app.conf.task_always_eager = False
    seen: list[dict] = []

    def count(sender=None, body=None, **_):
        if sender == "comms.send_delivery":
            seen.append(body)

    before_task_publish.connect(count, weak=False)
    kick_taken()
    yield seen
    before_task_publish.disconnect(count)
    kick_taken()
    celery_app.conf.task_always_eager = True


def _send(api, event_id, template_id, n: int) -> None:
    for i in range(n):
        response = api.post("/checkin/v1/api/guest",
                            guest(event_id, template_id, email=f"k{i}@example.com"))
        assert response.status_code == 200, response.content


def test_senders_publish_one_task_while_one_is_pending(api, published, event_id, template_id):
    _send(api, event_id, template_id, 5)
    assert len(published) == 1
    kick_taken()  # what the task does before it claims: the next sender kicks again
    _send(api, event_id, template_id, 1)
    assert len(published) == 2
    assert Delivery.objects.filter(status="queued").count() == 6


def test_the_one_pending_task_claims_every_skipped_senders_row(api, published, event_id,
                                                               template_id):
    from comms.tasks import send_delivery

    _send(api, event_id, template_id, 5)
    [body] = published
    (delivery_id,) = body[0]  # protocol 2: (args, kwargs, embed)
    celery_app.conf.task_always_eager = True  # the worker runs the one published task
    send_delivery.delay(delivery_id)
    assert Delivery.objects.filter(status="sent").count() == 5


def test_without_redis_every_send_publishes(api, published, settings, event_id, template_id):
    settings.HERALD_DISPATCH_KICK_REDIS_URL = ""
    _send(api, event_id, template_id, 3)
    assert len(published) == 3


def test_a_redis_outage_falls_back_to_a_task_per_send(api, published, settings, caplog,
                                                      event_id, template_id):
    settings.HERALD_DISPATCH_KICK_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    _send(api, event_id, template_id, 3)
    assert len(published) == 3
    assert "Dispatch kick Redis unavailable" in caplog.text


def test_a_kick_without_a_delivery_claims_the_oldest_due_rows(api, sendgrid, settings,
                                                              event_id, template_id):
    from comms.tasks import send_delivery

    for i in range(3):  # on-commit tasks dropped, as if lost
        api.client.post("/checkin/v1/api/guest", guest(event_id, template_id,
                                                       email=f"o{i}@example.com"), format="json")
    send_delivery.delay(None)
    assert Delivery.objects.filter(status="sent").count() == 3
    assert len(sendgrid.messages) == 1


def _lost(api, event_id, template_id, n: int) -> list[str]:
    """n queued sends whose on-commit tasks were dropped, as if lost."""
    return [api.client.post("/checkin/v1/api/guest", guest(event_id, template_id,
                                                           email=f"l{i}@example.com"),
                            format="json").json()["attendeeInvitationId"] for i in range(n)]


def test_a_kick_that_fails_never_strands_the_claimed_batch(api, sendgrid, settings, caplog,
                                                           event_id, template_id):
    """Here the next batch's task (run in-process) raises: the claimed batch is still handled
    (with a wrong key: released for later), none is left in ``sending`` for the lease."""
    from comms.tasks import send_delivery

    settings.HERALD_DISPATCH_BATCH_SIZE = 2
    settings.HERALD_RETRY_BASE_SECONDS = 10
    settings.SENDGRID_API_KEY = "SG.wrong"
    ids = _lost(api, event_id, template_id, 4)
    with pytest.raises(Exception, match="API key"):
        send_delivery.delay(ids[0])
    assert set(Delivery.objects.values_list("status", flat=True)) == {"queued"}
    assert "Could not kick the next batch" in caplog.text


def test_a_misconfigured_provider_does_not_make_the_next_kick_claim_the_same_rows(
        api, sendgrid, settings, event_id, template_id):
    from datetime import timedelta

    from django.utils import timezone

    from comms.dispatch import delivery_dispatch

    settings.HERALD_DISPATCH_BATCH_SIZE = 2
    settings.HERALD_RETRY_BASE_SECONDS = 10
    settings.SENDGRID_API_KEY = "SG.wrong"
    celery_app.conf.task_always_eager = False  # the kick is published, not run here
    try:
        ids = _lost(api, event_id, template_id, 3)
        with pytest.raises(Exception, match="API key"):
            delivery_dispatch(delivery_id=None)  # claims the oldest two (full: kicks)
        with pytest.raises(Exception, match="API key"):
            delivery_dispatch(delivery_id=None)  # what that kick does next
    finally:
        celery_app.conf.task_always_eager = True
    later = timezone.now() + timedelta(seconds=5)
    rows = dict(Delivery.objects.values_list("id", "next_attempt_at"))
    assert all(rows[d] > later for d in map(uuid_of, ids))  # each claimed once, not twice
    assert sendgrid.attempts == 2


def uuid_of(value: str):
    import uuid

    return uuid.UUID(value)
