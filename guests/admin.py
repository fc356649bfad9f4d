from django.contrib import admin
from django.db.models import Count, OuterRef, Q, Subquery

from common.admin import AccountScopedAdmin
from comms.admin_actions import resend_attendees
from comms.models import Delivery, Status
from guests.models import Attendee, Event

# The delivery funnel of an event: each column counts its guests' deliveries in a state.
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

    column.short_description = name.replace("_", " / ")
    column.admin_order_field = f"n_{name}"
    return column


@admin.register(Event)
class EventAdmin(AccountScopedAdmin):
    list_display = ["name", "account", "venue", "starts_at", "attendee_count",
                    *[_funnel_column(name) for name in FUNNEL]]
    list_filter = ["account"]
    search_fields = ["name", "id"]

    def get_queryset(self, request):
        """Attendee count and funnel in the changelist query itself (one query per page)."""
        counts = {f"n_{name}": Count("attendees__deliveries", distinct=True,
                                     filter=Q(attendees__deliveries__status__in=statuses))
                  for name, statuses in FUNNEL.items()}
        return super().get_queryset(request).annotate(
            n_attendees=Count("attendees", distinct=True), **counts)

    @admin.display(description="attendees", ordering="n_attendees")
    def attendee_count(self, event: Event) -> int:
        return event.n_attendees


class LastDeliveryStatus(admin.SimpleListFilter):
    title = "last delivery status"
    parameter_name = "last_status"

    def lookups(self, request, model_admin):
        return Status.choices

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        latest = Delivery.objects.filter(attendee=OuterRef("pk")).order_by("-created_at")
        return queryset.annotate(last_status=Subquery(latest.values("status")[:1])).filter(
            last_status=self.value())


@admin.register(Attendee)
class AttendeeAdmin(AccountScopedAdmin):
    list_display = ["id", "first_name", "last_name", "email", "event", "correlation_id"]
    list_filter = ["event", LastDeliveryStatus]
    search_fields = ["first_name", "last_name", "email", "id", "correlation_id"]
    list_select_related = ["event"]
    raw_id_fields = ["event"]
    actions = [resend_attendees]
