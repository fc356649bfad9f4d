from django.contrib import admin

from comms.models import Delivery, DeliveryEvent, OutboxMessage


class DeliveryEventInline(admin.TabularInline):
    model = DeliveryEvent
    extra = 0
    can_delete = False
    fields = ["occurred_at", "name", "status", "provider_event_id", "detail"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "recipient", "status", "mode", "provider", "attempts", "created_at"]
    list_filter = ["status", "mode", "provider", "channel"]
    search_fields = ["id", "recipient", "correlation_id", "provider_message_id"]
    readonly_fields = [f.name for f in Delivery._meta.fields]
    inlines = [DeliveryEventInline]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(OutboxMessage)
class OutboxAdmin(admin.ModelAdmin):
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
