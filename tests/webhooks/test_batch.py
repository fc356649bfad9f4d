"""Batched webhook delivery: a task delivers its message with the other due messages of the
same endpoint, in order, on one connection; each message gets exactly one attempt per wave
and one enqueue per retry; a hanging endpoint costs one timeout per batch and keeps other
batches off itself, never off other endpoints."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.services import account_create
from tests.fakes.webhook_receiver import Answer, WebhookReceiver
from webhooks import delivery, services
from webhooks.models import Attempt, Message
from webhooks.tasks import deliver_message

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    settings.WEBHOOKS_RETRY_SCHEDULE = [0, 5, 300, 1800]
    settings.WEBHOOKS_BATCH_SIZE = 100
    with WebhookReceiver() as server:
        yield server


@pytest.fixture
def enqueued(monkeypatch) -> list[tuple[str, float | None]]:
    """Every ``webhooks.deliver_message`` published, as (webhook id, countdown), not run."""
    published: list[tuple[str, float | None]] = []
    monkeypatch.setattr(deliver_message, "apply_async",
                        lambda args, countdown=None: published.append((args[0], countdown)))
    return published


def endpoint_with(receiver, name: str = "Acme Events", path: str = ""):
    keys = account_create(name=name)
    endpoint, secret = services.endpoint_create(account=keys.account,
                                                url=receiver.url + path)
    receiver.secret = secret
    return endpoint


def queue(endpoint, count: int, capture) -> list[str]:
    """``count`` messages to the endpoint, oldest first, their tasks published on commit."""
    with capture(execute=True):
        return [services.endpoint_send_test(endpoint=endpoint).webhook_id
                for _ in range(count)]


def run(tasks: list[tuple[str, float | None]]) -> None:
    """Run these published tasks (as a worker would, once their countdown passed)."""
    for webhook_id, _ in list(tasks):
        delivery.message_deliver(webhook_id=webhook_id)


def make_due(endpoint) -> None:
    Message.objects.filter(endpoint=endpoint, status="pending").update(
        next_attempt_at=timezone.now() - timedelta(hours=1))


def test_one_task_delivers_fifty_messages_in_order_each_once(
        receiver, enqueued, django_capture_on_commit_callbacks, django_assert_max_num_queries):
    endpoint = endpoint_with(receiver)
    ids = queue(endpoint, 50, django_capture_on_commit_callbacks)
    assert [webhook_id for webhook_id, _ in enqueued] == ids
    with django_assert_max_num_queries(10):  # claim, load, attempts, outcomes: not per message
        delivery.message_deliver(webhook_id=ids[0])
    assert [r.headers["webhook-id"] for r in receiver.received] == ids
    assert len(receiver.verified) == 50
    run(enqueued[1:])  # the other 49 tasks find their message delivered: nothing more
    assert len(receiver.received) == 50
    assert Attempt.objects.filter(succeeded=True).count() == 50
    assert sorted(Attempt.objects.values_list("message__webhook_id", flat=True)) == sorted(ids)
    assert set(Message.objects.values_list("status", "attempts")) == {("succeeded", 1)}
    assert len(enqueued) == 50  # no retry, no follow-up


def test_a_failing_batch_makes_one_attempt_and_one_enqueue_per_message_per_wave(
        receiver, enqueued, django_capture_on_commit_callbacks):
    endpoint = endpoint_with(receiver)
    ids = queue(endpoint, 50, django_capture_on_commit_callbacks)
    receiver.answer(*[500] * 100)
    originals = list(enqueued)
    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        run(originals)  # the first task takes all 50; the other 49 find nothing to do
    assert len(receiver.received) == 50
    assert set(Message.objects.values_list("status", "attempts")) == {("pending", 1)}
    assert sorted(w for w, _ in enqueued) == sorted(ids), "one retry enqueue per message"
    assert all(4 <= countdown <= 6 for _, countdown in enqueued)  # 5 s ± 20 %
    for message in Message.objects.all():
        delay = (message.next_attempt_at - message.last_attempt_at).total_seconds()
        assert 4 <= delay <= 6
        assert message.last_error == "HTTP 500" and message.claimed_at is None

    # The next wave: the retry tasks and the sweeper both fire (the doubled-attempt case).
    retries = list(enqueued)
    enqueued.clear()
    make_due(endpoint)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.messages_sweep() == 50
    sweeper = list(enqueued)
    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        run(retries + sweeper)
    assert len(receiver.received) == 100
    assert set(Message.objects.values_list("status", "attempts")) == {("pending", 2)}
    per_message = {w: 0 for w in ids}
    for webhook_id in Attempt.objects.values_list("message__webhook_id", flat=True):
        per_message[webhook_id] += 1
    assert set(per_message.values()) == {2}, "exactly one attempt per message per wave"
    assert sorted(w for w, _ in enqueued) == sorted(ids)
    assert all(240 <= countdown <= 360 for _, countdown in enqueued)


def test_a_hanging_endpoint_costs_one_timeout_and_releases_the_rest(
        receiver, settings, enqueued, django_capture_on_commit_callbacks):
    settings.WEBHOOKS_TIMEOUT_SECONDS = 0.5
    endpoint = endpoint_with(receiver)
    ids = queue(endpoint, 10, django_capture_on_commit_callbacks)
    receiver.answer_with(Answer(delay=3.0))
    enqueued.clear()
    started = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        delivery.message_deliver(webhook_id=ids[0])
    assert (timezone.now() - started).total_seconds() < 2.5, "one timeout, not ten"
    [attempt] = Attempt.objects.all()
    assert attempt.message.webhook_id == ids[0] and "timed out" in attempt.error.lower()
    rest = Message.objects.exclude(webhook_id=ids[0])
    assert set(rest.values_list("status", "attempts", "claimed_at")) == {("pending", 0, None)}
    for message in rest:  # released: due a moment later, no attempt used
        assert 0 < (message.next_attempt_at - started).total_seconds() < 3
    # The failed message's retry, and one follow-up for the oldest released message.
    assert [w for w, _ in enqueued] == [ids[0], ids[1]]
    assert 0.5 <= enqueued[1][1] <= 1.0

    make_due(endpoint)  # the receiver is back: the follow-up takes the nine, in order
    with django_capture_on_commit_callbacks(execute=True):
        run(enqueued[1:2])
    assert [r.headers["webhook-id"] for r in receiver.received[1:]] == ids[1:]
    assert Message.objects.filter(status="succeeded").count() == 9
    assert Attempt.objects.count() == 10


def test_a_slow_batch_keeps_other_batches_off_its_endpoint_only(
        receiver, enqueued, django_capture_on_commit_callbacks):
    slow = endpoint_with(receiver, "Slow Co", "/slow")
    fast = endpoint_with(receiver, "Fast Co", "/fast")
    slow_ids = queue(slow, 3, django_capture_on_commit_callbacks)
    fast_ids = queue(fast, 3, django_capture_on_commit_callbacks)
    # A batch of the slow endpoint has been in flight for 5 s (a receiver taking its time).
    Message.objects.filter(webhook_id=slow_ids[0]).update(
        status="sending", claimed_at=timezone.now() - timedelta(seconds=5))
    delivery.message_deliver(webhook_id=slow_ids[1])
    assert Message.objects.get(webhook_id=slow_ids[1]).status == "pending"
    delivery.message_deliver(webhook_id=fast_ids[0])
    assert Message.objects.filter(endpoint=fast, status="succeeded").count() == 3
    assert {r.path for r in receiver.received} == {"/hooks/herald/fast"}


def test_gone_in_a_batch_stops_it_and_fails_the_rest(receiver, enqueued,
                                                     django_capture_on_commit_callbacks):
    endpoint = endpoint_with(receiver)
    ids = queue(endpoint, 5, django_capture_on_commit_callbacks)
    receiver.answer(200, 410)
    delivery.message_deliver(webhook_id=ids[0])
    assert len(receiver.received) == 2
    statuses = dict(Message.objects.values_list("webhook_id", "status"))
    assert [statuses[w] for w in ids] == ["succeeded", "failed", "failed", "failed", "failed"]
    assert Attempt.objects.count() == 2
    endpoint.refresh_from_db()
    assert not endpoint.is_active and "410" in endpoint.disabled_reason
    assert "Not sent: endpoint disabled" in Message.objects.get(webhook_id=ids[4]).last_error
