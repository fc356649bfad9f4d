"""The one durable-job mechanism (common.jobs), on a real job table (webhook messages) and a
token-less one (callback batches): claims with a token skip what is not due, every later write
is guarded by the token, expired leases and lost tasks are swept, a lease by due time claims
once, and backoff grows, jitters and honours its floor within its cap."""

from datetime import timedelta

import pytest
from django.db.models import Q
from django.utils import timezone

from accounts.services import account_create
from common import jobs
from comms.models import CallbackBatch
from webhooks import services
from webhooks.models import Message

pytestmark = pytest.mark.django_db
MESSAGES = jobs.JobTable(Message, ready="pending", running="sending", touch=("updated_at",))
BATCHES = jobs.JobTable(CallbackBatch, status=None, token=None, due=None, attempts=None,
                        created="received_at", pending=Q(processed_at__isnull=True))


@pytest.fixture
def endpoint(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    keys = account_create(name="Jobs")
    created, _ = services.endpoint_create(account=keys.account, url="http://127.0.0.1:9/hook")
    return created


def messages(endpoint, n: int, *, due_in: float = 0.0) -> list[Message]:
    """``n`` pending messages created in order, due ``due_in`` seconds from now."""
    now = timezone.now()
    return [Message.objects.create(
        webhook_id=f"msg_{endpoint.id.hex[:8]}_{due_in}_{i}", account_id=endpoint.account_id,
        endpoint=endpoint, event_type="webhook.test", payload={},
        next_attempt_at=now + timedelta(seconds=due_in)) for i in range(n)]


def test_a_claim_takes_its_row_and_the_oldest_due_ones_once(endpoint):
    due = messages(endpoint, 4)
    messages(endpoint, 2, due_in=3600)
    now = timezone.now()
    claimed = jobs.claim(MESSAGES, now=now, own=due[2].id, limit=2)
    assert claimed == {due[2].id: 1, due[0].id: 1, due[1].id: 1}
    row = Message.objects.get(id=due[2].id)
    assert (row.status, row.claimed_at, row.next_attempt_at, row.updated_at) == (
        "sending", now, None, now)
    assert jobs.claim(MESSAGES, now=now, own=due[2].id, limit=10) == {due[3].id: 1}
    assert jobs.claim(MESSAGES, now=now, limit=10) == {}  # the rest is not due


def test_scope_gate_and_own_first(endpoint):
    first, second = messages(endpoint, 2)
    now = timezone.now()
    assert jobs.claim(MESSAGES, now=now, own=first.id, limit=5, gate="1 = 0") == {}
    assert jobs.claim(MESSAGES, now=now, own=second.id, limit=5, own_first=True,
                      scope="created_at >= %(after)s", params={"after": second.created_at}) == {
        second.id: 1}
    # own_first: its own row taken, the others are not claimed in its place
    assert jobs.claim(MESSAGES, now=now, own=second.id, limit=5, own_first=True) == {}


def test_writes_after_a_claim_are_guarded_by_its_token(endpoint):
    rows = messages(endpoint, 2)
    now = timezone.now()
    jobs.claim(MESSAGES, now=now, limit=2)
    stale = now - timedelta(seconds=1)
    assert jobs.requeue(MESSAGES, [r.id for r in rows], stale, due_at=now) == 0
    assert jobs.held(MESSAGES, [r.id for r in rows], now).count() == 2
    assert jobs.requeue(MESSAGES, [rows[0].id], now, due_at=now) == 1
    back = Message.objects.get(id=rows[0].id)
    assert (back.status, back.claimed_at, back.attempts) == ("pending", None, 0)


def test_the_sweep_requeues_expired_claims_and_finds_lost_tasks(endpoint):
    rows = messages(endpoint, 3)
    now = timezone.now()
    jobs.claim(MESSAGES, now=now, own=rows[0].id, limit=0)
    jobs.claim(MESSAGES, now=now + timedelta(minutes=4), own=rows[1].id, limit=0)
    swept = now + timedelta(minutes=6)
    lease = timedelta(minutes=5)
    assert jobs.expired_requeue(MESSAGES, now=swept, lease=lease, due_at=swept) == [rows[0].id]
    assert Message.objects.get(id=rows[0].id).attempts == 1  # the attempt stays counted
    later = now + timedelta(minutes=9)
    lost = jobs.overdue(MESSAGES, now=later, grace=timedelta(minutes=2), limit=10, touch=True,
                        fields=("pk", "webhook_id"))
    assert [pk for pk, _ in lost] == [rows[2].id, rows[0].id]
    assert jobs.overdue(MESSAGES, now=later, grace=timedelta(minutes=2), limit=10) == []


def test_a_lease_by_due_time_claims_once_until_it_expires(endpoint):
    [row] = messages(endpoint, 1)
    table = jobs.JobTable(Message, status=None, token=None, due="next_attempt_at",
                          null_due=False, attempts=None)
    now = timezone.now()
    until = now + timedelta(minutes=10)
    assert jobs.lease(table, cutoff=now, until=until, limit=5) == [row.id]
    assert jobs.lease(table, cutoff=now, until=until, limit=5) == []
    assert jobs.lease(table, cutoff=until, until=until + timedelta(minutes=10), limit=5,
                      fields=("pk", "webhook_id")) == [(row.id, row.webhook_id)]


def test_lock_takes_its_row_and_newer_ones_only():
    older, own, newer, done = (CallbackBatch.objects.create(provider="sendgrid", body="[]")
                               for _ in range(4))
    CallbackBatch.objects.filter(id=done.id).update(processed_at=timezone.now())
    assert [b.id for b in jobs.lock(BATCHES, own=own.id, limit=10)] == [own.id, newer.id]
    assert jobs.lock(BATCHES, own=done.id, limit=10) == []
    assert older.id < own.id


def test_backoff_grows_jitters_and_honours_a_capped_floor():
    for attempt, ceiling in [(1, 10), (2, 20), (3, 40), (10, 3600)]:
        delays = {jobs.backoff(attempt, base=10, cap=3600) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays) and len(delays) > 1
    assert all(8 <= jobs.backoff(1, base=10, cap=10, jitter=0.2) <= 10 for _ in range(50))
    assert 300 <= jobs.backoff(1, base=10, cap=3600, floor=300) <= 301
    assert jobs.backoff(1, base=10, cap=60, floor=10**9) <= 61
