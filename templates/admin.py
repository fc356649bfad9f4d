from django.contrib import admin

from common.admin import AccountScopedAdmin
from templates.models import MessageTemplate


@admin.register(MessageTemplate)
class MessageTemplateAdmin(AccountScopedAdmin):
    list_display = ["name", "account", "channel", "language", "version", "updated_at"]
    list_filter = ["channel", "language"]
    search_fields = ["name", "subject", "id"]
    readonly_fields = ["version"]
