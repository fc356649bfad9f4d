from django.contrib import admin

from common.admin import AccountScopedAdmin, ScopedInline
from comms.admin_actions import resend_deliveries
from comms.models import CallbackBatch, Delivery, DeliveryEvent, OutboxMessage, Suppression


class DeliveryEventInline(ScopedInline, admin.TabularInline):
    model = DeliveryEvent
    extra = 0
    can_delete = False
    fields = ["occurred_at", "name", "status", "provider_event_id", "detail"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(AccountScopedAdmin):
    list_display = ["id", "recipient", "status", "mode", "provider", "attempts", "created_at"]
    list_filter = ["status", "mode", "provider", "channel"]
    search_fields = ["id", "recipient", "correlation_id", "provider_message_id"]
    readonly_fields = [f.name for f in Delivery._meta.fields]
    inlines = [DeliveryEventInline]
    actions = [resend_deliveries]
    list_select_related = ["account"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(OutboxMessage)
class OutboxAdmin(AccountScopedAdmin):
    """What the embedded ``outbox`` provider would have sent, as sent."""

    list_display = ["sent_at", "recipient", "subject", "status"]
    search_fields = ["recipient", "subject"]
    readonly_fields = ["recipient", "subject", "text_body", "html_body", "sent_at", "status",
                       "provider_message_id"]
    fields = readonly_fields

    def get_queryset(self, request):
        return super().get_queryset(request).filter(provider="outbox")

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Suppression)
class SuppressionAdmin(AccountScopedAdmin):
    list_display = ["address", "account", "channel", "reason", "created_at", "removed_at"]
    list_filter = ["reason", "channel", ("removed_at", admin.EmptyFieldListFilter)]
    search_fields = ["address"]
    readonly_fields = ["account", "channel", "address", "reason", "detail", "delivery",
                       "created_at", "removed_at"]
    fields = [*readonly_fields, "removed_reason"]

    def save_model(self, request, obj, form, change) -> None:
        """Saving with a removal reason lifts the suppression (the row and reason stay)."""
        from django.utils import timezone

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
