"""Admin for customer webhooks: endpoints (attempt log, rotate secret, test event), messages
(resend) and attempts, in staff's words: event types by what happened ("Delivered") with the
developer's id beside it, each attempt by its own outcome ("HTTP 500 · 120 ms · failed").
Actions call the same services as the REST API.

A signing secret is stored encrypted and shown once: at creation and at each rotation, on a
page of its own (``accounts.admin.shown_once_response``), never in a message (those live in a
cookie or the session, in clear). There is no "reveal": an owner who lost it rotates it."""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from unfold import admin as unfold_admin

from accounts.admin import shown_once_response
from accounts.admin_base import CAPABILITIES, AccountScopedAdmin, ScopedInline
from common.errors import HeraldError
from comms import wording
from webhooks import catalogue, selectors, services
from webhooks.models import Attempt, Endpoint, Message

# What each event type means, in words; the id is what the receiver's code sees.
EVENT_WORDS = {
    "comms.sent": "Sent", "comms.failed": "Not sent (failed)", "comms.delivered": "Delivered",
    "comms.deferred": "Delayed by the receiving server", "comms.opened": "Opened",
    "comms.clicked": "Link clicked", "comms.bounced": "Bounced",
    "comms.dropped": "Refused by the mail provider", "comms.spam_reported": "Reported as spam",
    "comms.unsubscribed": "Unsubscribed",
    "delivery.sent": "Sent", "delivery.delivered": "Delivered",
    "delivery.failed": "Failed (any reason)", "delivery.bounced": "Bounced",
    "delivery.complained": "Reported as spam",
    "domain.verified": "Sender domain verified",
    catalogue.TEST_EVENT: "Test event",
}
EVENT_GROUPS = [
    ("Every step of a message (comms.* events)", catalogue.COMMS_EVENTS),
    ("The outcome of a delivery (delivery.* events)", catalogue.DELIVERY_EVENTS),
    ("Your account", catalogue.ACCOUNT_EVENTS),
]


def event_words(event_type: str) -> str:
    return EVENT_WORDS.get(event_type, event_type)


def _event_choice(event_type: str) -> str:
    return format_html('{} <small class="text-font-subtle-light" style="opacity:.7">{}</small>',
                       event_words(event_type), event_type)


def attempt_outcome(attempt: Attempt) -> str:
    """The attempt's own outcome, never its message's: "HTTP 500 · 120 ms · failed"."""
    answer = f"HTTP {attempt.status_code}" if attempt.status_code else "No answer"
    return f"{answer} · {attempt.duration_ms} ms · {'succeeded' if attempt.succeeded else 'failed'}"


class EndpointForm(forms.ModelForm):
    enabled_events = forms.MultipleChoiceField(
        label="Events to send",
        choices=[(group, [(e, _event_choice(e)) for e in events])
                 for group, events in EVENT_GROUPS],
        widget=forms.CheckboxSelectMultiple, initial=list(catalogue.ALL_EVENTS),
        help_text="The grey name beside each is the event's type, as your receiver sees it.")

    class Meta:
        model = Endpoint
        fields = ["account", "url", "description", "enabled_events", "include_test_events",
                  "is_active"]
        labels = {"url": "Receiver URL", "is_active": "Sending",
                  "include_test_events": "Include test-key (sandbox) events"}
        help_texts = {"url": "Where Herald POSTs each event (https).",
                      "is_active": "Untick to pause: events wait until you tick it again.",
                      "include_test_events": "Sandbox rehearsals' events, marked as tests in "
                                             "their payloads."}

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


SECRET_WARNING = ("Copy the signing secret now: Herald stores it encrypted and will not show "
                  "it again (if it is lost, rotate it). Your receiver verifies Herald's "
                  "signatures with it.")
ROTATED_WARNING = ("Copy the new signing secret now: it is shown once. The old secret keeps "
                   "signing beside it for 24 hours, time to put the new one in your "
                   "receiver; then only the new one works.")


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
    list_display = ["receiver_url", "account", "state", "include_test_events", "created"]
    list_filter = ["is_active", "include_test_events", ("deleted_at", admin.EmptyFieldListFilter)]
    search_fields = ["url", "account__name", "id"]
    readonly_fields = ["state", "signing_secret", "created"]
    actions = ["rotate_secret", "send_test", "resend_failed_last_day"]
    # The endpoint receives the account's events and its secret signs them: the owner's.
    change_roles = add_roles = delete_roles = CAPABILITIES["manage"]

    def get_fieldsets(self, request, obj=None):
        fieldsets = [
            (None, {"fields": ["account", "url", "description", "is_active"]}),
            ("Events", {"fields": ["enabled_events", "include_test_events"]}),
        ]
        if obj is None:
            return fieldsets
        return [*fieldsets, ("State", {"fields": ["state", "signing_secret", "created"]})]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """Headed by whose endpoint it is; the latest attempts below the fields, full width
        (change_form.html)."""
        endpoint = self.get_object(request, object_id)
        if endpoint is not None:
            extra_context = {"title": f"Webhook endpoint of {endpoint.account.name}",
                             "subtitle": f"{self.state(endpoint)} · {endpoint.url}",
                             "attempt_log": self.attempt_log(endpoint), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "account"] if obj else fields

    @admin.display(description="receiver URL", ordering="url")
    def receiver_url(self, endpoint: Endpoint) -> str:
        return endpoint.url

    @admin.display(description="created", ordering="created_at")
    def created(self, endpoint: Endpoint) -> str:
        return wording.moment(endpoint.created_at)

    @admin.display(description="state")
    def state(self, endpoint: Endpoint) -> str:
        if endpoint.deleted_at:
            return f"Deleted on {wording.moment(endpoint.deleted_at)}"
        if not endpoint.is_active:
            when = wording.moment(endpoint.disabled_at)
            why = f": {endpoint.disabled_reason}" if endpoint.disabled_reason else ""
            return f"Paused since {when}{why}" if when else f"Paused{why}"
        if endpoint.failing_since:
            return f"Sending; failing since {wording.moment(endpoint.failing_since)}"
        return "Sending"

    @admin.display(description="signing secret")
    def signing_secret(self, endpoint: Endpoint) -> str:
        text = ("Stored encrypted and shown only once. Lost it? “Rotate the signing secret” "
                "shows a new one once.")
        expires = endpoint.previous_secret_expires_at
        if endpoint.previous_secret_encrypted and expires and expires > timezone.now():
            text += f" The previous secret keeps signing until {wording.moment(expires)}."
        return text

    @admin.display(description="Latest attempts")
    def attempt_log(self, endpoint: Endpoint) -> str:
        rows = selectors.endpoint_attempts(endpoint=endpoint, limit=25)
        if not rows:
            return "No attempts yet."
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", (
            (wording.moment(a.created_at), event_words(a.message.event_type),
             attempt_outcome(a), (a.error or a.response_body)[:200])
            for a in rows))
        return format_html(
            '<div class="herald-scroll" style="max-width:100%;overflow-x:auto">'
            "<style>.herald-attempts th,.herald-attempts td{{padding:4px 16px 4px 0;"
            "text-align:left;vertical-align:top}}</style>"
            '<table class="herald-attempts" style="width:100%;min-width:36rem">'
            "<thead><tr><th>When</th><th>Event</th><th>Outcome</th><th>What the receiver "
            "said</th></tr></thead><tbody>{}</tbody></table></div>", body)

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

    # -- "Rotate the signing secret": an action and a button on the change page --------------

    def get_urls(self):
        return [path("<uuid:object_id>/rotate-secret/",
                     self.scoped_view(self.rotate_view, post="manage"),
                     name="webhooks_endpoint_rotate_secret"), *super().get_urls()]

    def rotate_view(self, request: HttpRequest, endpoint: Endpoint) -> HttpResponse:
        return self._rotated(request, [endpoint])

    def _rotated(self, request: HttpRequest, endpoints) -> HttpResponse:
        rows = [(f"{endpoint.url} (new secret)",
                 services.endpoint_secret_rotate(endpoint=endpoint)) for endpoint in endpoints]
        return shown_once_response(request, self, title="New webhook signing secret",
                                   rows=rows, warning=ROTATED_WARNING)

    @admin.action(description="Rotate the signing secret (shows the new one once)",
                  permissions=["manage"])
    def rotate_secret(self, request, queryset) -> HttpResponse:
        return self._rotated(request, queryset)

    @admin.action(description="Send a test event", permissions=["operate"])
    def send_test(self, request, queryset) -> None:
        for endpoint in queryset:
            _report(self, request, lambda e=endpoint: (
                f"Queued a test event to {services.endpoint_send_test(endpoint=e).endpoint.url}; "
                "its attempts show on the endpoint's page."))

    @admin.action(description="Resend failed messages of the last 24 h", permissions=["resend"])
    def resend_failed_last_day(self, request, queryset) -> None:
        since = timezone.now() - timedelta(days=1)
        for endpoint in queryset:
            _report(self, request, lambda e=endpoint: (
                f"Queued again for {e.url}: "
                f"{services.messages_resend_failed(endpoint=e, since=since)} failed "
                "message(s)."))


class AttemptInline(ScopedInline, unfold_admin.TabularInline):
    model = Attempt
    extra = 0
    can_delete = False
    fields = ["when", "outcome", "said"]
    readonly_fields = fields
    verbose_name_plural = "attempts"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="when")
    def when(self, attempt: Attempt) -> str:
        return wording.moment(attempt.created_at)

    @admin.display(description="outcome")
    def outcome(self, attempt: Attempt) -> str:
        return attempt_outcome(attempt)

    @admin.display(description="what the receiver said")
    def said(self, attempt: Attempt) -> str:
        return (attempt.error or attempt.response_body)[:200]


@admin.register(Message)
class MessageAdmin(AccountScopedAdmin):
    """One event sent (or to send) to the endpoint, with each attempt's own outcome."""

    list_display = ["created", "event", "endpoint", "status", "attempts", "next_attempt"]
    list_filter = ["status", "event_type"]
    date_hierarchy = "created_at"
    search_fields = ["webhook_id", "endpoint__url", "payload"]
    fieldsets = [
        (None, {"fields": ["event", "receiver", "status", "attempts", "created",
                           "next_attempt", "received", "last_error"]}),
        ("What was sent", {"classes": ["collapse"],
                           "fields": ["webhook_id", "event_type", "payload"]}),
    ]
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]]
    inlines = [AttemptInline]
    actions = ["resend"]
    ordering = ["-created_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a record of what was sent: read and resent, never edited

    @admin.display(description="created", ordering="created_at")
    def created(self, message: Message) -> str:
        return wording.moment(message.created_at)

    @admin.display(description="next attempt", ordering="next_attempt_at")
    def next_attempt(self, message: Message) -> str:
        return wording.moment(message.next_attempt_at) or "-"

    @admin.display(description="received")
    def received(self, message: Message) -> str:
        return wording.moment(message.succeeded_at) or "-"

    @admin.display(description="endpoint")
    def receiver(self, message: Message) -> str:
        url = reverse("admin:webhooks_endpoint_change", args=[message.endpoint_id])
        return format_html('<a href="{}" style="word-break:break-all">{}</a>', url,
                           message.endpoint.url)

    @admin.display(description="event", ordering="event_type")
    def event(self, message: Message) -> str:
        return event_words(message.event_type)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        message = self.get_object(request, object_id)
        if message is not None:
            extra_context = {"title": f"“{event_words(message.event_type)}” event of "
                                      f"{wording.moment(message.created_at)}",
                             "subtitle": message.get_status_display(), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.action(description="Resend the selected messages", permissions=["resend"])
    def resend(self, request, queryset) -> None:
        for message in queryset.select_related("endpoint"):
            _report(self, request, lambda m=message: (
                f"Queued again: the “{event_words(services.message_resend(message=m).event_type)}"
                f"” event of {wording.moment(m.created_at)}."))


@admin.register(Attempt)
class AttemptAdmin(AccountScopedAdmin):
    """Each HTTP try by its own outcome (a 500 is a failed attempt, whatever became of its
    message later)."""

    account_path = "endpoint__account"
    list_display = ["when", "event", "endpoint", "outcome", "succeeded"]
    list_filter = ["succeeded", "status_code"]
    search_fields = ["message__webhook_id", "url", "error"]
    fields = ["when", "event", "endpoint", "url", "outcome", "error", "response_body"]
    readonly_fields = fields
    list_select_related = ["message", "endpoint"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="when", ordering="created_at")
    def when(self, attempt: Attempt) -> str:
        return wording.moment(attempt.created_at)

    @admin.display(description="event")
    def event(self, attempt: Attempt) -> str:
        return event_words(attempt.message.event_type)

    @admin.display(description="outcome", ordering="status_code")
    def outcome(self, attempt: Attempt) -> str:
        return attempt_outcome(attempt)
