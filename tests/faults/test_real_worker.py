"""The whole path on the real stack: API → broker (Redis in CI) → a real Celery worker →
provider → lifecycle, with real commits (no eager tasks)."""

import time

import pytest
from celery.contrib.testing.worker import start_worker

from comms.models import Delivery
from config.celery import app
from tests.conftest import TICKET, guest, make_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker(settings):
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0.05
    app.conf.task_always_eager = False
    with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False,
                      loglevel="WARNING", shutdown_timeout=10):
        yield


def _wait_for(delivery_id: str, status: str, timeout: float = 20.0) -> Delivery:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        delivery = Delivery.objects.get(id=delivery_id)
        if delivery.status == status:
            return delivery
        time.sleep(0.05)
    raise AssertionError(f"delivery {delivery_id} stuck in {delivery.status}")


def test_atomic_send_goes_through_broker_and_worker(keys, worker):
    client = make_client(keys, test_mode=True)
    # Events and templates are configuration: test keys read them, only live keys write them.
    event_id = make_client(keys).post("/checkin/v1/api/event", {"name": "Live"},
                                      format="json").json()["id"]
    template_id = make_client(keys).post("/comms/v1/api/comms/template", TICKET,
                                         format="json").json()["id"]
    response = client.post("/checkin/v1/api/guest", guest(event_id, template_id), format="json")
    assert response.status_code == 200
    delivery = _wait_for(response.json()["attendeeInvitationId"], "opened")
    assert [e.name for e in delivery.events.all()] == ["comms.sent", "comms.delivered",
                                                       "comms.opened"]
    assert delivery.subject == "Your ticket for Live"
