"""Bulk send: one template to all (or some) guests of an event, from the admin.

A ``BulkSend`` row is the job; its ``token`` comes from the confirm form, so a double click
finds the first job instead of sending twice. The task walks the event's guests in id
order, a batch per transaction: one query for the batch (with the latest delivery status of
the template per guest), one for suppressed addresses, one insert of queued deliveries
(the guests' messages handed to ``comms.services.messages_queue``), and the job's cursor
and counters in the same commit — a re-run resumes after the cursor and never queues a
guest twice. Guests whose latest delivery of the template failed for good (spec 000's 422
rule) or whose address is suppressed are skipped and counted. Every rule reads the job's
mode only: a sandbox rehearsal (deliveries and suppressions of test keys) never makes the
live send skip a guest, and guests a test key added (mode test) are never in a live send's
audience. The 422 rule is about the address: a guest whose email was corrected since the
failure is sent again.

On each commit the engine enqueues one ``comms.send_delivery``, as for spec 003's emails: it
claims its row and the oldest due rows, each full claim kicks the next batch, and dispatch
sends a claimed batch with one SendGrid request per 1,000 personalizations.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import (
    BooleanField,
    Case,
    Count,
    Exists,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone

from common import jobs
from common.errors import Conflict, NotFound
from comms import wording
from comms.messages import Message
from comms.models import FAILURES, PERMANENT_FAILURES, Delivery, Status
from comms.scheduling import deliveries_cancel
from comms.selectors import suppressions_active
from comms.services import account_check_can_send, messages_queue, owner_type_id
from guests.messages import event_context, guest_context, guest_refs
from guests.models import Attendee, BulkSend, Event
from templates.models import MessageTemplate

log = logging.getLogger(__name__)

BATCH = 2000  # guests per transaction (rounded to a multiple of the dispatch step)
# The key of a delivery's ``refs`` naming the job that queued it.
JOB_REF = "bulkSendId"
# The order the progress page lists statuses in (named by ``comms.wording``).
STATUS_ORDER = [
    Status.SCHEDULED, Status.QUEUED, Status.SENDING, Status.SENT, Status.DELIVERED, Status.OPENED,
    Status.CLICKED, Status.BOUNCED, Status.DROPPED, Status.FAILED, Status.SPAM_REPORTED,
    Status.UNSUBSCRIBED, Status.SUPPRESSED, Status.CANCELLED,
]
# Still in Herald: waiting for their time, for a worker, or being sent.
IN_FLIGHT = {Status.SCHEDULED, Status.QUEUED, Status.SENDING}


def bulk_send_templates(*, event: Event) -> QuerySet:
    """The templates an event's guests can be sent: the account's email templates."""
    return MessageTemplate.objects.filter(account_id=event.account_id, channel="email")


def bulk_send_audience(*, event: Event, template: MessageTemplate, audience: str,
                       mode: str = Delivery.Mode.LIVE) -> QuerySet:
    """The event's guests an audience picks, in id order, with their latest delivery of the
    template in this mode: its status (``last_status``) and whether it failed for good to
    the address the guest still has (``failed_for_good``, spec 000's 422 rule). A live
    audience has live guests only: a test key's guests are a rehearsal, never mailed for
    real (a test audience has both: it rehearses the live send)."""
    sent = Delivery.objects.filter(attendee=OuterRef("pk"), template=template, mode=mode)
    latest = sent.order_by("-created_at")
    guests = Attendee.objects.filter(event=event, account_id=event.account_id)
    if mode == Delivery.Mode.LIVE:
        guests = guests.filter(mode=Attendee.LIVE)
    guests = guests.annotate(
        last_status=Subquery(latest.values("status")[:1]),
        last_recipient=Subquery(latest.values("recipient")[:1]))
    # The 422 rule as ``guests.sending.previous_send_check`` reads it: the latest delivery *to
    # the address the guest has now* (an address corrected away and back blocks again).
    to_address = sent.filter(recipient__iexact=OuterRef("email")).order_by("-created_at")
    guests = guests.annotate(address_status=Subquery(to_address.values("status")[:1]))
    guests = guests.annotate(failed_for_good=Case(
        When(Q(address_status__in=PERMANENT_FAILURES), then=Value(True)),
        default=Value(False), output_field=BooleanField()))
    if audience == BulkSend.Audience.NEVER_SENT:
        guests = guests.exclude(Exists(sent))
    elif audience == BulkSend.Audience.LAST_FAILED:
        guests = guests.filter(last_status__in=FAILURES)
    return guests.order_by("id")


def bulk_send_create(*, event: Event, template_id: Any, audience: str, mode: str,
                     token: uuid.UUID, user: Any, send_at: datetime | None = None
                     ) -> tuple[BulkSend, bool]:
    """The job of this confirm token: created (and its task queued on commit), or the one an
    earlier submission of the same form created (``False``: nothing more is sent).
    ``send_at``: when the guests get it (None: now); the task queues every delivery then
    ``scheduled`` for it (``comms.scheduling``), so nothing waits on a worker."""
    if (job := BulkSend.objects.filter(token=token).first()) is not None:
        return _same_account(job, event), False
    template = bulk_send_templates(event=event).filter(id=template_id).first()
    if template is None:
        raise NotFound("template")
    account_check_can_send(account=event.account)
    try:
        with transaction.atomic():
            job = BulkSend.objects.create(
                account_id=event.account_id, event=event, template=template, mode=mode,
                audience=audience, token=token, created_by=user, send_at=send_at)
            transaction.on_commit(lambda: _start(job.id), robust=True)
    except IntegrityError:  # the same form, submitted twice at once: the other one won
        return _same_account(BulkSend.objects.get(token=token), event), False
    return job, True


def _same_account(job: BulkSend, event: Event) -> BulkSend:
    if job.account_id != event.account_id or job.event_id != event.id:
        raise Conflict("token_reused", "This form was already used for another event.")
    return job


def _start(job_id: uuid.UUID) -> None:
    jobs.publish("guests.bulk_send", str(job_id))


def bulk_send_run(*, job_id: Any) -> None:
    """Queue the deliveries of a job, batch by batch (see the module docstring)."""
    started = BulkSend.objects.filter(id=job_id, status=BulkSend.Status.PENDING).first()
    if started is not None:
        total = bulk_send_audience(event=started.event, template=started.template,
                                   audience=started.audience, mode=started.mode).count()
        BulkSend.objects.filter(id=job_id, status=BulkSend.Status.PENDING).update(
            status=BulkSend.Status.CREATING, total=total, started_at=timezone.now(),
            updated_at=timezone.now())
    try:
        while _run_batch(job_id):
            pass
    except Exception as exc:
        log.exception("Bulk send %s failed", job_id)
        BulkSend.objects.filter(id=job_id, status=BulkSend.Status.CREATING).update(
            status=BulkSend.Status.FAILED, error=str(exc)[:2000], finished_at=timezone.now())
        raise


def _run_batch(job_id: Any) -> bool:
    """One batch in one transaction; False once there is nothing left to do."""
    step = _dispatch_step()
    with transaction.atomic():
        job = (BulkSend.objects.select_for_update(of=("self",)).select_related("event", "template")
               .filter(id=job_id, status=BulkSend.Status.CREATING).first())
        if job is None:
            return False
        guests = bulk_send_audience(event=job.event, template=job.template,
                                    audience=job.audience, mode=job.mode)
        if job.cursor is not None:
            guests = guests.filter(id__gt=job.cursor)
        batch = list(guests.values_list("id", "email", "correlation_id", "failed_for_good",
                                        "first_name", "last_name", "ticket_key")[
            :step * max(1, BATCH // step)])
        if not batch:
            job.status, job.finished_at = BulkSend.Status.DONE, timezone.now()
            job.save(update_fields=["status", "finished_at", "updated_at"])
            return False
        suppressed = set(suppressions_active(  # a bounce's, or an unsubscribe from its topic
            account_ids=[job.account_id], mode=job.mode, category=job.template.category,
            addresses=[email for _, email, *_ in batch],
        ).values_list("address", flat=True))
        messages = []
        event, guest_type = event_context(event=job.event), owner_type_id(Attendee)
        for attendee_id, email, correlation_id, failed_for_good, first, last, key in batch:
            if failed_for_good:
                job.skipped_failed += 1
            elif email.strip().lower() in suppressed:
                job.skipped_suppressed += 1
            else:
                messages.append(Message(
                    account_id=job.account_id, mode=job.mode, recipient=email,
                    template_id=job.template_id, correlation_id=correlation_id,
                    owner=(guest_type, attendee_id), to_name=f"{first} {last}".strip(),
                    context=guest_context(attendee_id=attendee_id, first_name=first,
                                          last_name=last, event=event, ticket_key=key),
                    refs=bulk_send_refs(job=job, attendee_id=attendee_id, event=event),
                    send_at=job.send_at))
        messages_queue(messages)  # its send task is enqueued on commit
        job.queued += len(messages)
        job.cursor = batch[-1][0]
        job.save(update_fields=["queued", "skipped_failed", "skipped_suppressed", "cursor",
                                "updated_at"])
    return True


def _dispatch_step() -> int:
    """Deliveries per send task: each claims its own row plus the BATCH_SIZE - 1 oldest due,
    so ⌈n / (size - 1)⌉ tasks claim every row even when they run concurrently."""
    return max(settings.HERALD_DISPATCH_BATCH_SIZE - 1, 1)


def bulk_send_refs(*, job: BulkSend, attendee_id: Any, event: dict[str, Any]) -> dict[str, Any]:
    """A guest's refs, plus the job that queued the delivery: the progress page counts the
    job's own deliveries by it (not every delivery of the event in the job's time window).
    The engine's webhooks read named refs only, so customers never see it."""
    return {**guest_refs(attendee_id=attendee_id, event=event), JOB_REF: str(job.id)}


def bulk_send_deliveries(*, job: BulkSend) -> QuerySet:
    """The deliveries this job queued: tagged with its id in ``refs`` (those of jobs made
    before the tag were tagged by migration guests 0007)."""
    deliveries = Delivery.objects.filter(account_id=job.account_id, mode=job.mode,
                                         template_id=job.template_id)
    if job.started_at is not None:
        deliveries = deliveries.filter(created_at__gte=job.started_at)
    return deliveries.filter(**{f"refs__{JOB_REF}": str(job.id)})


def bulk_send_statuses(*, job: BulkSend) -> dict[str, int]:
    """Status → count of the job's deliveries (``bulk_send_deliveries``)."""
    if job.started_at is None:
        return {}
    rows = bulk_send_deliveries(job=job).values_list("status").annotate(n=Count("id"))
    return dict(rows.order_by())


def bulk_send_statuses_many(*, jobs: list[BulkSend]) -> dict[Any, dict[str, int]]:
    """``bulk_send_statuses`` of several jobs (a list page's) in one query."""
    started = [job for job in jobs if job.started_at is not None]
    counts: dict[Any, dict[str, int]] = {job.pk: {} for job in jobs}
    if not started:
        return counts
    rows = (Delivery.objects.filter(account_id__in={job.account_id for job in started},
                                    created_at__gte=min(job.started_at for job in started))
            .annotate(job=KeyTextTransform(JOB_REF, "refs"))
            .filter(job__in=[str(job.pk) for job in started])
            .values_list("job", "status").annotate(n=Count("id")).order_by())
    for job_id, status, n in rows:
        counts[uuid.UUID(job_id)][status] = n
    return counts


def bulk_send_progress(*, job: BulkSend, statuses: dict[str, int] | None = None
                       ) -> dict[str, Any]:
    """What the progress page shows and polls: the job's deliveries queued of the guests to
    send to, how many left the queue (handed to the provider, or failed), and each status
    in words with its count (``statuses``: already counted, ``bulk_send_statuses_many``).
    ``finished`` only once every delivery the job queued has left Herald — scheduled ones
    wait for their time, which is waiting, not stuck — or the job stopped. A cancelled
    delivery left too, but was never handed over."""
    if statuses is None:
        statuses = bulk_send_statuses(job=job)
    counts = Counts(queued=sum(statuses.values()),
                    waiting=sum(n for status, n in statuses.items() if status in IN_FLIGHT),
                    scheduled=statuses.get(Status.SCHEDULED, 0),
                    cancelled=statuses.get(Status.CANCELLED, 0),
                    to_send=max(job.total - job.skipped_failed - job.skipped_suppressed, 0))
    creating = job.status in (BulkSend.Status.PENDING, BulkSend.Status.CREATING)
    finished = job.status == BulkSend.Status.FAILED or (
        not creating and counts.waiting == 0 and counts.queued >= job.queued)
    return {"status": job.status, "finished": finished,
            "scheduled": bulk_send_when(job=job) if counts.scheduled or creating else "",
            # How soon the page asks again: every second while tickets move, every 30 s while
            # all that waits is a send's time more than a minute ahead.
            "pollSeconds": 30 if (not creating and counts.waiting == counts.scheduled > 0
                                  and job.send_at is not None
                                  and job.send_at > timezone.now() + timedelta(minutes=1))
            else 1,
            "text": _progress_text(job, finished, counts),
            "bars": {"queued": [counts.queued, counts.to_send, "Tickets prepared"],
                     "sent": [counts.handed, job.queued - counts.cancelled,
                              "Handed to the mail service"]},
            "statuses": statuses,
            "rows": [{"status": status, "label": wording.status_words(status),
                      "count": statuses[status]}
                     for status in STATUS_ORDER if statuses.get(status)]}


@dataclass(frozen=True)
class Counts:
    """A job's deliveries by what became of them (``bulk_send_progress``)."""

    queued: int  # made, whatever became of them
    waiting: int  # still in Herald: scheduled, queued or being sent
    scheduled: int  # of those waiting, for their time
    cancelled: int
    to_send: int  # the guests to send to (the audience less the skipped)

    @property
    def handed(self) -> int:
        return self.queued - self.waiting - self.cancelled


def bulk_send_when(*, job: BulkSend) -> str:
    """"Scheduled for Sat 17 Apr, 19:00 (Europe/Paris)": a job's time in its event's zone, as
    staff typed it ("" for a send made at once, or one whose time has come)."""
    if job.send_at is None or job.send_at <= timezone.now():
        return ""
    return wording.scheduled_words(job.send_at, ZoneInfo(job.event.time_zone))


def _progress_text(job: BulkSend, finished: bool, counts: Counts) -> str:
    queued, to_send, waiting = counts.queued, counts.to_send, counts.waiting
    skipped = job.skipped_failed + job.skipped_suppressed
    skipped_text = (f" {skipped:,} guests skipped: {job.skipped_failed:,} whose last ticket "
                    f"failed for good, {job.skipped_suppressed:,} whose address is blocked."
                    if skipped else "")
    if job.status == BulkSend.Status.FAILED:
        return f"Stopped after {queued:,} of {to_send:,} guests: {job.error}"
    if job.status == BulkSend.Status.CANCELLED:
        still = f" {waiting:,} already being sent will still go." if waiting else ""
        return (f"{job.error} {counts.cancelled:,} tickets withdrawn before they were sent; "
                f"{counts.handed:,} had already left Herald.{still}")
    when = bulk_send_when(job=job)
    if job.status == BulkSend.Status.PENDING:
        return f"{when}: starting…" if when else "Starting…"
    if not finished:
        waits = (f"{waiting:,} waiting ({counts.scheduled:,} for their time)"
                 if counts.scheduled else f"{waiting:,} still waiting")
        return (f"{when + '. ' if when else ''}Prepared {queued:,} of {to_send:,}; "
                f"{counts.handed:,} handed to the mail service, {waits}.{skipped_text}")
    withdrawn = f" ({counts.cancelled:,} cancelled before they were sent)" if counts.cancelled \
        else ""
    return f"Done: all {queued:,} tickets left Herald{withdrawn}.{skipped_text}"


def bulk_send_cancel(*, job: BulkSend, user: Any) -> list[Any]:
    """Cancel a send: its task queues no more (the job's row lock is the one each batch
    holds, so no batch commits after this) and every one of its deliveries still scheduled
    or queued is withdrawn (``comms.scheduling.deliveries_cancel``: ``comms.cancelled``
    events and webhooks), in one transaction. Returns the ids cancelled; those a worker
    already holds go. A send that had nothing left to withdraw stays as it was."""
    who = wording.who(user)
    with transaction.atomic():
        locked = BulkSend.objects.select_for_update().get(pk=job.pk)
        cancelled = deliveries_cancel(bulk_send_deliveries(job=locked),
                                      reason=f"Cancelled by {who} with the whole send.")
        running = locked.status in (BulkSend.Status.PENDING, BulkSend.Status.CREATING)
        if running or (cancelled and locked.status == BulkSend.Status.DONE):
            locked.status = BulkSend.Status.CANCELLED
            locked.error = f"Cancelled by {who}, {wording.moment(timezone.now())}."
            locked.finished_at = locked.finished_at or timezone.now()
            locked.save(update_fields=["status", "error", "finished_at", "updated_at"])
    return cancelled
