from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts.admin_base import AccountScopedAdmin
from comms.admin import DashboardAdmin, DeliveryAdmin
from comms.models import Dashboard, Delivery, Status
from guests import (
    admin_guest,  # noqa: F401  (registers the guest pages)
    admin_import,
    admin_views,
)
from guests.admin_actions import resend_deliveries
from guests.models import BulkSend, Event, GuestImport

# The delivery funnel of an event: each column counts its guests' live deliveries in a state
# (a test key's sandbox rehearsal is not traffic and never counts).
FUNNEL = {
    "queued": [Status.QUEUED, Status.SENDING],
    "sent": [Status.SENT],
    "delivered": [Status.DELIVERED],
    "opened": [Status.OPENED, Status.CLICKED],
    "bounced_or_failed": [Status.BOUNCED, Status.DROPPED, Status.FAILED, Status.SUPPRESSED,
                          Status.SPAM_REPORTED, Status.UNSUBSCRIBED],
}


def _funnel_column(name: str):
    def column(event: Event) -> int:
        return getattr(event, f"n_{name}")

    column.short_description = f"live {name.replace('_or_', ' or ')}"
    column.admin_order_field = f"n_{name}"
    return column


@admin.register(Event)
class EventAdmin(AccountScopedAdmin):
    list_display = ["name", "account", "venue", "starts_at", "attendee_count",
                    *[_funnel_column(name) for name in FUNNEL]]
    list_filter = ["account"]
    search_fields = ["name", "id"]
    # Object tools: "Import guests (CSV)" and "Send a template to guests…".
    change_form_template = "admin/guests/event/change_form.html"

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

    def get_queryset(self, request):
        """Attendee count and funnel in the changelist query itself (one query per page), of
        live figures: guests added live or sent to live, and live deliveries."""
        live = Q(attendees__deliveries__mode=Delivery.Mode.LIVE)
        counts = {f"n_{name}": Count("attendees__deliveries", distinct=True,
                                     filter=live & Q(attendees__deliveries__status__in=statuses))
                  for name, statuses in FUNNEL.items()}
        return super().get_queryset(request).annotate(
            n_attendees=Count("attendees", distinct=True,
                              filter=Q(attendees__mode=Delivery.Mode.LIVE) | live),
            **counts)

    @admin.display(description="live attendees", ordering="n_attendees")
    def attendee_count(self, event: Event) -> int:
        return event.n_attendees


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
    page_url = "admin:guests_event_import"
    list_display = ["created_at", "event", "filename", "status", "total", "valid", "invalid",
                    "imported", "skipped", "page"]
    exclude = ["errors", "preview"]
    readonly_fields = ["page"]


@admin.register(BulkSend)
class BulkSendAdmin(JobAdmin):
    page_url = "admin:guests_event_send"
    list_display = ["created_at", "event", "template", "audience", "mode", "status", "total",
                    "queued", "skipped_failed", "skipped_suppressed", "page"]
    list_filter = ["mode", "status"]
    list_select_related = ["event", "template"]
    readonly_fields = ["page"]


# --- what check-in adds to the engine's delivery pages ------------------------------------

admin.site.unregister(Delivery)
admin.site.unregister(Dashboard)


@admin.register(Delivery)
class GuestDeliveryAdmin(DeliveryAdmin):
    """The engine's deliveries, with check-in's event filter and its "Resend ticket"."""

    list_filter = [*DeliveryAdmin.list_filter,
                   ("attendee__event", admin.RelatedOnlyFieldListFilter)]
    actions = [*DeliveryAdmin.actions, resend_deliveries]


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
