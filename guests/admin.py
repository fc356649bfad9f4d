from django.contrib import admin
from django.db.models import OuterRef, Subquery

from common.admin import AccountScopedAdmin
from comms.admin_actions import resend_attendees
from comms.models import Delivery, Status
from guests.models import Attendee, Event


@admin.register(Event)
class EventAdmin(AccountScopedAdmin):
    list_display = ["name", "account", "venue", "starts_at", "created_at"]
    list_filter = ["account"]
    search_fields = ["name", "id"]


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
