import uuid
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.db.models import Count, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Concat
from django.forms.formsets import INITIAL_FORM_COUNT, TOTAL_FORM_COUNT
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.timezone import localtime
from unfold import admin as unfold_admin
from unfold.widgets import UnfoldAdminIntegerFieldWidget, UnfoldAdminSelectWidget

from accounts.admin_base import AccountScopedAdmin, ScopedInline
from comms import wording
from comms.admin import DashboardAdmin, DeliveryAdmin
from comms.models import Dashboard, Delivery
from comms.services import owner_type_id
from guests import (
    admin_door,
    admin_guest,  # noqa: F401  (registers the guest pages)
    admin_import,
    admin_views,
    bulk,
    reminders,
    selectors,
)
from guests import services as guests_services
from guests.admin_actions import resend_deliveries
from guests.event_times import event_time_problem
from guests.models import (
    Attendee,
    BulkSend,
    Event,
    GuestImport,
    ReminderRule,
    default_time_zone,
    time_zone_names,
)

# --- the event's reminders (guests.reminders) ----------------------------------------------

UNITS = {"minutes": 1, "hours": 60, "days": 1440}


def offset_words(offset_minutes: int) -> str:
    """-1440 → "1 day before the start", 90 → "90 minutes after the start"."""
    amount, unit = offset_parts(offset_minutes)
    side = "before" if offset_minutes < 0 else "after"
    if offset_minutes == 0:
        return "at the start"
    return f"{amount} {unit[:-1] if amount == 1 else unit} {side} the start"


def offset_parts(offset_minutes: int) -> tuple[int, str]:
    """The offset in the largest unit that divides it: (24, "hours")."""
    minutes = abs(offset_minutes)
    unit = next((name for name, size in reversed(UNITS.items())
                 if minutes and minutes % size == 0), "minutes")
    return minutes // UNITS[unit], unit


class ReminderRuleForm(forms.ModelForm):
    """A reminder as staff say it: "24 hours before the start", stored as minutes."""

    amount = forms.IntegerField(min_value=0, initial=24, label="how long",
                                widget=UnfoldAdminIntegerFieldWidget)
    unit = forms.ChoiceField(choices=[(name, name) for name in UNITS], initial="hours",
                             widget=UnfoldAdminSelectWidget)
    direction = forms.ChoiceField(choices=[("before", "before the start"),
                                           ("after", "after the start")], initial="before",
                                  label="when", widget=UnfoldAdminSelectWidget)

    class Meta:
        model = ReminderRule
        fields = ["template"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.instance._state.adding:
            amount, unit = offset_parts(self.instance.offset_minutes)
            self.initial.update(amount=amount, unit=unit, direction=(
                "before" if self.instance.offset_minutes < 0 else "after"))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("amount") is not None and data.get("unit") in UNITS:
            offset = data["amount"] * UNITS[data["unit"]]
            offset = -offset if data.get("direction") == "before" else offset
            if abs(offset) > reminders.MAX_OFFSET_MINUTES:
                self.add_error("amount", "At most a year from the event's start.")
            self.instance.offset_minutes = offset
        return data


class ReminderRuleFormSet(forms.BaseInlineFormSet):
    """Reminders need the event's start (the one being saved): without one, a form error
    instead of reminders that can never be timed; the same template at the same time once.
    A post without the reminders' part (a script's, a form from before they existed) changes
    no reminder, instead of refusing the whole event."""

    def __init__(self, data: Any = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(data, *args, **kwargs)
        if self.is_bound and self.add_prefix(TOTAL_FORM_COUNT) not in self.data:
            self.data = self.data.copy()
            self.data[self.add_prefix(TOTAL_FORM_COUNT)] = "0"
            self.data[self.add_prefix(INITIAL_FORM_COUNT)] = "0"

    def clean(self) -> None:
        super().clean()
        kept = [form for form in self.forms if form.cleaned_data
                and not self._should_delete_form(form)]
        if kept and self.instance.starts_at is None:
            raise forms.ValidationError(
                "Reminders are timed from the event's start: set its start, or remove the "
                "reminders.")
        seen = set()
        for form in kept:
            key = (form.cleaned_data.get("template"), form.instance.offset_minutes)
            if key in seen:
                raise forms.ValidationError("The same template at the same time twice: "
                                            "remove one.")
            seen.add(key)


def _scheduling_told(request, event: Event) -> None:
    """A big event's reminders are made by a job: staff are told they are on their way."""
    messages.info(request, f"The reminders of {event.name}'s guests are being scheduled in the "
                           "background: each guest's page shows them once done.")


class ReminderRuleInline(ScopedInline, unfold_admin.TabularInline):
    """The event's reminders; saving schedules, moves or cancels its guests' reminders
    (``EventAdmin.save_formset``)."""

    model = ReminderRule
    form = ReminderRuleForm
    formset = ReminderRuleFormSet
    extra = 0
    verbose_name = "reminder"
    fields = ["template", "amount", "unit", "direction"]
    readonly_fields = ["when"]

    def get_fields(self, request, obj=None) -> list[str]:
        if self.has_change_permission(request, obj):
            return self.fields
        return ["template", "when"]  # read-only: the offset in words

    def get_formset(self, request, obj=None, **kwargs):
        """Templates: the event's account's email templates."""
        formset = super().get_formset(request, obj, **kwargs)
        field = formset.form.base_fields.get("template")
        if field is not None:
            field.queryset = field.queryset.filter(channel="email", **(
                {"account_id": obj.account_id} if obj is not None else {}))
        return formset

    def has_add_permission(self, request, obj=None) -> bool:
        return self.parent_allows(request, obj, "change")

    def has_change_permission(self, request, obj=None) -> bool:
        return self.parent_allows(request, obj, "change")

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.parent_allows(request, obj, "change")

    @admin.display(description="when")
    def when(self, rule: ReminderRule) -> str:
        return offset_words(rule.offset_minutes) if rule.offset_minutes is not None else "-"


class EventForm(forms.ModelForm):
    """The event's start and end within ``guests.event_times``' range: a form error instead
    of an event whose reminders and check-in cannot be timed."""

    class Meta:
        model = Event
        fields = ["account", "name", "venue", "starts_at", "ends_at", "time_zone"]

    def clean_starts_at(self) -> Any:
        return self._in_range("starts_at")

    def clean_ends_at(self) -> Any:
        return self._in_range("ends_at")

    def _in_range(self, name: str) -> Any:
        value = self.cleaned_data.get(name)
        problem = event_time_problem(value)
        if problem:
            raise forms.ValidationError(problem)
        return value


def _funnel_column(column: str, title: str):
    def figure(event: Event) -> str:
        return funnel_figure(event, column)

    figure.short_description = title
    return figure


@admin.register(Event)
class EventAdmin(AccountScopedAdmin):
    """An event is the staff's workplace: its page has tabs (Overview: this form, Guests,
    Sends, Deliveries, Dashboard) and the buttons "Import guests" and "Send tickets"; its list
    counts guests, not deliveries (``selectors.event_guest_funnels``), each figure a link to
    the matching guests."""

    list_display = ["name", "account", "venue", "starts", "guests",
                    *[_funnel_column(column, title) for column, title in (
                        ("sent", "Sent"), ("delivered", "Delivered"), ("opened", "Opened"),
                        ("failed", "Bounced or failed"))]]
    list_filter = ["account"]
    search_fields = ["name", "id"]
    exclude = ["id"]  # generated; staff never see or type it
    form = EventForm
    change_form_template = "admin/guests/event/change_form.html"
    inlines = [ReminderRuleInline]

    def save_model(self, request, obj: Event, form, change: bool) -> None:
        """Its start and zone as they were: ``save_related`` moves the reminders if they
        changed."""
        before = Event.objects.filter(pk=obj.pk).values_list("starts_at", "time_zone").first()
        obj._reminders_before = before
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change) -> None:
        """After the reminders' own changes (``save_formset``): the guests' scheduled
        deliveries follow the event (its time, name, venue)."""
        super().save_related(request, form, formsets, change)
        event, before = form.instance, getattr(form.instance, "_reminders_before", None)
        if before is not None and reminders.event_reminders_follow(
                event=event, moved=before != (event.starts_at, event.time_zone)):
            _scheduling_told(request, event)

    def save_formset(self, request, form, formset, change) -> None:
        """Reminders through their services: a new one is scheduled for the guests, a
        changed one moves, a removed one's unsent reminders are cancelled."""
        if formset.model is not ReminderRule:
            return super().save_formset(request, form, formset, change)
        rules = formset.save(commit=False)
        for rule in formset.deleted_objects:
            reminders.reminder_rule_delete(rule=rule)
        queued = False
        for rule in rules:
            created = rule._state.adding
            rule.account_id = form.instance.account_id
            rule.save()
            queued = reminders.reminder_rule_saved(rule=rule, created=created) or queued
        if queued:
            _scheduling_told(request, form.instance)

    def delete_model(self, request, obj: Event) -> None:
        """Its guests' unsent deliveries are cancelled (their webhooks go out) first."""
        guests_services.events_delete(events=Event.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset) -> None:
        guests_services.events_delete(events=queryset)

    def get_urls(self):
        """The event's tools: support may look at imports and sends, starting one needs
        the "operate" capability in the event's account (``scoped_view``)."""
        def view(method, **needs):
            return self.scoped_view(method, lookup="event_id", **needs)

        return [
            path("<uuid:event_id>/import/", admin_import.upload_limited(
                view(self.import_upload_view, get="operate", post="operate")),
                 name="guests_event_import_upload"),
            path("<uuid:event_id>/import/<uuid:import_id>/",
                 view(self.import_detail_view, get="view", post="operate"),
                 name="guests_event_import"),
            path("<uuid:event_id>/import/<uuid:import_id>/progress",
                 view(self.import_progress_view, get="view"),
                 name="guests_event_import_progress"),
            path("<uuid:event_id>/send/",
                 view(self.bulk_send_view, get="operate", post="operate"),
                 name="guests_event_send_form"),
            path("<uuid:event_id>/send/<uuid:job_id>/",
                 view(self.bulk_send_detail_view, get="view"), name="guests_event_send"),
            path("<uuid:event_id>/send/<uuid:job_id>/progress",
                 view(self.bulk_send_progress_view, get="view"),
                 name="guests_event_send_progress"),
            path("<uuid:event_id>/send/<uuid:job_id>/cancel/",
                 view(self.bulk_send_cancel_view, post="operate"),
                 name="guests_event_send_cancel"),
            path("<uuid:event_id>/sends/", view(self.sends_view, get="view"),
                 name="guests_event_sends"),
            path("<uuid:event_id>/dashboard/", view(self.dashboard_view, get="view"),
                 name="guests_event_dashboard"),
            # The Door: letting guests in is "operate" (not support's); looking is "view".
            path("<uuid:event_id>/door/", view(self.door_view, get="view"),
                 name="guests_event_door"),
            path("<uuid:event_id>/door/search", view(self.door_search_view, get="view"),
                 name="guests_event_door_search"),
            path("<uuid:event_id>/door/check-in",
                 view(self.door_check_in_view, post="operate"),
                 name="guests_event_door_check_in"),
            path("<uuid:event_id>/door/counts", view(self.door_counts_view, get="view"),
                 name="guests_event_door_counts"),
            *super().get_urls(),
        ]

    def import_upload_view(self, request, event):
        return admin_import.import_upload(self, request, event)

    def import_detail_view(self, request, event, import_id):
        return admin_import.import_detail(self, request, event, import_id)

    def import_progress_view(self, request, event, import_id):
        return admin_import.import_progress(self, request, event, import_id)

    def bulk_send_view(self, request, event):
        return admin_views.bulk_send_form(self, request, event)

    def bulk_send_detail_view(self, request, event, job_id):
        return admin_views.bulk_send_detail(self, request, event, job_id)

    def bulk_send_progress_view(self, request, event, job_id):
        return admin_views.bulk_send_progress(self, request, event, job_id)

    def bulk_send_cancel_view(self, request, event, job_id):
        return admin_views.bulk_send_cancel(self, request, event, job_id)

    def sends_view(self, request, event):
        return admin_views.event_sends(self, request, event)

    def dashboard_view(self, request, event):
        response = admin_views.event_dashboard(self, request, event)
        response.context_data["arrivals"] = admin_door.arrivals(event)  # the Door's chart
        return response

    def door_view(self, request, event):
        return admin_door.door_page(self, request, event)

    def door_search_view(self, request, event):
        return admin_door.door_search(self, request, event)

    def door_check_in_view(self, request, event):
        return admin_door.door_check_in(self, request, event)

    def door_counts_view(self, request, event):
        return admin_door.door_counts(self, request, event)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        """The form shows and reads the start and end in the event's own time zone (the one
        submitted, else the stored one): 19:00 typed for a Paris event is 19:00 in Paris."""
        zone = request.POST.get("time_zone") if request.method == "POST" else None
        if zone not in time_zone_names():
            event = self.get_object(request, object_id) if object_id else None
            zone = event.time_zone if event is not None else default_time_zone()
        with timezone.override(ZoneInfo(zone)):
            response = super().changeform_view(request, object_id, form_url, extra_context)
            if hasattr(response, "render"):  # widgets format their values as it renders
                response.render()
        return response

    @admin.display(description="starts", ordering="starts_at")
    def starts(self, event: Event) -> str:
        """The start in the event's own time zone, as its guests read it."""
        if event.starts_at is None:
            return "-"
        try:
            local = localtime(event.starts_at, ZoneInfo(event.time_zone))
        except OverflowError:  # stored before the bounds (guests.event_times): shown in UTC
            return f"{date_format(event.starts_at, 'D j M Y, H:i')} (UTC)"
        return f"{date_format(local, 'D j M Y, H:i')} ({event.time_zone})"

    def response_add(self, request, obj, post_url_continue=None):
        """A new event opens on its own page (import guests, send tickets), not the list."""
        if "_addanother" in request.POST or IS_POPUP_VAR in request.POST:
            return super().response_add(request, obj, post_url_continue)
        self.message_user(request, f"Event “{obj.name}” created. Next: import its guests.",
                          messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:guests_event_change", args=[obj.pk]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        event = self.get_object(request, object_id)
        extra = {} if event is None else {
            "tab_list": admin_views.event_tabs(event, "overview"),
            "can_operate": self.has_operate_permission(request, event)}
        return super().change_view(request, object_id, form_url,
                                   {**extra, **(extra_context or {})})

    def changelist_view(self, request, extra_context=None):
        """The page's funnels in one query, set on the listed events."""
        response = super().changelist_view(request, {
            "title": "Events",
            "subtitle": "Each guest counts once, by their latest live ticket; sandbox "
                        "rehearsals (test key) are not counted.", **(extra_context or {})})
        cl = (getattr(response, "context_data", None) or {}).get("cl")
        if cl is not None:
            events = list(cl.result_list)
            funnels = selectors.event_guest_funnels(event_ids=[e.pk for e in events])
            for event in events:
                event.funnel = funnels.get(event.pk, selectors.GuestFunnel())
        return response

    @admin.display(description="Guests")
    def guests(self, event: Event) -> str:
        return format_html(LINK, admin_views.guests_url(event), _funnel(event).guests)


# A figure's link, styled as one (unfold's list cells do not colour links).
LINK = '<a class="text-primary-600 dark:text-primary-500 font-medium" href="{}">{}</a>'


def funnel_figure(event: Event, column: str) -> str:
    """The column's guests, linked to them."""
    funnel = _funnel(event)
    count = funnel.count(column)
    if not count:
        return "0"
    return format_html(LINK, admin_views.guests_url(event, funnel.present(column)), count)


def _funnel(event: Event) -> selectors.GuestFunnel:
    """The funnel ``changelist_view`` set (one query for the page), or the event's own."""
    funnel = getattr(event, "funnel", None)
    if funnel is None:
        funnel = selectors.event_guest_funnels(event_ids=[event.pk]).get(
            event.pk, selectors.GuestFunnel())
    return funnel


class JobAdmin(AccountScopedAdmin):
    """History of imports / bulk sends: read-only, each row links to its page."""

    list_filter = ["status"]
    list_select_related = ["event"]

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="page")
    def page(self, obj) -> str:
        url = reverse(self.page_url, args=[obj.event_id, obj.pk])
        return format_html('<a href="{}">open</a>', url)


@admin.register(GuestImport)
class GuestImportAdmin(JobAdmin):
    """Every guest import of the user's events, newest first, each linking to its page."""

    page_url = "admin:guests_event_import"
    list_display = ["uploaded", "event", "filename", "status", "total", "valid", "invalid",
                    "imported", "skipped"]
    list_display_links = None
    exclude = ["errors", "preview"]
    readonly_fields = ["page"]

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Guest imports",
                                                 **(extra_context or {})})

    @admin.display(description="uploaded", ordering="created_at")
    def uploaded(self, job: GuestImport) -> str:
        return format_html(LINK, reverse(self.page_url, args=[job.event_id, job.pk]),
                           date_format(localtime(job.created_at), "j M Y, H:i"))


@admin.register(BulkSend)
class BulkSendAdmin(JobAdmin):
    """Every send of the user's events, newest first: its state from its deliveries (not the
    job's status, which only says whether they exist) and its outcome in words, each a link
    to those deliveries."""

    page_url = "admin:guests_event_send"
    list_display = ["started", "event", "template", "guests", "mode_label", "state", "tickets",
                    "skipped", "outcome"]
    list_display_links = None
    list_filter = ["mode"]
    list_select_related = ["event", "template"]
    list_per_page = 50
    readonly_fields = ["page"]

    def changelist_view(self, request, extra_context=None):
        """The listed sends' deliveries counted in one query, set on each listed job."""
        response = super().changelist_view(request, {
            "title": "Ticket sends", "subtitle": "Newest first; progress and outcome count "
            "each send's own tickets.", **(extra_context or {})})
        cl = (getattr(response, "context_data", None) or {}).get("cl")
        if cl is not None:
            jobs = list(cl.result_list)
            statuses = bulk.bulk_send_statuses_many(jobs=jobs)
            for job in jobs:
                job.progress = admin_views.send_progress(job, statuses[job.pk])
        return response

    def _progress_of(self, job: BulkSend) -> dict[str, Any]:
        if getattr(job, "progress", None) is None:
            job.progress = admin_views.send_progress(job)
        return job.progress

    @admin.display(description="started", ordering="created_at")
    def started(self, job: BulkSend) -> str:
        return format_html(LINK, reverse(self.page_url, args=[job.event_id, job.pk]),
                           date_format(localtime(job.created_at), "j M Y, H:i"))

    @admin.display(description="guests", ordering="audience")
    def guests(self, job: BulkSend) -> str:
        return job.get_audience_display()

    @admin.display(description="mode", ordering="mode")
    def mode_label(self, job: BulkSend) -> str:
        return wording.mode_words(job.mode)

    @admin.display(description="progress")
    def state(self, job: BulkSend) -> str:
        return self._progress_of(job)["state"]

    @admin.display(description="tickets", ordering="queued")
    def tickets(self, job: BulkSend) -> int:
        return job.queued

    @admin.display(description="skipped")
    def skipped(self, job: BulkSend) -> int:
        return job.skipped_failed + job.skipped_suppressed

    @admin.display(description="outcome")
    def outcome(self, job: BulkSend) -> str:
        rows = self._progress_of(job)["rows"]
        links = format_html_join(mark_safe("<br>"), LINK.replace("{}</a>", "{}: {}</a>"), (
            (row["url"], row["label"], row["count"]) for row in rows))
        return links or self.get_empty_value_display()


# --- what check-in adds to the engine's delivery pages ------------------------------------

admin.site.unregister(Delivery)
admin.site.unregister(Dashboard)


class BulkSendFilter(admin.SimpleListFilter):
    """The deliveries one bulk send queued (``?bulk_send=<job id>``: the progress page's
    status links), by the job's id in each delivery's refs. Lists the latest sends."""

    title = "bulk send"
    parameter_name = admin_views.JOB_DELIVERIES

    def lookups(self, request, model_admin):
        jobs = BulkSendAdmin(BulkSend, model_admin.admin_site).get_queryset(request)
        jobs = jobs.select_related("event", "template")
        chosen = jobs.filter(pk=_uuid(self.value())) if _uuid(self.value()) else jobs.none()
        return [(str(job.pk), f"{job.event}: {job.template} "
                              f"({date_format(localtime(job.created_at), 'j M, H:i')})")
                for job in [*chosen, *jobs.exclude(pk__in=chosen)[:10]]]

    def queryset(self, request, queryset):
        job_id = _uuid(self.value())
        if self.value() is None:
            return queryset
        job = BulkSend.objects.filter(pk=job_id).first() if job_id else None
        if job is None:
            return queryset.none()
        return queryset.filter(pk__in=bulk.bulk_send_deliveries(job=job).values("pk"))


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


@admin.register(Delivery)
class GuestDeliveryAdmin(DeliveryAdmin):
    """The engine's deliveries, with check-in's filters (the guest's event, the bulk send),
    a column naming the guest (linked to their page) and its "Resend ticket". Filtered by an
    event, the list is that event's Deliveries tab."""

    list_filter = [*DeliveryAdmin.list_filter,
                   ("attendee__event", admin.RelatedOnlyFieldListFilter), BulkSendFilter]
    actions = [*DeliveryAdmin.actions, resend_deliveries]

    def get_list_display(self, request):
        shown = list(super().get_list_display(request))
        at = shown.index("recipient") + 1 if "recipient" in shown else 0
        return [*shown[:at], "guest", *shown[at:]]

    def get_queryset(self, request):
        guests = Attendee.objects.filter(pk=OuterRef("owner_id"))
        return super().get_queryset(request).annotate(guest_name=Subquery(guests.annotate(
            name=Concat("first_name", Value(" "), "last_name")).values("name")[:1]))

    @admin.display(description="guest")
    def guest(self, delivery: Delivery) -> str:
        name = getattr(delivery, "guest_name", None)
        if name is None or delivery.owner_type_id != owner_type_id(Attendee):
            return self.get_empty_value_display()
        return format_html(LINK, reverse("admin:guests_attendee_change",
                                         args=[delivery.owner_id]), name.strip() or "the guest")

    def changelist_view(self, request, extra_context=None):
        """Filtered by one of the user's events (or one of its sends): that event's tabs."""
        job_id = _uuid(request.GET.get(admin_views.JOB_DELIVERIES))
        job = (BulkSendAdmin(BulkSend, self.admin_site).get_queryset(request)
               .select_related("event", "template").filter(pk=job_id).first()
               if job_id else None)
        event_id = _uuid(request.GET.get(admin_views.EVENT_DELIVERIES))
        event = job.event if job is not None else (
            EventAdmin(Event, self.admin_site).get_queryset(request).filter(pk=event_id).first()
            if event_id else None)
        extra = {} if event is None else {"tab_list": admin_views.event_tabs(
            event, "deliveries", on="comms.delivery", detail=False)}
        if job is not None:
            extra["subtitle"] = (f"The {wording.mode_words(job.mode)} send "
                                 f"of “{job.template}” to {event}, "
                                 f"{date_format(localtime(job.created_at), 'j M, H:i')}")
        return super().changelist_view(request, {**extra, **(extra_context or {})})


@admin.register(Dashboard)
class GuestDashboardAdmin(DashboardAdmin):
    """The engine's dashboard, with a section per busiest event (ten, over its days)."""

    def sections(self, request, scoped: QuerySet[Delivery]) -> list[dict[str, Any]]:
        since = timezone.now() - timedelta(days=self.DAYS)
        busiest = (scoped.filter(created_at__gte=since, attendee__isnull=False)
                   .values("attendee__event").annotate(n=Count("id")).order_by("-n")[:10])
        events = Event.objects.in_bulk([row["attendee__event"] for row in busiest])
        return [*super().sections(request, scoped), *(
            self.section(f"Event: {events[row['attendee__event']].name}",
                         scoped.filter(attendee__event=row["attendee__event"]))
            for row in busiest)]
