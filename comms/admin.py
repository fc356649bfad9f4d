import base64
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join
from unfold.widgets import UnfoldAdminSelectWidget, UnfoldAdminTextareaWidget

from accounts.admin_base import CAPABILITIES, AccountScopedAdmin
from accounts.models import Account
from common import crypto
from common.errors import HeraldError
from comms import channels, dashboard, tickets, unsubscribe, wording
from comms.models import (
    CallbackBatch,
    Dashboard,
    Delivery,
    Integration,
    OutboxMessage,
    Status,
    Suppression,
)
from comms.providers.registry import CHANNEL_LABELS
from comms.scheduling import deliveries_cancel
from templates.services import without_test_sends


class ModeFilter(admin.SimpleListFilter):
    """Which key mode's rows a changelist shows: live ones unless the sandbox is chosen. A
    test key's rehearsals are support's history too, but shown on their own, never mixed into
    live figures. ``?mode=test`` picks the sandbox; anything else is live."""

    title = "mode"
    parameter_name = "mode"
    LABELS = {Delivery.Mode.LIVE: "Live", Delivery.Mode.TEST: "Sandbox (test key)"}

    def lookups(self, request, model_admin):
        return list(self.LABELS.items())

    def mode(self) -> str:
        return Delivery.Mode.TEST if self.value() == Delivery.Mode.TEST else Delivery.Mode.LIVE

    def choices(self, changelist):
        for value, label in self.lookup_choices:  # no "All": the modes are never mixed
            yield {"selected": self.mode() == value, "display": label,
                   "query_string": changelist.get_query_string({self.parameter_name: value})}

    def queryset(self, request, queryset):
        return queryset.filter(mode=self.mode())


def mode_subtitle(request, rows: str) -> str:
    """The changelist's subtitle naming the mode it shows (as ``ModeFilter`` picks it)."""
    if request.GET.get(ModeFilter.parameter_name) == Delivery.Mode.TEST:
        return f"Sandbox {rows} (test-key rehearsals): nothing here reached a real inbox"
    return f"Live {rows}: test-key rehearsals are under Mode: Sandbox"


class ModeLabelledAdmin(AccountScopedAdmin):
    """A changelist of rows with a key mode: live by default (``ModeFilter``), and it says so."""

    mode_rows = "rows"

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, {
            "subtitle": mode_subtitle(request, self.mode_rows), **(extra_context or {})})
        self.other_mode_hint(request, response)
        return response

    def other_mode_hint(self, request, response) -> None:
        """A search that matches rows of the other mode says so, with the link to them."""
        cl = (getattr(response, "context_data", None) or {}).get("cl")
        if cl is None or not cl.query:
            return
        shown = ModeFilter.parameter_name
        other = (Delivery.Mode.LIVE if request.GET.get(shown) == Delivery.Mode.TEST
                 else Delivery.Mode.TEST)
        rows, _ = self.get_search_results(
            request, self.get_queryset(request).filter(mode=other), cl.query)
        if count := rows.distinct().count():
            messages.info(request, format_html(
                'Also matching this search among {} {}: {} — <a href="{}">show them</a>.',
                "sandbox (test-key)" if other == Delivery.Mode.TEST else "live",
                self.mode_rows, count, cl.get_query_string({shown: other})))


class StatusFilter(admin.ChoicesFieldListFilter):
    """Django's filter of the status field, each status named in staff's words ("Scheduled",
    "Cancelled before it was sent", "Sent to the mail provider")."""

    def choices(self, changelist):
        words = {str(label): wording.status_words(value)
                 for value, label in self.field.flatchoices}
        for choice in super().choices(changelist):
            label, facet, count = str(choice["display"]).partition(" (")
            if label in words:
                choice["display"] = words[label] + (f" ({count}" if facet else "")
            yield choice


@admin.action(description="Cancel (those not sent yet)", permissions=["operate"])
def cancel_deliveries(modeladmin, request, queryset: QuerySet[Delivery]) -> None:
    """Withdraw the selected deliveries still scheduled or waiting for a worker (the same
    service as the APIs' DELETE: ``comms.cancelled`` events and webhooks), however many a
    select-all chose (one UPDATE); those being sent, sent or final are left and counted."""
    total = queryset.count()
    cancelled = len(deliveries_cancel(queryset.order_by(), reason=(
        f"Cancelled by {wording.who(request.user)} in the admin.")))
    refused = total - cancelled
    if not cancelled:
        messages.warning(request, f"None of the {total:,} selected deliveries could be "
                                  "cancelled: each is already being sent, sent, or final.")
        return
    messages.success(request, f"Cancelled {cancelled:,} of {total:,} selected deliveries"
                     + (f"; {refused:,} could not be: already being sent, sent, or final."
                        if refused else "."))


def timeline_lines(delivery: Delivery) -> list[tuple[str, str]]:
    """The delivery's events as (when, what happened in words), oldest first."""
    events = list(delivery.events.all())
    since = None
    if any(e.status == Status.SUPPRESSED for e in events):
        since = (Suppression.objects.filter(
            account_id=delivery.account_id, channel=delivery.channel,
            address=delivery.recipient.lower(), removed_at__isnull=True)
            .order_by("created_at").values_list("created_at", flat=True).first())
    return [(wording.moment(e.occurred_at),
             wording.event_words(name=e.name, status=e.status, detail=e.detail,
                                 channel=delivery.channel, suppressed_since=since))
            for e in events]


@admin.register(Delivery)
class DeliveryAdmin(ModeLabelledAdmin):
    """Every channel's deliveries, in staff's words: the list says when, to whom, on which
    channel and what became of each; a delivery's page is headed by what it is ("Email to
    ann@example.com, 3 Dec, 14:02") and tells its history as sentences. Ids and the sending
    service's references sit in a folded "Technical details" section for developers.
    A front end adds what it knows (its filters, its resend action) by registering a
    subclass in its own admin (``guests.admin``)."""

    list_display = ["created", "recipient", "channel", "status_text", "mode", "attempts"]
    list_display_links = ["created", "recipient"]
    mode_rows = "deliveries"
    # Related filters list only what the user's (scoped) deliveries point at.
    list_filter = [ModeFilter, ("status", StatusFilter), "channel", "provider",
                   ("template", admin.RelatedOnlyFieldListFilter), "event_name"]
    search_fields = ["id", "recipient", "correlation_id", "provider_message_id"]
    fieldsets = [
        (None, {"fields": ["recipient", "channel", "mode", "status_text", "subject",
                           "template", "created", "sent", "delivered", "failed", "attempts"]}),
        ("What happened", {"fields": ["timeline"]}),
        ("The message as sent", {"classes": ["collapse"],
                                 "fields": ["text_body", "html_body"]}),
        ("Technical details", {"classes": ["collapse"], "fields": [
            "id", "provider", "provider_message_id", "event_name", "correlation_id",
            "request_id", "template_version"]}),
    ]
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]]
    list_select_related = ["account"]
    actions = [cancel_deliveries]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]  # newest first, not by UUID

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a record of what was sent: read, resent, never edited

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: Delivery) -> str:
        return wording.moment(obj.created_at)

    @admin.display(description="sent")
    def sent(self, obj: Delivery) -> str:
        return wording.moment(obj.sent_at) or "-"

    @admin.display(description="delivered")
    def delivered(self, obj: Delivery) -> str:
        return wording.moment(obj.delivered_at) or "-"

    @admin.display(description="failed")
    def failed(self, obj: Delivery) -> str:
        return wording.moment(obj.failed_at) or "-"

    @admin.display(description="status", ordering="status")
    def status_text(self, obj: Delivery) -> str:
        if obj.status == Status.SCHEDULED:  # its due time (site's zone): when it will go
            return wording.scheduled_words(obj.next_attempt_at)
        return wording.status_words_with_cause(
            status=obj.status, channel=obj.channel, reason=obj.failure_reason,
            bounce_type=obj.bounce_type, bounce_subtype=obj.bounce_subtype)

    @admin.display(description="history")
    def timeline(self, obj: Delivery) -> str:
        lines = timeline_lines(obj)
        if not lines:
            return "Nothing has happened yet."
        items = format_html_join("", '<li class="py-1"><span class="font-semibold">{}</span>'
                                 " · {}</li>", lines)
        return format_html('<ol class="herald-timeline">{}</ol>', items)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """Headed by what the delivery is and what became of it, not by its id."""
        obj = self.get_object(request, object_id)
        if obj is not None:
            extra_context = {"title": str(obj), "subtitle": self.status_text(obj),
                             **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(OutboxMessage)
class OutboxAdmin(AccountScopedAdmin):
    """What the embedded ``outbox`` provider would have sent, as sent: its extra headers and
    files made again from the delivery by the functions that made them for the send
    (``comms.unsubscribe``, ``comms.tickets``), each file shown and downloadable."""

    list_display = ["sent_at", "recipient", "subject", "status"]
    ordering = ["-created_at"]
    search_fields = ["recipient", "subject"]
    readonly_fields = ["recipient", "subject", "text_body", "html_body", "sent_at", "status",
                       "extra_headers", "files"]
    fields = readonly_fields

    @admin.display(description="extra headers")
    def extra_headers(self, obj: OutboxMessage) -> str:
        headers = unsubscribe.email_headers(obj)
        if not headers:
            return "None"
        return format_html_join(format_html("<br>"), "{}: {}", headers)

    @admin.display(description="attachments")
    def files(self, obj: OutboxMessage) -> str:
        """Each file with its size, a download link and, for an image, the image itself
        (as ``data:`` URLs: the files are a ticket's few kilobytes, made on the fly)."""
        rows = [format_html(
            '<div style="margin-bottom:.75rem">{} {} ({} bytes, {}) '
            '<a href="data:{};base64,{}" download="{}">Download</a>{}</div>',
            "Shown in the email:" if a.disposition == "inline" else "Attached:", a.filename,
            f"{len(a.content):,}", a.content_type, a.content_type.split(";")[0],
            base64.b64encode(a.content).decode("ascii"), a.filename,
            format_html('<br><img src="data:{};base64,{}" alt="{}" style="max-width:12rem">',
                        a.content_type, base64.b64encode(a.content).decode("ascii"),
                        a.filename) if a.content_type.startswith("image/") else "")
            for a in tickets.email_attachments(obj)]
        rows += [format_html("<div>{}</div>", note) for note in tickets.missing(obj)]
        return format_html_join("", "{}", ((row,) for row in rows)) if rows else "None"

    def get_queryset(self, request):
        return super().get_queryset(request).filter(provider="outbox")

    def has_add_permission(self, request) -> bool:
        return False


class SuppressionTopicFilter(admin.SimpleListFilter):
    """What a suppression stops, in words: every message, every topic, or one topic (those
    the listed rows have)."""

    title = "what it stops"
    parameter_name = "topic"

    def lookups(self, request, model_admin):
        topics = (model_admin.get_queryset(request).exclude(topic__in=["", Suppression.ALL_TOPICS])
                  .order_by("topic").values_list("topic", flat=True).distinct())
        return [("-", unsubscribe.topic_words("")),
                (Suppression.ALL_TOPICS, unsubscribe.topic_words(Suppression.ALL_TOPICS)),
                *((topic, unsubscribe.topic_words(topic)) for topic in topics)]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(topic="" if value == "-" else value)


@admin.register(Suppression)
class SuppressionAdmin(ModeLabelledAdmin):
    """Live suppressions block live sends; sandbox ones (a rehearsal's bounce) only test
    sends: shown apart, live by default."""

    list_display = ["address", "account", "mode", "channel", "reason", "stops", "created_at",
                    "removed_at"]
    mode_rows = "suppressions"
    list_filter = [ModeFilter, "reason", SuppressionTopicFilter, "channel",
                   ("removed_at", admin.EmptyFieldListFilter)]
    search_fields = ["address"]
    readonly_fields = ["account", "mode", "channel", "address", "reason", "stops", "detail",
                       "delivery", "created_at", "removed_at"]
    fields = [*readonly_fields, "removed_reason"]

    @admin.display(description="what it stops", ordering="topic")
    def stops(self, suppression: Suppression) -> str:
        """"Every message" (a bounce) or "Unsubscribed from event-updates"."""
        return unsubscribe.topic_words(suppression.topic)

    def save_model(self, request, obj, form, change) -> None:
        """Saving with a removal reason lifts the suppression (the row and reason stay); an
        unsubscribe lifted is a resubscribe, as on the preferences page (its webhook)."""
        from django.utils import timezone

        if obj.topic and obj.removed_reason and obj.removed_at is None:
            unsubscribe.resubscribes_record(account_id=obj.account_id, mode=obj.mode,
                                            address=obj.address, topics=[obj.topic],
                                            reason=obj.removed_reason)
            return
        if obj.removed_reason and obj.removed_at is None:
            obj.removed_at = timezone.now()
        super().save_model(request, obj, form, change)

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(CallbackBatch)
class CallbackBatchAdmin(AccountScopedAdmin):
    """Provider traffic of every account: superusers only."""

    view_roles = change_roles = add_roles = delete_roles = frozenset()
    list_display = ["id", "provider", "received_at", "processed_at", "events_total",
                    "events_applied", "error"]
    list_filter = ["provider"]
    readonly_fields = [f.name for f in CallbackBatch._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


# Vendors' names as staff know them (the registry's names are lower-case ids).
SERVICE_NAMES = {"sns": "Amazon SNS", "fcm": "Firebase (FCM)", "whatsapp_cloud": "WhatsApp Cloud",
                 "webhook": "Your web address"}


class _WriteOnlyJSONField(forms.JSONField):
    """An empty box when nothing was typed (a JSON field shows ``null``)."""

    def prepare_value(self, value):
        return "" if value is None else super().prepare_value(value)


class IntegrationForm(forms.ModelForm):
    """Credentials are write-only: typed in, stored encrypted, never shown again (leave the
    box empty to keep the stored ones)."""

    provider = forms.ChoiceField(label="Sending service", widget=UnfoldAdminSelectWidget,
                                 choices=[
        (name, f"{SERVICE_NAMES.get(name, name.capitalize())} "
               f"({CHANNEL_LABELS.get(channel, channel)})")
        for name, channel in channels.integration_providers().items()])
    # cols: the default 40 monospace columns are wider than a phone (390 px).
    credentials = _WriteOnlyJSONField(
        required=False, widget=UnfoldAdminTextareaWidget(attrs={"rows": 4, "cols": 30,
                                                                "autocomplete": "off"}),
        help_text=("The service's secrets, named as the service names them "
                   '(e.g. {"auth_token": "…"}). Leave empty to keep the stored ones.'))

    class Meta:
        model = Integration
        fields = ["account", "provider", "name", "priority", "is_active", "config"]
        widgets = {"config": UnfoldAdminTextareaWidget(attrs={"rows": 4, "cols": 30})}

    def clean(self):
        data = super().clean()
        provider, creds = data.get("provider"), data.get("credentials")
        if creds is not None and not isinstance(creds, dict):
            raise forms.ValidationError("Credentials must be a JSON object.")
        if provider:
            try:
                channels.integration_settings_check(provider=provider,
                                                    config=data.get("config") or {},
                                                    credentials=creds)
            except HeraldError as exc:
                raise forms.ValidationError(exc.message) from None
        return data

    def save(self, commit: bool = True) -> Integration:
        data = self.cleaned_data
        return channels.integration_save(
            # An existing integration keeps its account (read-only on change: AccountScopedAdmin).
            account=data.get("account") or self.instance.account,
            provider=data["provider"], config=data.get("config") or {},
            credentials=data.get("credentials") or None, name=data.get("name", ""),
            priority=data.get("priority") or 0, is_active=data.get("is_active", True),
            integration=self.instance)

    def save_m2m(self) -> None:
        pass


@admin.register(Integration)
class IntegrationAdmin(AccountScopedAdmin):
    form = IntegrationForm
    list_display = ["__str__", "account", "channel", "provider", "priority", "is_active",
                    "credentials_set"]
    list_filter = ["channel", "provider", "is_active"]
    search_fields = ["name", "provider", "account__name"]
    readonly_fields = ["channel", "credentials_set", "created_at", "updated_at"]
    change_roles = add_roles = CAPABILITIES["manage"]

    @admin.display(description="credentials stored")
    def credentials_set(self, obj: Integration) -> str:
        names = list(crypto.decrypt_json(obj.credentials_encrypted)) if obj.pk else []
        return ", ".join(names) or "none"

    def save_form(self, request, form, change) -> Integration:
        return form.instance  # saved by save_model, through the service

    def save_model(self, request, obj, form, change) -> None:
        form.save()


@admin.register(Dashboard)
class DashboardAdmin(AccountScopedAdmin):
    """Per account: daily stacked bars of outcomes of live sends (``comms.dashboard`` counts
    one mode, live by default). A front end adds its own sections (``guests.admin``: the
    busiest events) by registering a subclass that extends ``sections``."""

    DAYS = 14

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def sections(self, request, scoped: QuerySet[Delivery]) -> list[dict[str, Any]]:
        """One section per account of the user's (the first ten by name)."""
        accounts = Account.objects.filter(id__in=scoped.values("account_id")).order_by("name")
        return [self.section(f"Account: {account.name}", scoped.filter(account=account))
                for account in accounts[:10]]

    def section(self, title: str, rows: QuerySet[Delivery]) -> dict[str, Any]:
        return {"title": title, "chart": dashboard.chart(dashboard.daily(rows, days=self.DAYS)),
                "funnel": dashboard.funnel(rows)}

    def changelist_view(self, request, extra_context=None):
        # Live sends only, for the sections and the ranking too: an event rehearsed with a
        # test key is not among the busiest, an account that only rehearsed has no section.
        scoped = without_test_sends(  # the admin's test sends are no live send either
            self.get_queryset(request).filter(mode=Delivery.Mode.LIVE))
        context = {**self.admin_site.each_context(request), "title": "Dashboard: live sends",
                   "subtitle": "Test-key (sandbox) rehearsals are not counted.",
                   "sections": self.sections(request, scoped), "days": self.DAYS,
                   "opts": self.model._meta,
                   "legend": [(name, colour) for name, colour, _ in dashboard.GROUPS]}
        return TemplateResponse(request, "admin/comms/dashboard.html", context)
