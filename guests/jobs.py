"""The sweeper of imports, bulk sends and big events' reminder rules: a job whose task was
lost (the broker was down when it was queued) or whose worker died is queued again. Every job
resumes where it stopped: validation only reads, an import continues after its last committed
batch (ids are the idempotency key), a bulk send after its cursor (batches are serialized by a
row lock), a rule's reminders with the guests who have none of it yet
(``reminders.reminder_rule_fill``: each batch under the rule's row lock).

All are durable jobs (``common.jobs``) whose progress is a time (``updated_at``; a rule's
``fill_due``): a job idle for longer than its period is claimed by moving that time to now (so
the next sweep waits another period) and its task published by name."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from common import jobs
from guests import reminders
from guests.models import BulkSend, GuestImport

IMPORTS = jobs.JobTable(GuestImport, status=None, token=None, due="updated_at",
                        null_due=False, attempts=None)
BULK_SENDS = jobs.JobTable(BulkSend, status=None, token=None, due="updated_at",
                           null_due=False, attempts=None)


def guest_jobs_sweep() -> int:
    """Re-queue jobs idle for longer than the grace period (queued but never started) or the
    lease (started, no progress since). Returns how many were queued again."""
    now = timezone.now()
    grace = timedelta(seconds=settings.HERALD_SWEEP_GRACE_SECONDS)
    lease = timedelta(seconds=settings.HERALD_SENDING_LEASE_SECONDS)
    count = 0
    for table, status, idle, task in (
            (IMPORTS, GuestImport.Status.UPLOADED, grace, "guests.validate_import"),
            (IMPORTS, GuestImport.Status.IMPORTING, lease, "guests.import_guests"),
            (BULK_SENDS, BulkSend.Status.PENDING, grace, "guests.bulk_send"),
            (BULK_SENDS, BulkSend.Status.CREATING, lease, "guests.bulk_send")):
        for job_id in jobs.lease(table, cutoff=now - idle, until=now, limit=100,
                                 where=Q(status=status)):
            jobs.publish(task, str(job_id))
            count += 1
    for rule_id in reminders.reminder_fills_lost(cutoff=now - grace, until=now):
        jobs.publish(reminders.FILL_TASK, str(rule_id))
        count += 1
    return count
