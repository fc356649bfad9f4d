from django.contrib import admin

from common.admin import AccountScopedAdmin
from guests.models import Attendee, Event


@admin.register(Event)
class EventAdmin(AccountScopedAdmin):
    list_display = ["name", "account", "venue", "starts_at", "created_at"]
    list_filter = ["account"]
    search_fields = ["name", "id"]


@admin.register(Attendee)
class AttendeeAdmin(AccountScopedAdmin):
    list_display = ["id", "first_name", "last_name", "email", "event", "correlation_id"]
    list_filter = ["event"]
    search_fields = ["first_name", "last_name", "email", "id", "correlation_id"]
    list_select_related = ["event"]
    raw_id_fields = ["event"]
