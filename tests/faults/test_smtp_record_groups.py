"""The SMTP path's crash window once its outcomes are recorded in groups (issue 20 item 7):
a prefork worker (``-c 2``, production's dispatch batch of 100) SIGKILLed mid-drain against a
local aiosmtpd server; the messages the server accepted but the dead worker never recorded
are sent again after the lease, and counted here against the bound: at most one group
(``HERALD_SEND_RECORD_EVERY``, capped by the batch) per pool process, the window of SendGrid's
batch of 100 a request. Nothing is lost. Figures: the ``[fault …]`` line (``pytest -s``)."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from comms.models import Delivery
from tests.faults import test_duplicates, test_faults
from tests.faults.test_duplicates import (
    BATCH,
    CONCURRENCY,
    Beat,
    check_recorded_once,
    drain_queue,
    outcome,
    settle,
    worker_env,
)
from tests.faults.test_faults import LEASE, report, wait_until

# The fault suite's stack (its Redis, workers) and the slow aiosmtpd server, as fixtures here.
fault_redis = test_faults.fault_redis
stack = test_faults.stack
smtp_server = test_duplicates.smtp_server
broker_pools_fresh = test_duplicates.broker_pools_fresh

pytestmark = pytest.mark.django_db(transaction=True)

DRAIN = 600


@pytest.mark.parametrize("record_every", [100, 10])  # the default (= the batch), a smaller one
def test_sigkilled_worker_mid_smtp_drain_resends_at_most_one_group_per_process(
        stack, settings, smtp_server, record_every):
    started = time.monotonic()
    recorder, port = smtp_server
    settings.HERALD_EMAIL_PROVIDER = "smtp"
    env = worker_env(stack, HERALD_EMAIL_PROVIDER="smtp", EMAIL_HOST="127.0.0.1",
                     EMAIL_PORT=str(port), EMAIL_USE_TLS="false", EMAIL_USE_SSL="false",
                     HERALD_SEND_RECORD_EVERY=str(record_every))
    with Beat():
        ids = drain_queue(stack, DRAIN)
        first = stack.worker(**env)
        # Mid-batch: 150 accepted is the middle of each process's second batch of 100.
        wait_until(lambda: len(recorder.messages) >= DRAIN // 4, 40, "the drain did not start")
        first.kill()
        accepted_at_kill = len(recorder.messages)
        recorded_at_kill = Delivery.objects.filter(id__in=ids, sent_at__isnull=False).count()
        stack.worker(**env)
        recovered_s = settle(ids)
    counts = Counter(m["X-Herald-Delivery-Id"] for m in recorder.messages)
    lost, duplicates = outcome(counts, ids)
    check_recorded_once(ids)
    bound = CONCURRENCY * min(record_every, BATCH)
    report("smtp-record-groups-sigkill", drain=DRAIN, batch=BATCH, concurrency=CONCURRENCY,
           record_every=record_every, accepted_at_kill=accepted_at_kill,
           recorded_at_kill=recorded_at_kill,
           unrecorded_at_kill=accepted_at_kill - recorded_at_kill, lost=lost,
           duplicates=duplicates, bound=bound, lease_s=LEASE, recovered_s=recovered_s,
           total_s=round(time.monotonic() - started, 1))
    assert lost == 0 and set(counts) == set(ids)
    assert duplicates <= bound
    # Every duplicate is a message accepted but not recorded when the worker died.
    assert duplicates <= accepted_at_kill - recorded_at_kill
