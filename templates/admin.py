from django.contrib import admin

from templates.models import MessageTemplate


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "account", "channel", "language", "version", "updated_at"]
    list_filter = ["channel", "language"]
    search_fields = ["name", "subject", "id"]
    readonly_fields = ["version"]
