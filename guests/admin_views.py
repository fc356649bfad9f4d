"""The Event admin's tools: send a template to its guests (the import is in admin_import).

Each page is built by ``EventAdmin.get_urls`` with ``AccountScopedAdmin.scoped_view`` (staff
login, CSRF protection, the event looked up through the admin's scoped queryset: another
account's is a 404) and declares what it needs per method: starting an import or a send needs
the "operate" capability in the event's account (support may look, 403 otherwise). The views
here receive that event.

The upload URL is wrapped in ``upload_limited``: a body larger than HERALD_IMPORT_MAX_BYTES
(from its Content-Length) is refused before anything reads it — Django's CSRF check would
otherwise parse (and spool to disk) the whole multipart body first.
"""

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import messages
from django.db.models import Exists, OuterRef
from django.db.models.functions import Lower
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from unfold.widgets import INPUT_CLASSES, UnfoldAdminRadioSelectWidget, UnfoldAdminSelectWidget

from accounts.admin_base import AccountScopedAdmin
from common.errors import HeraldError
from comms import dashboard, wording
from comms.models import CANCELLABLE, Delivery, Status
from comms.scheduling import send_at_read
from comms.selectors import suppressions_active
from guests import bulk, selectors
from guests.models import BulkSend, Event, GuestImport


def _page(model_admin: AccountScopedAdmin, request: HttpRequest, page: str, event: Event,
          title: str, status: int = 200, tab: str = "sends", **context: Any) -> TemplateResponse:
    return TemplateResponse(request, f"admin/guests/event/{page}", {
        **model_admin.admin_site.each_context(request), "opts": Event._meta, "event": event,
        "original": event,  # unfold's header: Events, then the event
        "title": title, "can_change": model_admin.has_change_permission(request, event),
        "can_operate": model_admin.has_operate_permission(request, event),
        "tab_list": event_tabs(event, tab), **context,
    }, status=status)


# --- the event's tabs -----------------------------------------------------------------------

def event_tabs(event: Event, active: str, on: str = "guests.event",
               detail: bool = True) -> list[dict[str, Any]]:
    """Unfold's tab bar of an event's pages (its ``tab_list`` context, for the page of model
    ``on``): Overview, Guests, Sends, Deliveries, Dashboard, Door. Each page checks its own
    permission; the tabs only link."""
    guests = reverse("admin:guests_attendee_changelist")
    deliveries = reverse("admin:comms_delivery_changelist")
    links = [
        ("overview", "Overview", reverse("admin:guests_event_change", args=[event.pk])),
        ("guests", "Guests", f"{guests}?event__id__exact={event.pk}"),
        ("sends", "Sends", reverse("admin:guests_event_sends", args=[event.pk])),
        ("deliveries", "Deliveries", f"{deliveries}?{EVENT_DELIVERIES}={event.pk}"),
        ("dashboard", "Dashboard", reverse("admin:guests_event_dashboard", args=[event.pk])),
        ("door", "Door", reverse("admin:guests_event_door", args=[event.pk])),
    ]
    return [{"models": [{"name": on, "detail": detail}], "items": [
        {"title": title, "link": link, "active": name == active, "has_permission": True}
        for name, title, link in links]}]


# The delivery list's parameter of its event filter (``GuestDeliveryAdmin``).
EVENT_DELIVERIES = "attendee__event__id__exact"


def guests_url(event: Event, statuses: Iterable[str] = ()) -> str:
    """The guest list of an event, of guests whose latest live delivery is in one of
    ``statuses`` (the guest list's "last live delivery status" filter)."""
    url = f"{reverse('admin:guests_attendee_changelist')}?event__id__exact={event.pk}"
    ordered = sorted(statuses, key=bulk.STATUS_ORDER.index)
    return f"{url}&last_status={','.join(ordered)}" if ordered else url


# --- bulk send ------------------------------------------------------------------------------

# The "Send at" box's format (an HTML datetime-local input's value).
LOCAL_INPUT = "%Y-%m-%dT%H:%M"


class BulkSendForm(forms.Form):
    template = forms.ModelChoiceField(queryset=None, widget=UnfoldAdminSelectWidget,
                                      label="Ticket template",
                                      help_text="The account's email templates.")
    audience = forms.ChoiceField(label="Guests", choices=BulkSend.Audience.choices,
                                 initial=BulkSend.Audience.ALL, widget=UnfoldAdminRadioSelectWidget)
    mode = forms.ChoiceField(label="Send", choices=[
        (Delivery.Mode.LIVE, "For real: the guests receive it"),
        (Delivery.Mode.TEST, "Rehearsal: nothing reaches an inbox"),
    ], initial=Delivery.Mode.LIVE, widget=UnfoldAdminRadioSelectWidget)
    send_at = forms.DateTimeField(
        label="Send at", required=False,
        widget=forms.DateTimeInput(format=LOCAL_INPUT, attrs={
            "type": "datetime-local", "class": " ".join(INPUT_CLASSES)}))
    token = forms.UUIDField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, event: Event, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["send_at"].help_text = (
            f"In the event's time zone ({event.time_zone}). Leave empty to send at once; a "
            "time already past sends at once too.")
        templates = bulk.bulk_send_templates(event=event)
        self.fields["template"].queryset = templates
        if "template" not in self.initial:  # the one the event was last sent, or the only one
            last = BulkSend.objects.filter(event=event).values_list("template", flat=True)
            only = list(templates.values_list("pk", flat=True)[:2])
            self.initial["template"] = last.first() or (only[0] if len(only) == 1 else None)

    def clean_send_at(self) -> datetime | None:
        """Read in the event's zone (the caller's ``timezone.override``): a time past is now
        (None), more than a year ahead is refused, as the APIs' ``sendAt`` is."""
        when = self.cleaned_data.get("send_at")
        if when is None:
            return None
        try:
            return send_at_read(when.isoformat())
        except ValueError:
            raise forms.ValidationError(
                "Choose a time at most a year from now.", code="too_far") from None


def bulk_send_form(model_admin: AccountScopedAdmin, request: HttpRequest,
                   event: Event) -> HttpResponse:
    """Choose → preview (how many guests, how many skipped) → confirm (carries a one-time
    token: submitting it twice sends once). "Send at" is read and shown in the event's own
    time zone: 19:00 typed for a Paris event is 19:00 in Paris, wherever staff are."""
    with timezone.override(ZoneInfo(event.time_zone)):
        response = _bulk_send_form(model_admin, request, event)
        if hasattr(response, "render"):  # the widgets format their values as it renders
            response.render()
    return response


def _bulk_send_form(model_admin: AccountScopedAdmin, request: HttpRequest,
                    event: Event) -> HttpResponse:
    form = BulkSendForm(request.POST or None, event=event)
    if request.method != "POST" or not form.is_valid():
        return _page(model_admin, request, "bulk_send_form.html", event,
                     "Send tickets", form=form,
                     recent=BulkSend.objects.filter(event=event).select_related("template")[:10])
    data = form.cleaned_data
    if "_confirm" in request.POST and data["token"]:
        try:
            job, created = bulk.bulk_send_create(
                event=event, template_id=data["template"].pk, audience=data["audience"],
                mode=data["mode"], token=data["token"], user=request.user,
                send_at=data["send_at"])
        except HeraldError as exc:
            form.add_error(None, exc.message)
        else:
            if not created:
                messages.info(request, "This send was already confirmed: nothing more was "
                                       "sent.")
            return redirect(_job_url(job))
    confirm = BulkSendForm(initial={**data, "template": data["template"].pk,
                                    "send_at": data["send_at"], "token": uuid.uuid4()},
                           event=event)
    return _page(model_admin, request, "bulk_send_confirm.html", event, "Confirm the send",
                 form=form, confirm=confirm, template=data["template"],
                 audience=BulkSend.Audience(data["audience"]).label,
                 mode=wording.mode_words(data["mode"]),
                 when=wording.scheduled_words(data["send_at"], ZoneInfo(event.time_zone))
                 if data["send_at"] else "",
                 counts=_preview_counts(event, data["template"], data["audience"],
                                        data["mode"]))


def _preview_counts(event: Event, template: Any, audience: str, mode: str) -> dict[str, int]:
    guests = bulk.bulk_send_audience(event=event, template=template, audience=audience,
                                     mode=mode)
    suppressed = suppressions_active(account_ids=[event.account_id], mode=mode,
                                     category=template.category).filter(
        address=Lower(OuterRef("email")))
    matching = guests.count()
    failed = guests.filter(failed_for_good=True).count()
    blocked = guests.filter(Exists(suppressed), failed_for_good=False).count()
    return {"matching": matching, "failed": failed, "suppressed": blocked,
            "to_send": matching - failed - blocked}


def _job_url(job: BulkSend, suffix: str = "") -> str:
    return reverse(f"admin:guests_event_send{suffix}", args=[job.event_id, job.id])


def _job(event: Event, job_id: uuid.UUID) -> BulkSend:
    return get_object_or_404(BulkSend.objects.select_related("template", "event"), id=job_id,
                             event=event)


def bulk_send_detail(model_admin: AccountScopedAdmin, request: HttpRequest, event: Event,
                     job_id: uuid.UUID) -> HttpResponse:
    job = _job(event, job_id)
    progress = send_progress(job)
    cancellable = progress["status"] in RUNNING or any(
        progress["statuses"].get(status) for status in CANCELLABLE)
    return _page(model_admin, request, "bulk_send_detail.html", event,
                 f"Tickets: “{job.template}”", job=job, mode=wording.mode_words(job.mode),
                 progress=progress, progress_url=_job_url(job, "_progress"),
                 all_deliveries=job_deliveries_url(job),
                 cancel_url=_job_url(job, "_cancel") if cancellable else None)


RUNNING = {BulkSend.Status.PENDING, BulkSend.Status.CREATING}


def bulk_send_cancel(model_admin: AccountScopedAdmin, request: HttpRequest, event: Event,
                     job_id: uuid.UUID) -> HttpResponse:
    """POST: "Cancel this send": no more of its tickets are queued, and those still
    scheduled or waiting for a worker are withdrawn; those being sent go. Says how many."""
    job = _job(event, job_id)
    running = job.status in RUNNING
    cancelled = bulk.bulk_send_cancel(job=job, user=request.user)
    job.refresh_from_db()
    left = bulk.bulk_send_statuses(job=job)
    gone = sum(n for status, n in left.items() if status != Status.CANCELLED)
    if cancelled:
        messages.success(request, f"Send cancelled: {len(cancelled):,} tickets withdrawn "
                                  f"before they were sent; {gone:,} had already left or are "
                                  "being sent.")
    elif running:
        messages.success(request, "Send cancelled before any ticket was queued.")
    else:
        messages.info(request, "Nothing to cancel: every ticket of this send already left "
                               "Herald or is being sent.")
    return redirect(_job_url(job))


def bulk_send_progress(model_admin: AccountScopedAdmin, request: HttpRequest, event: Event,
                       job_id: uuid.UUID) -> JsonResponse:
    return JsonResponse(send_progress(_job(event, job_id)))


def progress_state(job: BulkSend, progress: dict[str, Any]) -> str:
    """A send's state in words: the job's status says only whether its deliveries exist."""
    if job.status == BulkSend.Status.FAILED:
        return "Stopped"
    if job.status == BulkSend.Status.CANCELLED:
        return "Cancelled"
    if progress["finished"]:
        return "Done"
    return progress["scheduled"] or "Sending…"


def send_progress(job: BulkSend, statuses: dict[str, int] | None = None) -> dict[str, Any]:
    """``bulk.bulk_send_progress`` with, per status, the link to the job's deliveries in it."""
    progress = bulk.bulk_send_progress(job=job, statuses=statuses)
    for row in progress["rows"]:
        row["url"] = job_deliveries_url(job, row["status"])
    progress["state"] = progress_state(job, progress)
    return progress


# The delivery list's parameter of its "bulk send" filter (``GuestDeliveryAdmin``).
JOB_DELIVERIES = "bulk_send"


def job_deliveries_url(job: BulkSend, status: str | None = None) -> str:
    """The delivery list of the job's deliveries (in ``status``), in the job's mode."""
    url = (f"{reverse('admin:comms_delivery_changelist')}?{JOB_DELIVERIES}={job.pk}"
           f"&mode={job.mode}")
    return f"{url}&status__exact={status}" if status else url


# --- the event's Sends and Dashboard tabs ---------------------------------------------------

def event_sends(model_admin: AccountScopedAdmin, request: HttpRequest,
                event: Event) -> HttpResponse:
    """The event's bulk sends and guest imports, newest first, each linking to its page."""
    sends = list(BulkSend.objects.filter(event=event).select_related("template", "event")[:20])
    statuses = bulk.bulk_send_statuses_many(jobs=sends)
    imports = GuestImport.objects.filter(event=event)[:20]
    return _page(model_admin, request, "sends.html", event, f"{event}: sends and imports",
                 tab="sends", imports=imports, sends=[
                     (job, send_progress(job, statuses[job.pk]),
                      wording.mode_words(job.mode)) for job in sends])


def event_dashboard(model_admin: AccountScopedAdmin, request: HttpRequest,
                    event: Event) -> HttpResponse:
    """The event's guest funnel (each guest once, by their latest live delivery) with links
    to the matching guests, and its live deliveries per day."""
    funnel = selectors.event_guest_funnels(event_ids=[event.pk]).get(
        event.pk, selectors.GuestFunnel())
    live = Delivery.objects.filter(attendee__event=event, mode=Delivery.Mode.LIVE)
    return _page(model_admin, request, "dashboard.html", event, f"{event}: dashboard",
                 tab="dashboard", subtitle="Live sends only: sandbox rehearsals (test key) are "
                 "not counted.", funnel=funnel, cards=funnel_cards(event, funnel),
                 chart=dashboard.chart(dashboard.daily(live, days=DAYS), width=420), days=DAYS,
                 legend=[(LEGEND.get(name, name), colour) for name, colour, _ in dashboard.GROUPS])


DAYS = 14  # the dashboard chart's days
# The chart's outcome groups (``comms.dashboard.GROUPS``), in the funnel's words.
LEGEND = {"pending": "Waiting", "sent": "Sent", "delivered": "Delivered", "opened": "Opened",
          "failed": "Bounced or failed"}
FUNNEL_TITLES = {"waiting": "Waiting", "sent": "Sent", "delivered": "Delivered",
                 "opened": "Opened", "failed": "Bounced or failed"}


def funnel_cards(event: Event, funnel: selectors.GuestFunnel) -> list[dict[str, Any]]:
    """The funnel's figures in words, each with the link to its guests; "Bounced or failed"
    also each of its statuses with its own figure and link."""
    cards = [{"title": "Guests", "count": funnel.guests, "url": guests_url(event), "parts": []}]
    for column, title in FUNNEL_TITLES.items():
        present = funnel.present(column)
        parts = [] if column != "failed" else [
            {"label": wording.status_words(status), "count": funnel.statuses[status],
             "url": guests_url(event, [status])}
            for status in sorted(present, key=bulk.STATUS_ORDER.index)]
        cards.append({"title": title, "count": funnel.count(column), "parts": parts,
                      "url": guests_url(event, present) if present else None})
    return cards
