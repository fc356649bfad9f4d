"""Webhooks on the real stack: API → broker → a real Celery worker → signed POSTs to a local
receiver, with real commits (no eager tasks, no captured on-commit hooks)."""

import time

import pytest
from celery.contrib.testing.worker import start_worker
from rest_framework.test import APIClient

from config.celery import app
from tests.conftest import TICKET, guest, make_client
from tests.fakes.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker(settings):
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0.05
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    app.conf.task_always_eager = False
    with start_worker(app, pool="threads", concurrency=4, perform_ping_check=False,
                      loglevel="WARNING", shutdown_timeout=10):
        yield


def test_send_reaches_the_receiver_through_a_real_worker(keys, worker):
    with WebhookReceiver() as receiver:
        hooks = APIClient()
        hooks.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.live_key}")
        created = hooks.post("/v1/webhooks", {"url": receiver.url, "enabled_events": [
            "comms.sent", "comms.delivered", "comms.opened", "delivery.delivered"],
            "include_test_events": True}, format="json")  # the send is a sandbox one
        receiver.secret = created.json()["webhook"]["signing_secret"]
        receiver.answer(500)  # the first request fails: retried after the 5 s step or so
        # Configuration (event, template) is set up with the live key; the send is a test key's.
        setup = make_client(keys, test_mode=False)
        event = setup.post("/checkin/v1/api/event", {"name": "Live"}, format="json").json()
        template = setup.post("/comms/v1/api/comms/template", TICKET, format="json").json()
        client = make_client(keys, test_mode=True)
        response = client.post("/checkin/v1/api/guest", guest(event["id"], template["id"]),
                               format="json")
        invitation_id = response.json()["attendeeInvitationId"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(set(receiver.types())) < 4:
            time.sleep(0.1)
        assert sorted(set(receiver.types())) == ["comms.delivered", "comms.opened",
                                                 "comms.sent", "delivery.delivered"]
        for r in receiver.verified:
            data = r.payload.get("data") or r.payload["delivery"]
            assert invitation_id in (data.get("attendeeInvitationId"), data.get("uuid"))
