"""The sweeper of imports and bulk sends: a job whose task was lost (the broker was down when
it was queued) or whose worker died is queued again. Every job resumes where it stopped:
validation only reads, an import continues after its last committed batch (ids are the
idempotency key), a bulk send after its cursor (batches are serialized by a row lock)."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from guests.models import BulkSend, GuestImport


def guest_jobs_sweep() -> int:
    """Re-queue jobs idle for longer than the grace period (queued but never started) or the
    lease (started, no progress since). Returns how many were queued again."""
    from guests.tasks import bulk_send, import_guests, validate_import

    now = timezone.now()
    grace = now - timedelta(seconds=settings.HERALD_SWEEP_GRACE_SECONDS)
    lease = now - timedelta(seconds=settings.HERALD_SENDING_LEASE_SECONDS)
    count = 0
    for import_id, status in GuestImport.objects.filter(
            Q(status=GuestImport.Status.UPLOADED, updated_at__lt=grace)
            | Q(status=GuestImport.Status.IMPORTING, updated_at__lt=lease)
    ).values_list("id", "status")[:100]:
        # Touch it first, so the next sweep waits another period.
        GuestImport.objects.filter(id=import_id).update(updated_at=now)
        task = validate_import if status == GuestImport.Status.UPLOADED else import_guests
        task.delay(str(import_id))
        count += 1
    for job_id in BulkSend.objects.filter(
            Q(status=BulkSend.Status.PENDING, updated_at__lt=grace)
            | Q(status=BulkSend.Status.CREATING, updated_at__lt=lease)
    ).values_list("id", flat=True)[:100]:
        BulkSend.objects.filter(id=job_id).update(updated_at=now)
        bulk_send.delay(str(job_id))
        count += 1
    return count
