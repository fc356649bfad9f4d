from django.contrib import admin
from django.utils.html import format_html

from common.admin import AccountScopedAdmin
from templates.models import MessageTemplate
from templates.rendering import render

# What the preview renders with: the tokens a ticket send fills in.
SAMPLE = {
    "firstName": "Jane", "lastName": "Smith", "email": "jane@example.com",
    "attendeeId": "00000000-0000-4000-8000-000000000000", "correlationId": "order-2026-0042",
    "attendeeInvitationId": "00000000-0000-4000-8000-000000000001",
    "event": {"id": "00000000-0000-4000-8000-000000000002", "name": "Sample Event",
              "venue": "Main Hall", "startsAt": None, "endsAt": None},
}


@admin.register(MessageTemplate)
class MessageTemplateAdmin(AccountScopedAdmin):
    list_display = ["name", "account", "channel", "language", "version", "updated_at"]
    list_filter = ["channel", "language"]
    search_fields = ["name", "subject", "id"]
    readonly_fields = ["version", "preview"]

    @admin.display(description="preview (sample data)")
    def preview(self, template: MessageTemplate) -> str:
        """The saved version rendered as a send would; the HTML in a sandboxed iframe (no
        scripts, no same-origin access), the text beside it."""
        if template.pk is None:
            return "Save the template to preview it."
        try:
            rendered = render(cache_key=(str(template.id), template.version),
                              subject=template.subject, html_body=template.html_body,
                              text_body=template.text_body, context=SAMPLE)
        except Exception as exc:  # the preview shows why a send would fail
            return format_html("<strong>Does not render:</strong> {}", exc)
        return format_html(
            '<p><strong>Subject:</strong> {}</p><div style="display:flex;gap:1em">'
            '<iframe sandbox="" srcdoc="{}" title="HTML preview" '
            'style="flex:1;min-height:24em;border:1px solid #ccc;background:#fff"></iframe>'
            '<pre style="flex:1;white-space:pre-wrap">{}</pre></div>',
            rendered.subject, rendered.html, rendered.text)
