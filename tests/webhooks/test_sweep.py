"""The sweeper re-enqueues lost messages so that one wave reaches every one of them: a task
claims the due messages of its endpoint created after its own, so the task the sweeper
publishes for an endpoint is its oldest message's, whatever the (jittered) due times say."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.services import account_create
from tests.webhooks.test_batch import enqueued, receiver  # noqa: F401 (fixtures)
from webhooks import delivery, services
from webhooks.models import Message

pytestmark = pytest.mark.django_db


def test_a_sweep_wave_reaches_every_message_when_due_times_are_out_of_creation_order(
        receiver, enqueued, django_capture_on_commit_callbacks):  # noqa: F811
    keys = account_create(name="Acme Events")
    endpoint, receiver.secret = services.endpoint_create(account=keys.account, url=receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        ids = [services.endpoint_send_test(endpoint=endpoint).webhook_id for _ in range(5)]
    # Lost tasks; due long ago, the newest message first (jitter shortens steps at random).
    long_ago = timezone.now() - timedelta(hours=1)
    for n, webhook_id in enumerate(ids):
        Message.objects.filter(webhook_id=webhook_id).update(
            next_attempt_at=long_ago - timedelta(seconds=len(ids) - n))
    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.messages_sweep() == 5
    assert [webhook_id for webhook_id, _ in enqueued] == [ids[0]], "the oldest heads the batch"
    for webhook_id, _ in list(enqueued):
        delivery.message_deliver(webhook_id=webhook_id)
    assert [r.headers["webhook-id"] for r in receiver.received] == ids
    assert set(Message.objects.values_list("status", "attempts")) == {("succeeded", 1)}


def test_a_stuck_message_older_than_the_overdue_ones_heads_the_sweep(
        receiver, enqueued, django_capture_on_commit_callbacks):  # noqa: F811
    keys = account_create(name="Acme Events")
    endpoint, receiver.secret = services.endpoint_create(account=keys.account, url=receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        ids = [services.endpoint_send_test(endpoint=endpoint).webhook_id for _ in range(3)]
    now = timezone.now()
    Message.objects.filter(webhook_id=ids[0]).update(  # its worker died mid-batch
        status="sending", claimed_at=now - services.message_lease() - timedelta(minutes=1),
        next_attempt_at=None, attempts=1)
    Message.objects.filter(webhook_id__in=ids[1:]).update(next_attempt_at=now - timedelta(hours=1))
    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.messages_sweep() == 3
    assert [webhook_id for webhook_id, _ in enqueued] == [ids[0]]
    for webhook_id, _ in list(enqueued):
        delivery.message_deliver(webhook_id=webhook_id)
    assert [r.headers["webhook-id"] for r in receiver.received] == ids
