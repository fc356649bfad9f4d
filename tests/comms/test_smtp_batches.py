"""The one-by-one path (SMTP's session) records its outcomes in groups (issue 20 item 7): after
``HERALD_SEND_RECORD_EVERY`` messages or ``HERALD_SEND_RECORD_MS``, whichever first, and on
any error, so a dead worker leaves at most one group's accepted messages unrecorded. The
crash window itself is measured with a SIGKILLed prefork worker in
``tests/faults/test_smtp_record_groups.py``."""

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest
from django.db import connection

from comms.models import Delivery, DeliveryEvent

pytestmark = pytest.mark.django_db(transaction=True)


def _rows(api, template_id, n: int) -> list[Delivery]:
    """Queued deliveries without a task (a transactional test would run on-commit sends)."""
    return [Delivery.objects.create(account=api.keys.account, template_id=template_id,
                                    recipient=f"g{i}@example.com") for i in range(n)]


def _sent_so_far() -> int:
    try:
        return Delivery.objects.filter(status="sent").count()
    finally:
        connection.close()


@pytest.fixture
def recorded_before(smtp) -> list[int]:
    """How many deliveries were recorded ``sent`` as each message reached the server."""
    seen: list[int] = []
    accept = smtp.handle_DATA

    async def handle_DATA(server, session, envelope):
        seen.append(await asyncio.to_thread(_sent_so_far))
        return await accept(server, session, envelope)

    smtp.handle_DATA = handle_DATA
    return seen


def _dispatch(rows: list[Delivery]) -> None:
    from comms.dispatch import delivery_dispatch

    delivery_dispatch(delivery_id=str(rows[0].id))


def test_outcomes_are_recorded_every_n_messages(api, recorded_before, settings, template_id):
    settings.HERALD_SEND_RECORD_EVERY = 3
    settings.HERALD_SEND_RECORD_MS = 60_000
    rows = _rows(api, template_id, 7)
    _dispatch(rows)
    assert recorded_before == [0, 0, 0, 3, 3, 3, 6]
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}
    assert DeliveryEvent.objects.filter(name="comms.sent").count() == 7


def test_a_slow_server_has_its_outcomes_recorded_after_the_interval(api, smtp,
                                                                    recorded_before, settings,
                                                                    template_id):
    """Fewer than N messages, each slower than the interval: each recorded before the next."""
    settings.HERALD_SEND_RECORD_EVERY = 100
    settings.HERALD_SEND_RECORD_MS = 100
    rows = _rows(api, template_id, 4)
    counted = smtp.handle_DATA

    async def handle_DATA(server, session, envelope):
        await asyncio.sleep(0.2)
        return await counted(server, session, envelope)

    smtp.handle_DATA = handle_DATA
    _dispatch(rows)
    assert recorded_before == [0, 1, 2, 3]


def test_the_defaults_record_a_dispatch_batch_once(api, recorded_before, template_id):
    """HERALD_SEND_RECORD_EVERY 100 = the dispatch batch, as a SendGrid request's 100."""
    rows = _rows(api, template_id, 5)
    _dispatch(rows)
    assert recorded_before == [0, 0, 0, 0, 0]
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}


class SoftTimeLimit(Exception):
    """What Celery's soft time limit raises: an exception from a signal handler, wherever the
    task's code is (prefork's is SIGUSR1)."""


@pytest.fixture
def soft_limit() -> Iterator[None]:
    def raise_limit(signum, frame):
        raise SoftTimeLimit()

    previous = signal.signal(signal.SIGUSR1, raise_limit)
    yield
    signal.signal(signal.SIGUSR1, previous)


def test_what_was_sent_before_an_error_is_recorded(api, smtp, soft_limit, settings,
                                                    template_id):
    """An exception mid-batch (here a soft time limit while the third message is at the
    server): the two accepted before it are recorded before the error goes up, not left to be
    sent again after the lease."""
    settings.HERALD_SEND_RECORD_EVERY = 100
    settings.HERALD_SEND_RECORD_MS = 60_000
    rows = _rows(api, template_id, 5)
    accept = smtp.handle_DATA

    async def handle_DATA(server, session, envelope):
        if len(smtp.messages) == 2:
            os.kill(os.getpid(), signal.SIGUSR1)  # the client waits for this reply
            await asyncio.sleep(0.5)
        return await accept(server, session, envelope)

    smtp.handle_DATA = handle_DATA
    with pytest.raises(SoftTimeLimit):
        _dispatch(rows)
    statuses = dict(Delivery.objects.values_list("recipient", "status"))
    assert [statuses[f"g{i}@example.com"] for i in range(5)] == [
        "sent", "sent", "sending", "sending", "sending"]
