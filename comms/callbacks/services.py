"""Provider callbacks: each stored raw by its provider's view (``comms.callbacks.views``),
then parsed and applied here, in a task. Stored batches are durable jobs (``common.jobs``):
a task locks its batch and newer ones for its transaction, the sweep re-enqueues the ones a
lost task left."""

import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from common import jobs
from comms.callbacks.views import callback_batch_store, callback_error
from comms.lifecycle import provider_events_record
from comms.models import CallbackBatch
from comms.providers import registry
from comms.providers.base import ProviderEvent

__all__ = ["callback_batch_process", "callback_batch_store", "callback_batches_sweep",
           "callback_error"]
log = logging.getLogger(__name__)

# Stored batches: to do until processed; no token, the processing transaction holds them.
BATCHES = jobs.JobTable(CallbackBatch, status=None, token=None, due=None, attempts=None,
                        created="received_at", pending=Q(processed_at__isnull=True))
# A task applies its batch together with the next stored, unprocessed ones, this many in all
# (their own tasks then find them done): one transaction and a handful of statements for all.
BATCHES_PER_TASK = 10


def callback_batch_process(*, batch_id: int, alone: bool = False) -> int:
    """Parse and apply a stored batch, and with it the newer stored batches no task holds (up
    to ``BATCHES_PER_TASK`` in all; ``alone``: just this one), in one transaction: a crash
    leaves them all unprocessed for ``callback_batches_sweep``. If the group fails, the batch
    is tried alone and the group's other batches are re-enqueued to be tried alone too, so a
    batch that cannot be applied only ever fails itself and never strands the others (their
    own tasks may already have skipped them as held). Re-running applies nothing twice.
    Returns the events applied."""
    group: list[int] = []
    try:
        return _process(batch_id, 1 if alone else BATCHES_PER_TASK, group)
    except Exception:
        if len(group) <= 1:
            raise
        log.exception("callback batch %s: its group failed; trying each alone", batch_id)
    for other in group[1:]:
        _enqueue_alone(other)
    return _process(batch_id, 1, [])


def _enqueue_alone(batch_id: int) -> None:
    try:
        jobs.publish("comms.process_callback_batch", batch_id, alone=True)
    except Exception:  # a broker outage, or (eager) that batch failing too: the sweeper's
        log.exception("callback batch %s: not re-enqueued; left to the sweeper", batch_id)


def _process(batch_id: int, limit: int, group: list[int]) -> int:
    """Apply the claimed group; ``group`` receives its batch ids (this one first)."""
    with _gc_paused(), transaction.atomic():
        batches = _claim(batch_id, limit)
        group.extend(batch.id for batch in batches)
        if not batches:
            return 0
        parsed = [(batch, _parse(batch)) for batch in batches]
        new = provider_events_record([e for _, events in parsed for e in events or ()])
        now, at = timezone.now(), 0
        for batch, events in parsed:
            batch.processed_at = now
            if events is not None:
                batch.events_total = len(events)
                batch.events_applied = sum(new[at:at + len(events)])
                at += len(events)
        CallbackBatch.objects.bulk_update(
            batches, ["processed_at", "events_total", "events_applied", "error"])
    return sum(new)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a group is parsed and applied: its thousands of
    short-lived (acyclic, refcount-freed) dicts made collections a third of the worker's CPU.
    Collection resumes afterwards and catches any cycle made meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _claim(batch_id: int, limit: int) -> list[CallbackBatch]:
    """Lock ``batch_id`` if still unprocessed and no other task holds it, then the next newer
    unprocessed batches no task holds: newer only, so a batch the sweeper keeps retrying is
    never taken into another task's group."""
    return jobs.lock(BATCHES, own=batch_id, limit=limit)


def _parse(batch: CallbackBatch) -> list[ProviderEvent] | None:
    """The batch's events; None (and the reason in ``batch.error``, kept for a human, never
    retried) if it cannot be read."""
    try:
        view = registry.load(registry.provider(batch.provider).callbacks)
        return view.parse_events(batch.body)
    except ValueError as exc:  # includes JSON errors
        log.error("callback batch %s (%s) unreadable: %s", batch.id, batch.provider, exc)
        batch.error = str(exc)[:2000]
        return None


def callback_batches_sweep(*, limit: int = 500) -> int:
    """Re-enqueue stored batches a dead worker or lost broker message left unprocessed."""
    grace = timedelta(seconds=settings.HERALD_SWEEP_GRACE_SECONDS)
    pending = jobs.overdue(BATCHES, now=timezone.now(), grace=grace, limit=limit)
    for batch_id in pending:
        jobs.publish("comms.process_callback_batch", batch_id)
    return len(pending)
