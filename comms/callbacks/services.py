"""Provider callbacks: store the raw request, then parse and apply it in a task."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.http import JsonResponse
from django.utils import timezone
from django.utils.module_loading import import_string

from comms.lifecycle import provider_events_apply
from comms.models import CallbackBatch

log = logging.getLogger(__name__)

# provider → "module.function" turning one stored body into ProviderEvents.
PARSERS = {
    "sendgrid": "comms.callbacks.sendgrid.parse_batch",
    "ses": "comms.callbacks.ses.parse_message",
}


def callback_error(status: int, message: str) -> JsonResponse:
    """How every provider callback endpoint refuses a request: ``{"error": message}``."""
    return JsonResponse({"error": message}, status=status)


def callback_batch_store(*, provider: str, body: str) -> CallbackBatch:
    """Keep the request as received and enqueue its processing once it is committed."""
    from comms.tasks import process_callback_batch

    with transaction.atomic():
        batch = CallbackBatch.objects.create(provider=provider, body=body)
        transaction.on_commit(lambda: process_callback_batch.delay(batch.id), robust=True)
    return batch


def callback_batch_process(*, batch_id: int) -> int:
    """Parse and apply a stored batch; re-running it applies nothing twice."""
    batch = CallbackBatch.objects.filter(id=batch_id, processed_at__isnull=True).first()
    if batch is None:
        return 0
    try:
        events = import_string(PARSERS[batch.provider])(batch.body)
    except ValueError as exc:  # includes JSON errors: kept for a human, never retried
        log.error("callback batch %s (%s) unreadable: %s", batch.id, batch.provider, exc)
        CallbackBatch.objects.filter(id=batch.id).update(
            processed_at=timezone.now(), error=str(exc)[:2000])
        return 0
    applied = provider_events_apply(events)
    CallbackBatch.objects.filter(id=batch.id).update(
        processed_at=timezone.now(), events_total=len(events), events_applied=applied)
    return applied


def callback_batches_sweep(*, limit: int = 500) -> int:
    """Re-enqueue stored batches a dead worker or lost broker message left unprocessed."""
    from comms.tasks import process_callback_batch

    cutoff = timezone.now() - timedelta(seconds=settings.HERALD_SWEEP_GRACE_SECONDS)
    pending = list(CallbackBatch.objects.filter(
        processed_at__isnull=True, received_at__lt=cutoff).values_list("id", flat=True)[:limit])
    for batch_id in pending:
        process_callback_batch.delay(batch_id)
    return len(pending)
