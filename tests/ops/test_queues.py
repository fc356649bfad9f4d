"""One reading of the queues (``ops.selectors.queues_waiting``): after a known workload,
``/metrics``' gauges and the admin home's Health card show the same depths and oldest due
items; a staff member's card counts only their accounts' items, a superuser's every one."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Account, Membership
from accounts.services import account_create
from comms.messages import Message
from comms.models import CallbackBatch, Delivery
from comms.services import messages_queue
from ops.selectors import queues_waiting
from tests.conftest import member_client
from tests.ops.test_metrics import scrape
from webhooks import services as webhook_services
from webhooks.models import Message as WebhookMessage

NAMES = {"deliveries": "Deliveries waiting to send", "scheduled": "Scheduled sends",
         "webhook_messages": "Webhook messages waiting",
         "callback_batches": "Provider callbacks waiting"}


def _message(account: Account, **fields) -> Message:
    return Message(account_id=account.id, mode="live", channel="email",
                   recipient="ann@example.com", subject="Hi", text="Hi", **fields)


def _workload(account: Account, *, queued_age: int, webhook_age: int, scheduled_in: int,
              extra: int = 0) -> None:
    """Queued deliveries (one waiting ``queued_age`` s, one retry not due yet), two scheduled
    sends (the first in ``scheduled_in`` s), webhook messages (one due ``webhook_age`` s ago,
    one not due); ``extra`` more queued deliveries. Committed without their kicks running."""
    now = timezone.now()
    queued = messages_queue([_message(account) for _ in range(2 + extra)])
    Delivery.objects.filter(id=queued[0]).update(created_at=now - timedelta(seconds=queued_age))
    Delivery.objects.filter(id=queued[1]).update(next_attempt_at=now + timedelta(minutes=5))
    messages_queue([_message(account, send_at=now + timedelta(seconds=scheduled_in)),
                    _message(account, send_at=now + timedelta(hours=5))])
    endpoint, _ = webhook_services.endpoint_create(account=account, url="http://127.0.0.1:9/")
    for n, due in enumerate((now - timedelta(seconds=webhook_age), now + timedelta(minutes=1))):
        WebhookMessage.objects.create(webhook_id=f"msg_{account.id.hex[:8]}_{n}", account=account,
                                      endpoint=endpoint, event_type="comms.sent", payload={},
                                      next_attempt_at=due)


@pytest.fixture
def workload(keys, settings) -> tuple[Account, Account]:
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    mine = Account.objects.get(id=keys.account.id)
    other = Account.objects.get(id=account_create(name="Other Org").account.id)
    _workload(mine, queued_age=90, webhook_age=30, scheduled_in=3600)
    _workload(other, queued_age=600, webhook_age=400, scheduled_in=1800, extra=4)
    CallbackBatch.objects.create(provider="sendgrid", body="[]")
    CallbackBatch.objects.update(received_at=timezone.now() - timedelta(seconds=12))
    CallbackBatch.objects.create(provider="sendgrid", body="[]", processed_at=timezone.now())
    return mine, other


def _card(client: Client) -> dict[str, dict]:
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    return {queue["name"]: queue for queue in response.context["health"]["queues"]}


def test_metrics_and_the_superusers_card_show_the_same_queues(workload):
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(root)
    card = _card(client)
    gauges = scrape()
    read = queues_waiting()
    for queue, name in NAMES.items():
        depth = gauges[("herald_queue_depth", (("queue", queue),))]
        assert card[name]["count"] == depth == read[queue].depth, queue
    assert {queue: read[queue].depth for queue in NAMES} == {
        "deliveries": 8, "scheduled": 4, "webhook_messages": 4, "callback_batches": 1}
    # The oldest due item: the other account's (600 s, 400 s), the same one in both.
    for queue, low in (("deliveries", 600), ("webhook_messages", 400),
                       ("callback_batches", 12)):
        age = gauges[("herald_queue_oldest_due_age_seconds", (("queue", queue),))]
        assert low <= age < low + 10, queue
        assert card[NAMES[queue]]["oldest"] == read[queue].oldest_due
        assert abs((read.at - card[NAMES[queue]]["oldest"]).total_seconds() - age) < 10
    assert gauges[("herald_queue_oldest_due_age_seconds", (("queue", "scheduled"),))] == 0
    next_due = card["Scheduled sends"]["next"]
    assert next_due == read["scheduled"].next_due
    assert gauges[("herald_scheduled_next_due_timestamp_seconds", ())] == pytest.approx(
        next_due.timestamp(), abs=0.001)
    assert card["Deliveries waiting to send"]["late"]  # 10 minutes: flagged
    assert not card["Scheduled sends"]["late"]


def test_a_staff_members_card_reads_their_accounts_queues_only(workload):
    mine, _ = workload
    card = _card(member_client(mine, "stella", Membership.Role.STAFF))
    read = queues_waiting(account_ids=[mine.id])
    assert set(read.queues) == {"deliveries", "scheduled", "webhook_messages"}
    assert "Provider callbacks waiting" not in card  # no account's: internals
    assert {queue: card[NAMES[queue]]["count"] for queue in read.queues} == {
        queue: read[queue].depth for queue in read.queues} == {
        "deliveries": 2, "scheduled": 2, "webhook_messages": 2}
    for queue, low in (("deliveries", 90), ("webhook_messages", 30)):
        assert card[NAMES[queue]]["oldest"] == read[queue].oldest_due
        assert low <= read[queue].age(read.at) < low + 10, queue
    assert not card["Deliveries waiting to send"]["late"]  # 90 s: not yet
    assert card["Scheduled sends"]["next"] == read["scheduled"].next_due
    assert read["scheduled"].next_due - read.at > timedelta(minutes=55)  # theirs, not 30 min


def test_nothing_waiting_reads_zeros(db):
    read = queues_waiting(account_ids=[])
    assert {name: (queue.depth, queue.oldest_due, queue.next_due)
            for name, queue in read.queues.items()} == {
        "deliveries": (0, None, None), "scheduled": (0, None, None),
        "webhook_messages": (0, None, None)}
    assert read["deliveries"].age(read.at) == 0.0
