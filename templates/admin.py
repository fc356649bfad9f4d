import difflib
import uuid
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from unfold import admin as unfold_admin
from unfold.widgets import INPUT_CLASSES, SELECT_CLASSES

from accounts.admin_base import AccountScopedAdmin, ScopedInline
from guests.messages import event_context, guest_context
from guests.models import Attendee, Event
from templates.categories import category_clean
from templates.events import EVENT_CHANNELS, IDENTIFIER, LANGUAGE
from templates.models import TRANSACTIONAL, MessageTemplate, NotificationEvent, TemplateVersion
from templates.rendering import Rendered, TemplateCompileError, render, template_check
from templates.samples import SAMPLE
from templates.services import (
    PICKER_TOKENS,
    TestSendRefused,
    UnknownToken,
    template_save,
    template_send_test,
    template_unknown_tokens,
)

_FIELDS = {"subject": "subject", "htmlBody": "html_body", "textBody": "text_body"}
# unfold's own classes for the controls of the template page's own forms (its CSS holds them)
_INPUT, _SELECT = " ".join(INPUT_CLASSES), " ".join(SELECT_CLASSES)
_TOKEN = ("border border-base-200 bg-white shadow-xs rounded-default px-2 py-1 text-xs "
          "text-important cursor-pointer hover:bg-base-100/80 dark:border-base-700 "
          "dark:bg-transparent")


class TemplateForm(forms.ModelForm):
    """Compiles like the API does; saving goes through ``template_save``, which numbers the
    version (compiled templates are cached per (id, version) in every worker)."""

    fallback = False  # spec 004's {{name | Guest}}: notification-event templates only

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "category" in self.fields:  # left empty: transactional, as the API's default
            self.fields["category"].required = False

    def clean_category(self) -> str:
        """The API's check (``templates.categories``): transactional or a topic slug."""
        try:
            return category_clean(self.cleaned_data.get("category"))
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    unknown_tokens: list[UnknownToken] = []
    keep_tokens = ""  # the typos the author is asked to confirm (a hidden input carries them)

    def clean(self):
        data = super().clean()
        handlebars = self.fallback or self.instance.event_id is not None
        parts = {name: data.get(name, "") or "" for name in ("subject", "html_body", "text_body")}
        try:
            template_check(**parts, fallback=handlebars)
        except TemplateCompileError as exc:
            self.add_error(_FIELDS[exc.field], f"{exc.where.capitalize()}{exc.message}")
            return data
        if not handlebars:  # a notification event's tokens are its contacts' and payload's
            self._check_tokens(parts)
        return data

    def _check_tokens(self, parts: dict[str, str]) -> None:
        """A token that renders as nothing: a likely typo (close to a known token) stops the
        save once, naming the token it resembles, and saving again keeps it (the API's own
        templates may use names of their own); any other is a warning after the save."""
        self.unknown_tokens = template_unknown_tokens(**parts)
        typos = [token for token in self.unknown_tokens if token.typo]
        confirmed = set(filter(None, self.data.get("keep_tokens", "").split(",")))
        if all(token.token in confirmed for token in typos):
            return
        self.keep_tokens = ",".join(token.token for token in typos)
        for token in typos:
            self.add_error(token.field, f"{token} Correct it, or save again to keep "
                           f"“{token.token}” as it is (it shows as nothing).")


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
    try:
        for template in queryset.filter(channel="email")[:10]:
            template_send_test(template=template, to=address, user_id=request.user.pk)
            sent.append(template.name)
    except TestSendRefused as exc:
        modeladmin.message_user(request, str(exc), messages.ERROR)
    if sent:
        modeladmin.message_user(request, f"Test sent to {address}: {', '.join(sent)}.",
                                messages.SUCCESS)
    elif not queryset.filter(channel="email").exists():
        modeladmin.message_user(request, "Only email templates can be sent as a test.",
                                messages.WARNING)


class NotificationEventFilter(admin.RelatedOnlyFieldListFilter):
    """The template's ``event`` is a notification event of the API (spec 004), not a guest
    event: named so."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.title = "notification event (API)"


class TestSendForm(forms.Form):
    to = forms.EmailField(label="Send a test to", max_length=254, widget=forms.EmailInput(
        attrs={"placeholder": "name@example.com", "autocomplete": "email", "class": _INPUT}))
    guest = forms.UUIDField(required=False, widget=forms.HiddenInput)


@admin.register(MessageTemplate)
class MessageTemplateAdmin(AccountScopedAdmin):
    """A template's page: the form with its token picker and a warning for unknown tokens,
    the saved version previewed with a guest of an event, "Send a test to…" any address, and
    the versions."""

    form = TemplateForm
    change_form_template = "admin/templates/messagetemplate/change_form.html"
    list_display = ["name", "account", "channel", "kind", "language", "version", "updated_at"]
    list_filter = ["channel", "category", "language", ("event", NotificationEventFilter)]
    search_fields = ["name", "subject", "id"]
    readonly_fields = ["version", "tokens", "notification_event"]
    inlines = [VersionInline]
    actions = [send_test_to_me]

    class Media:
        js = ["templates/token_picker.js"]

    def get_fields(self, request: HttpRequest, obj: MessageTemplate | None = None) -> list[str]:
        """The notification event (spec 004) is set by that event's page, never here: shown,
        read-only, on its templates only; guest templates get the token picker instead."""
        fields = ["name", "account", "channel", "language"]
        if obj is not None and obj.event_id:
            fields.append("notification_event")
        else:
            fields.append("tokens")
        fields += ["category", "attach_qr", "attach_ics", "subject", "text_body", "html_body"]
        return fields + (["version"] if obj is not None else [])

    def get_urls(self):
        return [
            path("<path:object_id>/send-test/",
                 self.scoped_view(self.send_test_view, post="operate"),
                 name="templates_messagetemplate_send_test"),
            *super().get_urls(),
        ]

    @admin.display(description="Tokens")
    def tokens(self, template: MessageTemplate | None = None) -> str:
        """Buttons inserting ``{{ token }}`` where the cursor was in the subject or a body
        (``token_picker.js``)."""
        buttons = format_html_join(
            "", '<button type="button" class="herald-token {}" data-token="{}" title="Insert {}">'
            '{} <code>{}</code></button>',
            ((_TOKEN, "{{ " + token + " }}", "{{ " + token + " }}", label, token)
             for token, label in PICKER_TOKENS))
        return format_html(
            '<div class="herald-tokens" data-herald-tokens>{}</div><div class="help">Click a '
            "token to insert it where the cursor is in the subject or a body. Dates show in "
            "the event's time zone: <code>|date</code> (Saturday 17 April 2027), "
            "<code>|time</code> (19:00), <code>|datetime</code>.</div>", buttons)

    @admin.display(description="kind", ordering="category")
    def kind(self, template: MessageTemplate) -> str:
        """Transactional, or the topic its recipients can unsubscribe from."""
        if template.category == TRANSACTIONAL:
            return "Transactional (always sent)"
        return f"Topic: {template.category}"

    @admin.display(description="Notification event (API)")
    def notification_event(self, template: MessageTemplate) -> str:
        if template is None or not template.event_id:
            return "—"
        url = reverse("admin:templates_notificationevent_change", args=[template.event_id])
        return format_html('<a href="{}">{}</a><div class="help">A kind of notification the '
                           "API sends (spec 004), not a guest event: this template is edited "
                           "with it.</div>", url, template.event)

    def save_model(self, request, obj, form, change) -> None:
        template_save(template=obj, actor=_who(request))  # numbers the version
        for token in form.unknown_tokens:
            self.message_user(request, str(token), messages.WARNING)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict | None = None) -> HttpResponse:
        template = self.get_object(request, unquote(object_id))
        if template is not None and request.method == "GET":
            extra_context = {**(extra_context or {}),
                             **self._preview_context(request, template)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _preview_context(self, request: HttpRequest, template: MessageTemplate) -> dict:
        """The saved version rendered with a guest of an event (chosen, else the latest
        guest), or with sample data when the account has no guest yet."""
        events = list(Event.objects.filter(account_id=template.account_id)
                      .order_by("-created_at")[:100])
        guest = _guest(template, request.GET.get("guest"), request.GET.get("event"))
        event = next((e for e in events if guest and e.pk == guest.event_id), None) or (
            _find(events, request.GET.get("event")))
        guests = list(Attendee.objects.filter(event=event).order_by("-created_at")[:100]
                      ) if event else []
        rendered, problem = _rendered(template, _context(guest))
        can_send = self.has_operate_permission(request, template) and template.channel == "email"
        return {"preview": rendered, "preview_problem": problem, "preview_events": events,
                "preview_event": event, "preview_guests": guests, "preview_guest": guest,
                "preview_is_handlebars": template.event_id is not None,
                "select_classes": _SELECT,
                "test_send_form": TestSendForm(initial={"to": request.user.email,
                                                        "guest": guest.pk if guest else None})
                if can_send else None}

    def send_test_view(self, request: HttpRequest, template: MessageTemplate) -> HttpResponse:
        """"Send a test to…": the saved version to any address, with the previewed guest's
        data (or sample data); a live send marked as a test (never in live figures)."""
        form = TestSendForm(request.POST)
        back = reverse("admin:templates_messagetemplate_change", args=[template.pk])
        if not form.is_valid():
            messages.error(request, "Enter an email address to send the test to.")
            return HttpResponseRedirect(back)
        guest = _guest(template, str(form.cleaned_data["guest"] or ""), None, latest=False)
        if guest is not None:
            back += "?" + urlencode({"event": guest.event_id, "guest": guest.pk})
        try:
            template_send_test(template=template, to=form.cleaned_data["to"],
                               context=_context(guest), user_id=request.user.pk)
        except TestSendRefused as exc:
            messages.error(request, str(exc))
            return HttpResponseRedirect(back)
        whose = f"{guest.first_name} {guest.last_name}".strip() if guest else ""
        messages.success(request, f"Test sent to {form.cleaned_data['to']} with "
                         f"{f'the data of {whose}' if whose else 'sample data'}. It does not "
                         "count in the event's or the live figures.")
        return HttpResponseRedirect(back)


def _find(rows: list, pk: str | None) -> Any:
    return next((row for row in rows if str(row.pk) == pk), rows[0] if rows else None)


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _guest(template: MessageTemplate, guest_id: str | None, event_id: str | None,
           latest: bool = True) -> Attendee | None:
    """The guest of the template's account named by ``guest_id``; else (``latest``) the
    latest guest of the event ``event_id``, or of the account."""
    guests = Attendee.objects.filter(account_id=template.account_id).select_related("event")
    found = guests.filter(pk=_uuid(guest_id)).first() if _uuid(guest_id) else None
    if found is not None or not latest:
        return found
    if _uuid(event_id):
        guests = guests.filter(event_id=_uuid(event_id))
    return guests.order_by("-created_at").first()


def _context(guest: Attendee | None) -> dict[str, Any]:
    """What a send to ``guest`` renders with (``guests.messages``), or the sample data."""
    if guest is None:
        return dict(SAMPLE)
    return {"email": guest.email, "correlationId": guest.correlation_id or "",
            "attendeeInvitationId": "(this message's id)",
            "unsubscribe_url": SAMPLE["unsubscribe_url"],
            "preferences_url": SAMPLE["preferences_url"],
            **guest_context(attendee_id=guest.pk, first_name=guest.first_name,
                            last_name=guest.last_name, event=event_context(event=guest.event),
                            ticket_key=guest.ticket_key)}


def _rendered(template: MessageTemplate, context: dict) -> tuple[Rendered | None, str]:
    try:
        return render(cache_key=(str(template.id), template.version), subject=template.subject,
                      html_body=template.html_body, text_body=template.text_body,
                      context=context, fallback=template.event_id is not None), ""
    except Exception as exc:  # the preview shows why a send would fail
        return None, str(exc)


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
