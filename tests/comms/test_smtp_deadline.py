"""SMTP records its outcomes in groups (comms.pipeline): a server that stalls on the NEXT
message (dripping its replies, so smtplib's per-read timeout never fires) must not keep an
accepted one unrecorded past its lease, when the sweeper would let another worker send it
again. Each message's conversation has a wall-clock deadline (comms.providers.smtp._Deadline:
40 % of the lease); the stalled one fails as a timeout and goes again later."""
import asyncio
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from common import jobs
from comms.models import Delivery
from comms.outcomes import DELIVERIES
from tests.comms.test_smtp_batches import _dispatch, _rows

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_accepted_message_is_recorded_before_its_lease_ends_when_the_next_send_stalls(
        api, smtp, settings, template_id):
    settings.HERALD_SEND_RECORD_EVERY = 100
    settings.HERALD_SEND_RECORD_MS = 200          # documented: recorded 0.2 s after the first
    settings.HERALD_SENDING_LEASE_SECONDS = 2
    rows = _rows(api, template_id, 2)
    accept, stalled = smtp.handle_DATA, []

    def g0() -> tuple[str, bool]:
        try:
            row = Delivery.objects.filter(recipient="g0@example.com")
            expired = row.filter(jobs.expired(DELIVERIES, now=timezone.now(),
                                              lease=timedelta(seconds=2))).exists()
            return row.get().status, expired
        finally:
            connection.close()

    async def handle_DATA(server, session, envelope):
        if len(smtp.messages) == 1 and not stalled:  # the 2nd message, once: the server
            stalled.append(True)                      # stalls (a drip: per-read timeouts
            await asyncio.sleep(2.5)                  # never fire)
        return await accept(server, session, envelope)

    smtp.handle_DATA = handle_DATA
    started = time.monotonic()
    _dispatch(rows)
    took = time.monotonic() - started
    # Without the deadline the batch waited out the stall (2.5 s) with g0 accepted but
    # unrecorded past its 2 s lease; now g1's conversation is cut at 40 % of the lease
    # (0.8 s), g0 is recorded, and g1 goes again (eagerly here) and is sent once.
    assert took < 2, took
    assert g0() == ("sent", False)
    g1 = Delivery.objects.get(recipient="g1@example.com")
    assert (g1.status, g1.attempts) == ("sent", 2), (g1.status, g1.attempts)
    assert [m["To"] for m in smtp.messages] == ["g0@example.com", "g1@example.com"]
