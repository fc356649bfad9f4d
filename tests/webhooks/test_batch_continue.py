"""A task whose batch came back full and wholly received claims its endpoint's next due batch
itself (for up to ``WEBHOOKS_TASK_SECONDS``) instead of leaving it to a follow-up task; a
failure, or the time spent, hands the rest to a follow-up as before. With a backlog a task
POSTs ``WEBHOOKS_PARALLEL_BATCHES`` batches at once, each in order."""

import pytest

from accounts.services import account_create
from tests.fakes.webhook_receiver import Answer, WebhookReceiver
from webhooks import delivery, services
from webhooks.models import Attempt, Message
from webhooks.tasks import deliver_message

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    settings.WEBHOOKS_RETRY_SCHEDULE = [0, 5, 300]
    settings.WEBHOOKS_BATCH_SIZE = 20
    settings.WEBHOOKS_TASK_SECONDS = 60.0
    settings.WEBHOOKS_PARALLEL_BATCHES = 1
    with WebhookReceiver() as server:
        yield server


@pytest.fixture
def enqueued(monkeypatch) -> list[tuple[str, float | None]]:
    published: list[tuple[str, float | None]] = []
    monkeypatch.setattr(deliver_message, "apply_async",
                        lambda args, countdown=None: published.append((args[0], countdown)))
    return published


def queued(receiver, count: int, capture) -> list[str]:
    keys = account_create(name="Acme Events")
    endpoint, receiver.secret = services.endpoint_create(account=keys.account, url=receiver.url)
    with capture(execute=True):
        return [services.endpoint_send_test(endpoint=endpoint).webhook_id
                for _ in range(count)]


def test_one_task_delivers_the_endpoints_batches_back_to_back_in_order(
        receiver, enqueued, django_capture_on_commit_callbacks):
    ids = queued(receiver, 50, django_capture_on_commit_callbacks)
    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        delivery.message_deliver(webhook_id=ids[0])
    assert [r.headers["webhook-id"] for r in receiver.verified] == ids
    assert set(Message.objects.values_list("status", "attempts")) == {("succeeded", 1)}
    assert enqueued == [], "the last batch was not full: no follow-up task"


def test_without_task_time_a_full_batch_is_followed_up_by_a_task(
        receiver, settings, enqueued, django_capture_on_commit_callbacks):
    settings.WEBHOOKS_TASK_SECONDS = 0
    ids = queued(receiver, 50, django_capture_on_commit_callbacks)
    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        delivery.message_deliver(webhook_id=ids[0])
    assert [r.headers["webhook-id"] for r in receiver.verified] == ids[:20]
    assert [webhook_id for webhook_id, _ in enqueued] == [ids[20]]


def test_a_failure_hands_the_rest_to_a_follow_up(
        receiver, enqueued, django_capture_on_commit_callbacks):
    ids = queued(receiver, 50, django_capture_on_commit_callbacks)
    receiver.answer(*[200] * 5, 500)
    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        delivery.message_deliver(webhook_id=ids[0])
    assert len(receiver.received) == 20 and Attempt.objects.count() == 20
    assert Message.objects.get(webhook_id=ids[5]).status == "pending"
    assert sorted(webhook_id for webhook_id, _ in enqueued) == sorted([ids[5], ids[20]])


def test_a_backlog_is_posted_as_batches_at_once_each_in_order(
        receiver, settings, enqueued, django_capture_on_commit_callbacks):
    settings.WEBHOOKS_PARALLEL_BATCHES = 3
    ids = queued(receiver, 70, django_capture_on_commit_callbacks)
    receiver.answer_with(Answer(delay=0.01), times=70)
    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        delivery.message_deliver(webhook_id=ids[0])
    arrived = [r.headers["webhook-id"] for r in receiver.verified]
    assert sorted(arrived) == sorted(ids), "each message once"
    assert arrived != ids, "the batches overlapped"
    for chunk in (ids[:20], ids[20:40], ids[40:60], ids[60:]):
        assert [i for i in arrived if i in chunk] == chunk, "each batch in order"
    assert set(Message.objects.values_list("status", "attempts")) == {("succeeded", 1)}
    assert Attempt.objects.count() == 70 and enqueued == []
