"""Sending deliveries: the claim of due rows handed to the send pipeline
(``comms.pipeline``), and the sweeper that re-enqueues what a lost task or a killed worker
left behind. Outcomes are recorded by ``comms.outcomes``, every write guarded by the claim
token.
"""

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from common import jobs, logs
from comms.models import RANK, Delivery, DeliveryEvent, Status
from comms.outcomes import CONNECTION_LOST, DELIVERIES, Content, fail, mark_sent
from comms.pipeline import deliveries_send, delivery_render, give_back, kick
from comms.providers import registry
from comms.queueing import enqueue, kick_taken

log = logging.getLogger(__name__)


def delivery_dispatch(*, delivery_id: str | None) -> None:
    """Claim this delivery, if due, together with other due deliveries waiting behind it, and
    send them as one batch. Under load the queue drains in batches (one claim, one provider
    request per sender, a handful of writes) while an idle system still sends at once; the
    tasks of rows claimed by someone else find nothing to do.

    No transaction is held open across the provider call. ``delivery_id`` None: a kick that
    claims the oldest due rows (``comms.queueing``); a full claim kicks the next batch before
    this one is sent, so a backlog keeps every worker process busy.
    """
    kick_taken()  # before the claim: a sender committing from now on publishes a new kick
    now = timezone.now()
    batch_size = settings.HERALD_DISPATCH_BATCH_SIZE
    ids = _claim(delivery_id, now, batch_size)
    if not ids:
        return
    if len(ids) >= max(batch_size - 1, 1):
        kick()  # the next batch; if the broker went away, still send what is claimed
    # Templates once per batch (not one copy per row, bodies and all).
    try:
        rows = list(Delivery.objects.prefetch_related("template")
                    .filter(id__in=ids).order_by("created_at"))
    except CONNECTION_LOST:  # nothing sent yet: give the rows back now, not after the lease
        give_back([Delivery(id=i, claimed_at=now) for i in ids])
        raise
    logs.delivery_states(Status.SENDING, ((d.id, d.account_id) for d in rows))
    deliveries_send(rows)


def _claim(delivery_id: str | None, now: datetime, batch_size: int) -> list[Any]:
    """This row if due, plus up to ``batch_size - 1`` other due rows, oldest first, skipping
    rows other workers hold (``common.jobs.claim``); all get the same claim token. Without
    ``delivery_id``: up to ``batch_size`` due rows."""
    others = batch_size - 1 if delivery_id else batch_size
    return list(jobs.claim(DELIVERIES, now=now, own=delivery_id, limit=others))


# --- sweeper --------------------------------------------------------------------------------

def deliveries_sweep(*, limit: int = 1000) -> int:
    """Re-enqueue deliveries whose task was lost (queued, overdue by the grace period) and
    re-queue those a killed worker left in ``sending`` past the lease; a delivery that has
    used all its attempts that way fails instead of looping. Returns how many were enqueued."""
    now = timezone.now()
    _reclaim_expired(now)
    grace = timedelta(seconds=settings.HERALD_SWEEP_GRACE_SECONDS)
    # Marked as just re-enqueued (due now), so the next sweep waits another grace period.
    overdue = jobs.overdue(DELIVERIES, now=now, grace=grace, limit=limit, touch=True)
    if overdue:  # one kick: it claims the oldest due rows, and each full claim the next batch
        enqueue(None)
    return len(overdue)


def _reclaim_expired(now: datetime) -> None:
    """Claims past their lease (their worker died or lost the database): first those the
    provider reported, recorded as sent (``_reconcile``); then, where the provider reports
    what it accepted, the others are held back for ``HERALD_RECONCILE_SECONDS`` more, for
    its report to arrive; the rest go back to the queue, or fail once out of attempts."""
    lease = timedelta(seconds=settings.HERALD_SENDING_LEASE_SECONDS)
    lease_end = now - lease
    _reconcile(lease_end)
    waiting = Q()
    if reconciling():  # only live email goes to the reporting provider
        window = timedelta(seconds=settings.HERALD_RECONCILE_SECONDS)
        waiting = ~Q(channel="email", mode=Delivery.Mode.LIVE,
                     claimed_at__gte=lease_end - window)
    expired = jobs.expired(DELIVERIES, now=now, lease=lease) & waiting
    exhausted = Delivery.objects.filter(expired, attempts__gte=settings.HERALD_SEND_MAX_ATTEMPTS)
    for delivery in exhausted.only("id", "claimed_at", "correlation_id", "provider",
                                   "channel", "mode", "account_id")[:1000]:
        fail(delivery, delivery.provider, Status.FAILED, "transient",
              f"No outcome after {settings.HERALD_SEND_MAX_ATTEMPTS} attempts "
              "(the worker stopped each time).")
    # The same condition in the UPDATE: a row re-claimed meanwhile is left alone.
    jobs.expired_requeue(DELIVERIES, now=now, lease=lease, due_at=now - timedelta(days=1),
                         where=waiting)


def reconciling() -> bool:
    """Whether the live email provider's reports are awaited before a lost send is repeated:
    it reports what it accepted (``reports_setting``: SendGrid's Event Webhook ``processed``,
    SES's ``Send`` through SNS, both carrying our delivery id) and that setting is set."""
    found = registry.find(registry.platform_name("email") or "")
    setting = found.reports_setting if found else ""
    return bool(setting and getattr(settings, setting, None)
                and settings.HERALD_RECONCILE_SECONDS > 0)


def _reconcile(lease_end: datetime, limit: int = 1000) -> int:
    """Expired claims the provider has reported on (any event of it with our delivery id):
    it has the message, so it is recorded ``sent`` (with the provider's message id, and the
    content rendered as it was sent) and never sent again; one an event already moved on
    (``delivered``, a bounce…) keeps that status and gets its send recorded. Returns how
    many."""
    reported = DeliveryEvent.objects.filter(delivery_id=OuterRef("pk"),
                                            provider_event_id__isnull=False)
    load = Delivery.objects.prefetch_related("template")
    rows = list(load.filter(status=Status.SENDING, claimed_at__lt=lease_end)
                .filter(Exists(reported))[:limit])
    # Rows a provider event moved on (delivered, bounced…) while still being sent: marked
    # with their claim (``comms.lifecycle``) until their send is recorded.
    rows += load.filter(status__in=MOVED_ON, next_attempt_at__lt=lease_end,
                        sent_at__isnull=True)[:limit]
    if not rows:
        return 0
    first: dict[Any, dict[str, Any]] = {}
    for delivery_id, detail in (DeliveryEvent.objects.filter(
            delivery_id__in=[d.id for d in rows], provider_event_id__isnull=False)
            .order_by("-id").values_list("delivery_id", "detail")):
        first[delivery_id] = detail or {}
    groups: dict[tuple[datetime, str], list[tuple[Delivery, Content, str]]] = defaultdict(list)
    for delivery in rows:
        detail = first.get(delivery.id, {})
        provider = str(detail.get("provider") or registry.platform_name("email"))
        groups[(delivery.claimed_at, provider)].append(
            (delivery, _content_as_sent(delivery), str(detail.get("messageId") or "")))
    for (_, provider), sent in groups.items():
        mark_sent(sent, provider, reconciled=True)
    log.warning("%d deliveries whose worker stopped were reported accepted by the provider: "
                "recorded sent, not sent again", len(rows))
    return len(rows)


# What only a provider event moves a delivery to.
MOVED_ON = [status for status in RANK if status not in (Status.QUEUED, Status.SENDING,
                                                        Status.SENT, Status.SUPPRESSED)]


def _content_as_sent(delivery: Delivery) -> Content:
    """The content a reconciled delivery went out with: stored, else rendered again (the
    worker died before storing it); what is stored if the template no longer renders."""
    if delivery.template_version is not None:
        return Content(delivery.subject, delivery.html_body, delivery.text_body,
                       delivery.template_version)
    try:
        return delivery_render(delivery=delivery)
    except Exception:
        log.warning("Reconciled delivery %s: content not rendered again", delivery.id,
                    exc_info=True)
        return Content(delivery.subject, delivery.html_body, delivery.text_body, None)
