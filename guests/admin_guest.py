"""The guest (attendee) pages of the admin: the list with its delivery-status filters, and
the guest's own page."""

import uuid

from django.contrib import admin
from django.db.models import OuterRef, Subquery

from accounts.admin_base import AccountScopedAdmin
from comms.models import Delivery, Status
from guests import admin_views
from guests.admin_actions import resend_attendees
from guests.models import Attendee


class LastDeliveryStatus(admin.SimpleListFilter):
    """Guests whose latest live delivery is in a status (a later rehearsal does not hide it)."""

    title = "last live delivery status"
    parameter_name = "last_status"
    mode = Delivery.Mode.LIVE

    def lookups(self, request, model_admin):
        return Status.choices

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        latest = Delivery.objects.filter(attendee=OuterRef("pk"), mode=self.mode).order_by(
            "-created_at")
        return queryset.annotate(last_status=Subquery(latest.values("status")[:1])).filter(
            last_status=self.value())


class LastSandboxDeliveryStatus(LastDeliveryStatus):
    """The same of the sandbox: how a guest's latest test-key rehearsal ended."""

    title = "last sandbox (test key) delivery status"
    parameter_name = "last_test_status"
    mode = Delivery.Mode.TEST


class AddedByFilter(admin.ChoicesFieldListFilter):
    """Attendee.mode, titled for what it is: the key mode that added the guest."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.title = "added by"


@admin.register(Attendee)
class AttendeeAdmin(AccountScopedAdmin):
    list_display = ["id", "first_name", "last_name", "email", "event", "correlation_id",
                    "added_by"]
    list_filter = ["event", LastDeliveryStatus, LastSandboxDeliveryStatus,
                   ("mode", AddedByFilter)]
    search_fields = ["first_name", "last_name", "email", "id", "correlation_id"]
    list_select_related = ["event"]
    raw_id_fields = ["event"]
    actions = [resend_attendees]
    ordering = ["-created_at"]

    # Staff never type GUIDs: a guest added here gets a generated id, shown read-only after.
    def get_exclude(self, request, obj: Attendee | None = None) -> list[str]:
        return [*(super().get_exclude(request, obj) or []), *([] if obj else ["id"])]

    def get_readonly_fields(self, request, obj: Attendee | None = None) -> list[str]:
        return [*super().get_readonly_fields(request, obj), *(["id"] if obj else [])]

    def save_model(self, request, obj: Attendee, form, change: bool) -> None:
        if not change and obj.id is None:
            obj.id = uuid.uuid4()
        super().save_model(request, obj, form, change)

    @admin.display(description="added by", ordering="mode")
    def added_by(self, attendee: Attendee) -> str:
        return admin_views.MODE_LABELS.get(attendee.mode, attendee.mode)


