"""Admin for customer webhooks: endpoints (attempt log, reveal/rotate secret, test event),
messages (resend) and attempts. Actions call the same services as the REST API. A signing
secret is shown on a page of its own (``accounts.admin.shown_once_response``), never in a
message: those live in a cookie or the session, in clear."""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from unfold import admin as unfold_admin

from accounts.admin import shown_once_response
from accounts.admin_base import CAPABILITIES, AccountScopedAdmin, ScopedInline
from common.errors import HeraldError
from webhooks import catalogue, selectors, services
from webhooks.models import Attempt, Endpoint, Message


class EndpointForm(forms.ModelForm):
    enabled_events = forms.MultipleChoiceField(
        choices=[(e, e) for e in catalogue.ALL_EVENTS], widget=forms.CheckboxSelectMultiple,
        initial=list(catalogue.ALL_EVENTS))

    class Meta:
        model = Endpoint
        fields = ["account", "url", "description", "enabled_events", "include_test_events",
                  "is_active"]

    def clean(self):
        data = super().clean()
        account = data.get("account")
        if self.instance._state.adding and account and selectors.endpoint_current(
                account=account):
            raise forms.ValidationError("This account already has a webhook endpoint.")
        try:
            services.endpoint_validate(url=data.get("url"), description=data.get("description"),
                                       enabled_events=data.get("enabled_events"))
        except HeraldError as exc:
            raise forms.ValidationError(exc.message) from None
        return data


SECRET_WARNING = ("Copy the signing secret now: it is shown once, on this page only. Your "
                  "receiver verifies Herald's signatures with it.")


def _report(modeladmin, request, run) -> None:
    try:
        text = run()
    except HeraldError as exc:
        modeladmin.message_user(request, exc.message, messages.ERROR)
    else:
        modeladmin.message_user(request, text, messages.SUCCESS)


@admin.register(Endpoint)
class EndpointAdmin(AccountScopedAdmin):
    form = EndpointForm
    list_display = ["url", "account", "is_active", "include_test_events", "disabled_reason",
                    "deleted_at", "created_at"]
    list_filter = ["is_active", "include_test_events", ("deleted_at", admin.EmptyFieldListFilter)]
    search_fields = ["url", "account__name", "id"]
    readonly_fields = ["id", "disabled_reason", "disabled_at", "failing_since",
                       "previous_secret_expires_at", "deleted_at", "created_at", "updated_at",
                       "attempt_log"]
    actions = ["reveal_secret", "rotate_secret", "send_test", "resend_failed_last_day"]
    # The endpoint receives the account's events and its secret signs them: the owner's.
    change_roles = add_roles = delete_roles = CAPABILITIES["manage"]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "account"] if obj else fields

    @admin.display(description="Latest attempts")
    def attempt_log(self, endpoint: Endpoint) -> str:
        rows = selectors.endpoint_attempts(endpoint=endpoint, limit=25)
        if not rows:
            return "No attempts yet."
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} ms</td>"
                                "<td>{}</td><td><code>{}</code></td></tr>", (
            (a.created_at.strftime("%Y-%m-%d %H:%M:%S"), a.message.event_type,
             a.status_code or "—", a.duration_ms, a.error, a.response_body[:200])
            for a in rows))
        return format_html("<table><tr><th>time</th><th>event</th><th>status</th>"
                           "<th>duration</th><th>error</th><th>response</th></tr>{}</table>",
                           body)

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        if change:
            services.endpoint_update(endpoint=obj, url=data["url"],
                                     description=data["description"],
                                     enabled_events=data["enabled_events"],
                                     is_active=data["is_active"],
                                     include_test_events=data["include_test_events"])
            return
        try:
            endpoint, secret = services.endpoint_create(
                account=data["account"], url=data["url"], description=data["description"],
                enabled_events=data["enabled_events"],
                include_test_events=data["include_test_events"])
        except HeraldError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        obj.pk = endpoint.pk
        request._herald_new_secret = (endpoint.url, secret)  # shown by response_add

    def response_add(self, request: HttpRequest, obj: Endpoint,
                     post_url_continue: str | None = None) -> HttpResponse:
        created = getattr(request, "_herald_new_secret", None)
        if created is None:
            return super().response_add(request, obj, post_url_continue)
        return shown_once_response(request, self, title="New webhook endpoint",
                                   rows=[created], warning=SECRET_WARNING)

    def delete_model(self, request, obj) -> None:
        services.endpoint_delete(endpoint=obj)

    def delete_queryset(self, request, queryset) -> None:
        for endpoint in queryset:
            services.endpoint_delete(endpoint=endpoint)

    @admin.action(description="Reveal the signing secret", permissions=["manage"])
    def reveal_secret(self, request, queryset) -> HttpResponse:
        rows = [(endpoint.url, services.endpoint_secret_reveal(endpoint=endpoint))
                for endpoint in queryset]
        return shown_once_response(
            request, self, title="Webhook signing secrets", rows=rows,
            warning="Shown on this page only: copy what you need now. Anyone with a signing "
                    "secret can forge Herald's webhooks to your receiver.")

    @admin.action(description="Rotate the signing secret (old one signs 24 h more)",
                  permissions=["manage"])
    def rotate_secret(self, request, queryset) -> HttpResponse:
        rows = [(f"{endpoint.url} (new; the old secret signs for 24 h more)",
                 services.endpoint_secret_rotate(endpoint=endpoint)) for endpoint in queryset]
        return shown_once_response(request, self, title="New webhook signing secrets",
                                   rows=rows, warning=SECRET_WARNING)

    @admin.action(description="Send a test event", permissions=["operate"])
    def send_test(self, request, queryset) -> None:
        for endpoint in queryset:
            _report(self, request, lambda e=endpoint: (
                f"Test event {services.endpoint_send_test(endpoint=e).webhook_id} queued."))

    @admin.action(description="Resend failed messages of the last 24 h", permissions=["resend"])
    def resend_failed_last_day(self, request, queryset) -> None:
        since = timezone.now() - timedelta(days=1)
        for endpoint in queryset:
            _report(self, request, lambda e=endpoint: (
                f"{e.url}: {services.messages_resend_failed(endpoint=e, since=since)} "
                "failed message(s) queued again."))


class AttemptInline(ScopedInline, unfold_admin.TabularInline):
    model = Attempt
    extra = 0
    can_delete = False
    fields = ["created_at", "status_code", "duration_ms", "error", "response_body", "succeeded"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(AccountScopedAdmin):
    list_display = ["webhook_id", "event_type", "endpoint", "status", "attempts",
                    "next_attempt_at", "created_at"]
    list_filter = ["status", "event_type"]
    date_hierarchy = "created_at"
    search_fields = ["webhook_id", "endpoint__url", "payload"]
    readonly_fields = [f.name for f in Message._meta.fields]
    inlines = [AttemptInline]
    actions = ["resend"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Resend the selected messages", permissions=["resend"])
    def resend(self, request, queryset) -> None:
        for message in queryset.select_related("endpoint"):
            _report(self, request, lambda m=message: (
                f"{services.message_resend(message=m).webhook_id} queued again."))


@admin.register(Attempt)
class AttemptAdmin(AccountScopedAdmin):
    account_path = "endpoint__account"
    list_display = ["created_at", "message", "endpoint", "status_code", "duration_ms",
                    "succeeded"]
    list_filter = ["succeeded", "status_code"]
    search_fields = ["message__webhook_id", "url", "error"]
    readonly_fields = [f.name for f in Attempt._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
