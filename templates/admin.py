import difflib

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html
from unfold import admin as unfold_admin

from accounts.admin_base import AccountScopedAdmin, ScopedInline
from templates.events import EVENT_CHANNELS, IDENTIFIER, LANGUAGE
from templates.models import MessageTemplate, NotificationEvent, TemplateVersion
from templates.rendering import TemplateCompileError, render, template_check
from templates.samples import SAMPLE
from templates.services import template_save, template_send_test


class TemplateForm(forms.ModelForm):
    """Compiles like the API does; saving goes through ``template_save``, which numbers the
    version (compiled templates are cached per (id, version) in every worker)."""

    fallback = False  # spec 004's {{name | Guest}}: notification-event templates only

    def clean(self):
        data = super().clean()
        try:
            template_check(subject=data.get("subject", ""), html_body=data.get("html_body", ""),
                           text_body=data.get("text_body", ""),
                           fallback=self.fallback or self.instance.event_id is not None)
        except TemplateCompileError as exc:
            field = {"subject": "subject", "htmlBody": "html_body",
                     "textBody": "text_body"}[exc.field]
            self.add_error(field, f"{exc.where.capitalize()}{exc.message}")
        return data


class VersionInline(ScopedInline, unfold_admin.TabularInline):
    """Who changed what: each saved version with the lines changed since the one before."""

    model = TemplateVersion
    extra = 0
    can_delete = False
    fields = ["version", "created_at", "changed_by", "changes"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="changes")
    def changes(self, version: TemplateVersion) -> str:
        previous = (TemplateVersion.objects.filter(template_id=version.template_id,
                                                   version__lt=version.version)
                    .order_by("-version").first())
        if previous is None:
            return "created"
        lines = []
        for field in ("subject", "html_body", "text_body"):
            old, new = getattr(previous, field), getattr(version, field)
            if old != new:
                diff = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="",
                                            n=0)
                lines += [f"{field}:"] + [line for line in diff
                                          if not line.startswith(("---", "+++", "@@"))]
        return format_html('<pre style="white-space:pre-wrap;margin:0">{}</pre>',
                           "\n".join(lines[:60]) or "no content change")


def _who(request) -> str:
    user = request.user
    return f"{user.get_username()} (admin)"


@admin.action(description="Send a test to me (sample data, to my account's email)",
              permissions=["operate"])
def send_test_to_me(modeladmin, request, queryset) -> None:
    address = (request.user.email or "").strip()
    if not address:
        modeladmin.message_user(request, "Your user has no email address: add one to your "
                                "profile first.", messages.ERROR)
        return
    sent = []
    for template in queryset.filter(channel="email")[:10]:
        delivery = template_send_test(template=template, to=address)
        sent.append(f"{template.name} ({delivery.id})")
    if sent:
        modeladmin.message_user(request, f"Test sent to {address}: {', '.join(sent)}.",
                                messages.SUCCESS)
    else:
        modeladmin.message_user(request, "Only email templates can be sent as a test.",
                                messages.WARNING)


@admin.register(MessageTemplate)
class MessageTemplateAdmin(AccountScopedAdmin):
    form = TemplateForm
    list_display = ["name", "account", "channel", "language", "version", "updated_at"]
    list_filter = ["channel", "language", "event"]
    search_fields = ["name", "subject", "id"]
    readonly_fields = ["version", "preview"]
    inlines = [VersionInline]
    actions = [send_test_to_me]

    def save_model(self, request, obj, form, change) -> None:
        template_save(template=obj, actor=_who(request))  # numbers the version

    @admin.display(description="preview (sample data)")
    def preview(self, template: MessageTemplate) -> str:
        """The saved version rendered as a send would; the HTML in a sandboxed iframe (no
        scripts, no same-origin access), the text beside it."""
        if template.pk is None:
            return "Save the template to preview it."
        try:
            rendered = render(cache_key=(str(template.id), template.version),
                              subject=template.subject, html_body=template.html_body,
                              text_body=template.text_body, context=SAMPLE,
                              fallback=template.event_id is not None)
        except Exception as exc:  # the preview shows why a send would fail
            return format_html("<strong>Does not render:</strong> {}", exc)
        return format_html(
            '<p><strong>Subject:</strong> {}</p><div style="display:flex;gap:1em">'
            '<iframe sandbox="" srcdoc="{}" title="HTML preview" '
            'style="flex:1;min-height:24em;border:1px solid #ccc;background:#fff"></iframe>'
            '<pre style="flex:1;white-space:pre-wrap">{}</pre></div>',
            rendered.subject, rendered.html, rendered.text)


class EventTemplateForm(TemplateForm):
    fallback = True


class EventTemplatesFormSet(forms.BaseInlineFormSet):
    """The API's rule: every channel of the event has a template in its default language,
    and one template per channel and language."""

    def clean(self) -> None:
        super().clean()
        event = self.instance
        seen: set[tuple[str, str]] = set()
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or data.get("DELETE"):
                continue
            pair = (data.get("channel"), data.get("language"))
            if pair in seen:
                raise forms.ValidationError(f"Two {pair[0]} templates in {pair[1]}.")
            seen.add(pair)
            if pair[0] not in (event.channels or []):
                raise forms.ValidationError(f"A {pair[0]} template, but the event has no "
                                            f"{pair[0]} channel.")
        missing = [c for c in event.channels or [] if (c, event.default_language) not in seen]
        if missing:
            raise forms.ValidationError(
                f"Every channel needs a template in the default language "
                f"({event.default_language}); missing: {', '.join(missing)}.")


class EventForm(forms.ModelForm):
    class Meta:
        model = NotificationEvent
        fields = ["account", "identifier", "name", "description", "channels",
                  "default_language"]

    def clean(self):
        data = super().clean()
        if data.get("identifier") and not IDENTIFIER.match(data["identifier"]):
            self.add_error("identifier", "Letters, digits and . _ : - (at most 128), e.g. "
                           "order.confirmed.")
        if data.get("default_language") and not LANGUAGE.match(data["default_language"]):
            self.add_error("default_language", "A language tag such as en or pt-BR.")
        channels = data.get("channels")
        if not isinstance(channels, list) or not channels or len(set(channels)) != len(
                channels) or any(c not in EVENT_CHANNELS for c in channels):
            self.add_error("channels", f"A JSON list of distinct channels among "
                           f"{', '.join(EVENT_CHANNELS)}.")
        return data


class EventTemplateInline(ScopedInline, unfold_admin.StackedInline):
    model = MessageTemplate
    form = EventTemplateForm
    formset = EventTemplatesFormSet
    fk_name = "event"
    extra = 0
    fields = ["channel", "language", "subject", "text_body", "html_body", "version"]
    readonly_fields = ["version"]

    def has_add_permission(self, request, obj=None) -> bool:
        return self.parent_allows(request, obj, "change")

    def has_change_permission(self, request, obj=None) -> bool:
        return self.parent_allows(request, obj, "change")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # past deliveries point at their template


@admin.register(NotificationEvent)
class NotificationEventAdmin(AccountScopedAdmin):
    """Spec 004's events with a template per channel and language. Saving goes through the
    same checks as the API (every template compiles, the default language covers every
    channel)."""

    form = EventForm
    list_display = ["identifier", "name", "account", "channels", "default_language",
                    "updated_at"]
    search_fields = ["identifier", "name"]
    inlines = [EventTemplateInline]

    def save_related(self, request, form, formsets, change) -> None:
        for formset in formsets:
            for inline_form in formset.forms:
                if inline_form.instance and not inline_form.instance.account_id:
                    inline_form.instance.account_id = form.instance.account_id
                if inline_form.instance and not inline_form.instance.name:
                    inline_form.instance.name = (
                        f"{form.instance.identifier} ({inline_form.instance.channel}, "
                        f"{inline_form.instance.language})")
        super().save_related(request, form, formsets, change)

    def save_formset(self, request, form, formset, change) -> None:
        """The event's templates go through ``template_save`` (the version numbered under the
        row lock, each recorded), not the formset's own ``instance.save()``."""
        if formset.model is not MessageTemplate:
            super().save_formset(request, form, formset, change)
            return
        formset.save(commit=False)
        for template in [*formset.new_objects, *(obj for obj, _ in formset.changed_objects)]:
            template_save(template=template, actor=_who(request))
        formset.save_m2m()
