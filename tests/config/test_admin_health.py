"""The admin home's Health card (issue #20, Operations 4): the queues and their oldest due
item, the last hour's failed sends by provider and reason, and readiness. Staff see their own
accounts' figures; superusers every account's, and the provider callbacks waiting."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from accounts.services import account_create
from comms.messages import Message
from comms.models import CallbackBatch, Delivery
from comms.services import messages_queue
from tests.conftest import guest, member_client


def _queue(account, count: int, **fields) -> None:
    """Deliveries committed as queued (their kick never runs: the test's transaction)."""
    messages_queue([Message(account_id=account.id, mode="live", recipient=f"q{n}@example.com",
                            subject="s", text="t", **fields) for n in range(count)])


def _health(response) -> dict:
    return response.context["health"]


def _queues(response) -> dict[str, int]:
    return {queue["name"]: queue["count"] for queue in _health(response)["queues"]}


@pytest.fixture
def live_sandbox(settings):
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0
    settings.HERALD_EMAIL_PROVIDER = "sandbox"


def test_staff_see_their_queues_and_not_another_accounts(keys):
    other = account_create(name="Other Org")
    _queue(keys.account, 3)
    _queue(keys.account, 2, send_at=timezone.now() + timedelta(days=2))
    _queue(other.account, 5)
    staff = member_client(keys.account, "stella", Membership.Role.STAFF)
    response = staff.get(reverse("admin:index"))
    assert response.status_code == 200
    queues = _queues(response)
    assert queues["Deliveries waiting to send"] == 3
    assert queues["Scheduled sends"] == 2
    assert queues["Webhook messages waiting"] == 0
    assert "Provider callbacks waiting" not in queues  # no account's: internals
    page = response.content.decode()
    assert 'id="health"' in page and "Your accounts' queues" in page
    assert re.search(r"Deliveries waiting to send</td>\s*<td[^>]*>3</td>", page)


def test_superusers_see_every_account_and_the_callbacks(keys):
    other = account_create(name="Other Org")
    _queue(keys.account, 3)
    _queue(other.account, 5)
    CallbackBatch.objects.create(provider="sendgrid", body="[]")
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(root)
    response = client.get(reverse("admin:index"))
    queues = _queues(response)
    assert queues["Deliveries waiting to send"] == 8
    assert queues["Provider callbacks waiting"] == 1
    assert "Every account's queues" in response.content.decode()


def test_the_oldest_due_item_is_shown_and_flagged_when_late(keys):
    _queue(keys.account, 1)
    staff = member_client(keys.account, "stella", Membership.Role.STAFF)
    queue = _health(staff.get(reverse("admin:index")))["queues"][0]
    assert queue["oldest"] is not None and not queue["late"]
    Delivery.objects.filter(account=keys.account).update(
        created_at=timezone.now() - timedelta(minutes=30))
    queue = _health(staff.get(reverse("admin:index")))["queues"][0]
    assert queue["late"]


@pytest.mark.django_db(transaction=True)
def test_the_last_hours_failures_by_provider_and_reason_and_readiness(
        api, live_sandbox, event_id, template_id, keys):
    for n in range(2):
        assert api.post("/checkin/v1/api/guest", guest(
            event_id, template_id, email=f"bounce-{n}@example.com")).status_code == 200
    api.post("/checkin/v1/api/guest", guest(event_id, template_id, email="ok@example.com"))
    staff = member_client(keys.account, "stella", Membership.Role.STAFF)
    response = staff.get(reverse("admin:index"))
    health = _health(response)
    assert [(row["provider"], row["count"]) for row in health["errors"]] == [("sandbox", 2)]
    assert health["checks"] == {"database": "ok", "broker": "ok", "migrations": "ok"}
    assert health["ready"] is True
    page = response.content.decode()
    assert "Failed sends in the last hour" in page and "Ready" in page
    # someone else's failures are not theirs
    other = member_client(account_create(name="Other Org").account, "olga")
    assert _health(other.get(reverse("admin:index")))["errors"] == []
