"""The guest (attendee) pages of the admin, centred on support's job: the guest list, Support
search (find a guest by name, email or order reference), and the guest's own page: who they
are, their tickets' history in plain words, and the buttons that send, resend, or fix the
email and resend (``guests.admin_actions``)."""

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib import admin, messages
from django.db.models import Q, QuerySet, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce, Concat, JSONObject
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.dateparse import parse_datetime

from accounts.admin_base import AccountScopedAdmin, user_accounts
from api.ratelimit import counters
from common.errors import HeraldError
from comms import wording
from comms.models import CANCELLABLE, FAILURES, Delivery, DeliveryEvent, Status
from comms.scheduling import deliveries_cancel
from comms.selectors import suppressions_active, suppressions_began
from guests import admin_actions, admin_views, reminders
from guests.admin_actions import resend_attendees
from guests.checkin import checked_in_words
from guests.models import Attendee, Event
from guests.selectors import latest_delivery
from guests.sending import previous_send_check
from guests.services import attendees_delete
from templates.models import TRANSACTIONAL, MessageTemplate

SANDBOX = Delivery.Mode.TEST
# "Fix the email and resend" mails the address typed: like the template's "Send a test" it is
# no way to mail many people (``templates.services.TEST_SENDS_PER_MINUTE``).
EMAIL_FIXES_PER_MINUTE = 10  # per admin user
EMAIL_FIXES_PER_HOUR = 3  # per guest, whoever makes them
GOOD = frozenset({Status.DELIVERED, Status.OPENED, Status.CLICKED})


class LastDeliveryStatus(admin.SimpleListFilter):
    """Guests whose latest live delivery is in a status (a later rehearsal does not hide it),
    or in one of several, comma-separated (an event funnel's figure: ``delivered,opened``)."""

    title = "last live delivery status"
    parameter_name = "last_status"
    mode = Delivery.Mode.LIVE

    def lookups(self, request, model_admin):
        return [(status, wording.status_words(status)) for status, _ in Status.choices]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.annotate(last_status=latest_delivery(self.mode, "status")).filter(
            last_status__in=self.value().split(","))


class LastSandboxDeliveryStatus(LastDeliveryStatus):
    """The same of the sandbox: how a guest's latest test-key rehearsal ended."""

    title = "last sandbox (test key) delivery status"
    parameter_name = "last_test_status"
    mode = Delivery.Mode.TEST


class AddedByFilter(admin.ChoicesFieldListFilter):
    """Attendee.mode, titled for what it is: the key mode that added the guest."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.title = "added by"


# What the words of a failed delivery need, in one subquery a mode (not one per column).
_OUTCOME = JSONObject(status="status", reason="failure_reason", failure_type="failure_type",
                      bounce_type="bounce_type", bounce_subtype="bounce_subtype",
                      due="next_attempt_at")


def with_last_ticket(queryset: QuerySet) -> QuerySet:
    """Guests with their latest live and sandbox deliveries' outcome (``ticket``,
    ``rehearsal``: what ``last_ticket_words`` says; the list sorts on ``ticket``'s status)."""
    return queryset.annotate(
        ticket=latest_delivery(Delivery.Mode.LIVE, _OUTCOME),
        rehearsal=latest_delivery(SANDBOX, _OUTCOME),
    )


def _outcome_words(outcome: dict[str, Any]) -> str:
    if outcome["status"] == Status.SCHEDULED:
        return wording.scheduled_words(parse_datetime(str(outcome.get("due") or "")))
    return wording.status_words_with_cause(
        status=outcome["status"], reason=outcome.get("reason") or "",
        failure_type=outcome.get("failure_type") or "",
        bounce_type=outcome.get("bounce_type") or "",
        bounce_subtype=outcome.get("bounce_subtype") or "")


def last_ticket_words(attendee: Attendee) -> str:
    """The latest live ticket's status in words; a guest only ever rehearsed with a test key
    gets the rehearsal's, labelled as one."""
    if live := getattr(attendee, "ticket", None):
        return _outcome_words(live)
    if rehearsal := getattr(attendee, "rehearsal", None):
        return "Sandbox rehearsal: " + _outcome_words(rehearsal)
    return "No ticket sent yet"


def last_ticket_status(attendee: Attendee) -> str | None:
    """The status ``last_ticket_words`` speaks of."""
    outcome = getattr(attendee, "ticket", None) or getattr(attendee, "rehearsal", None)
    return outcome["status"] if outcome else None


def tone(status: str | None) -> str:
    """The colour a status is shown in (unfold's label variants)."""
    if status in GOOD:
        return "success"
    if status in FAILURES:
        return "danger"
    return "info" if status and status != Status.CANCELLED else ""


@admin.register(Attendee)
class AttendeeAdmin(AccountScopedAdmin):
    list_display = ["guest", "email", "event", "last_ticket", "order_reference", "added_by",
                    "added"]
    list_display_links = ["guest"]
    list_filter = ["event", LastDeliveryStatus, LastSandboxDeliveryStatus,
                   ("mode", AddedByFilter)]
    search_fields = ["first_name", "last_name", "email", "correlation_id"]
    search_help_text = "Name, email or order reference"
    list_select_related = ["event"]
    actions = [resend_attendees]
    ordering = ["-created_at"]
    change_form_outer_before_template = "admin/guests/attendee/guest_page.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return with_last_ticket(super().get_queryset(request))

    def get_urls(self) -> list[Any]:
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("support/", self.listing_view(self.support_view, get="view"),
                 name=f"{name}_support"),
            path("<path:object_id>/send-ticket/",
                 self.scoped_view(self._action(admin_actions.guest_send), post="resend"),
                 name=f"{name}_send_ticket"),
            path("<path:object_id>/fix-email/",
                 self.scoped_view(self._action(guest_fix_email_limited), post="resend"),
                 name=f"{name}_fix_email"),
            # Support's as resending is: a guest who asks not to get a reminder, or to get
            # the ticket later, is support's call (the Deliveries list's Cancel, which can
            # withdraw many at once, needs "operate").
            path("<path:object_id>/cancel-ticket/",
                 self.scoped_view(self._action(guest_cancel_delivery), post="resend"),
                 name=f"{name}_cancel_ticket"),
            *super().get_urls(),
        ]

    def _action(self, view: Any) -> Any:
        def run(request: HttpRequest, attendee: Attendee) -> HttpResponse:
            return view(self, request, attendee)

        run.__name__ = view.__name__
        return run

    # --- the list ---------------------------------------------------------------------------

    @admin.display(description="guest", ordering="last_name")
    def guest(self, attendee: Attendee) -> str:
        return f"{attendee.first_name} {attendee.last_name}".strip() or attendee.email

    @admin.display(description="last ticket", ordering=KeyTextTransform("status", "ticket"))
    def last_ticket(self, attendee: Attendee) -> str:
        return last_ticket_words(attendee)

    @admin.display(description="order reference", ordering="correlation_id")
    def order_reference(self, attendee: Attendee) -> str:
        return attendee.correlation_id or "—"

    @admin.display(description="added", ordering="created_at")
    def added(self, attendee: Attendee) -> str:
        return wording.moment(attendee.created_at)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        """Filtered to one of the user's events, the list is that event's Guests tab."""
        extra: dict[str, Any] = {"title": "Guests"}
        event = _event_of(request, request.GET.get("event__id__exact"))
        if event is not None:
            extra.update(title=f"Guests of {event.name}", tab_list=admin_views.event_tabs(
                event, "guests", on="guests.attendee", detail=False))
        return super().changelist_view(request, {**extra, **(extra_context or {})})

    @admin.display(description="added by", ordering="mode")
    def added_by(self, attendee: Attendee) -> str:
        return wording.mode_words(attendee.mode)

    # --- the guest's page -------------------------------------------------------------------

    # Staff never type GUIDs: a guest added here gets a generated id, shown read-only after.
    def get_exclude(self, request, obj: Attendee | None = None) -> list[str]:
        return [*(super().get_exclude(request, obj) or []), *([] if obj else ["id"])]

    def get_fields(self, request, obj: Attendee | None = None) -> list[str]:
        """Who may change the guest edits it in a form below the page; to whom may not (support)
        the page's summary says it all, without a second, read-only copy."""
        if obj is not None and not self.has_change_permission(request, obj):
            return []
        return super().get_fields(request, obj)

    def get_form(self, request, obj: Attendee | None = None, change: bool = False, **kwargs):
        kwargs.setdefault("labels", {"correlation_id": "Order reference"})
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj: Attendee | None = None) -> list[str]:
        return [*super().get_readonly_fields(request, obj), *(["id"] if obj else [])]

    def save_model(self, request, obj: Attendee, form, change: bool) -> None:
        if not change and obj.id is None:
            obj.id = uuid.uuid4()
        super().save_model(request, obj, form, change)
        if not change:  # a new guest of the event: its reminders (guests.reminders)
            reminders.reminders_schedule(event=obj.event, attendees=[obj])
        elif {"email", "first_name", "last_name", "event"} & set(form.changed_data):
            reminders.attendee_reminders_follow(
                attendee=obj, event_changed="event" in form.changed_data)

    def delete_model(self, request, obj: Attendee) -> None:
        """Its unsent deliveries are cancelled (their webhooks go out) first."""
        attendees_delete(attendees=Attendee.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset: QuerySet) -> None:
        attendees_delete(attendees=queryset)

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], add: bool = False,
                           change: bool = False, form_url: str = "",
                           obj: Attendee | None = None) -> HttpResponse:
        if obj is not None:
            context.update(guest_page(obj, can_send=self.has_resend_permission(request, obj)))
            context["cancel_url"] = (reverse("admin:guests_attendee_cancel_ticket",
                                             args=[obj.pk])
                                     if self.has_resend_permission(request, obj) else None)
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- Support search ---------------------------------------------------------------------

    def support_view(self, request: HttpRequest) -> HttpResponse:
        query = request.GET.get("q", "").strip()
        mine = self.get_queryset(request)
        exact = guests_named(mine, query) if query else []
        if len(exact) == 1:  # one guest has this very email or order reference: theirs
            return redirect(reverse("admin:guests_attendee_change", args=[exact[0]]))
        found = guests_find(mine, query) if query else None
        rows = [{
            "attendee": attendee, "name": self.guest(attendee),
            "url": reverse("admin:guests_attendee_change", args=[attendee.pk]),
            "status": last_ticket_words(attendee),
            "tone": tone(last_ticket_status(attendee)),
        } for attendee in found or []]
        return TemplateResponse(request, "admin/guests/attendee/support.html", {
            **self.admin_site.each_context(request), "opts": self.opts, "title": "Find a guest",
            "subtitle": "By name, email or order reference, across your events",
            "query": query, "rows": rows, "searched": found is not None,
            "limit": SEARCH_LIMIT, "list_url": reverse("admin:guests_attendee_changelist"),
        })


SEARCH_LIMIT = 50


def guests_find(queryset: QuerySet, query: str) -> list[Attendee]:
    """Guests (of ``queryset``, the user's scoped ones) whose name, email or order reference
    contains ``query`` (case-insensitive), newest first."""
    named = queryset.annotate(full_name=Concat(
        Coalesce("first_name", Value("")), Value(" "), Coalesce("last_name", Value(""))))
    return list(named.filter(
        Q(full_name__icontains=query) | Q(email__icontains=query)
        | Q(correlation_id__icontains=query)).select_related("event")
        .order_by("-created_at")[:SEARCH_LIMIT])


def guests_named(queryset: QuerySet, query: str) -> list[Any]:
    """The ids of the guests (of ``queryset``) whose whole email or order reference is
    ``query`` (case-insensitive); two at most, enough to tell one from several."""
    return list(queryset.filter(Q(email__iexact=query) | Q(correlation_id__iexact=query))
                .order_by().values_list("pk", flat=True)[:2])


# --- the guest's page: history and buttons ---------------------------------------------------

@dataclass(frozen=True)
class Entry:
    """One line of a ticket's timeline."""

    at: datetime
    order: int
    when: str
    words: str
    said: str = ""  # the receiving server's (or provider's) own answer, when it explains why
    tone: str = ""


@dataclass
class Ticket:
    """One delivery of the guest, with its timeline newest first."""

    template: str
    recipient: str
    status: str
    tone: str
    sandbox: bool
    queued_at: str
    entries: list[Entry] = field(default_factory=list)
    id: Any = None
    cancellable: bool = False  # still scheduled or queued: the page offers "Cancel"


def guest_page(attendee: Attendee, *, can_send: bool) -> dict[str, Any]:
    """What the guest's page shows above the guest's form."""
    deliveries = list(Delivery.objects.filter(attendee=attendee, account_id=attendee.account_id)
                      .select_related("template").prefetch_related("events")
                      .order_by("-created_at")[:30])
    zone = ZoneInfo(attendee.event.time_zone)
    since = suppressions_began(stops=_suppressed(deliveries))  # one query for the page
    tickets = [ticket_history(delivery, zone, since) for delivery in deliveries]
    name = f"{attendee.first_name} {attendee.last_name}".strip()
    return {
        "title": name or attendee.email,
        "subtitle": f"Guest of {attendee.event}" + (
            " · added by a sandbox rehearsal (test key)" if attendee.mode == SANDBOX else ""),
        "guest": {
            "name": name or "—", "email": attendee.email, "event": attendee.event,
            "event_url": reverse("admin:guests_event_change", args=[attendee.event_id]),
            "reference": attendee.correlation_id or "—",
            "added_by": wording.mode_words(attendee.mode),
            "added_at": wording.moment(attendee.created_at),
            "checked_in": checked_in_words(attendee),  # at the door (guests.checkin)
        },
        "live_tickets": [t for t in tickets if not t.sandbox],
        "sandbox_tickets": [t for t in tickets if t.sandbox],
        "plan": send_plan(attendee, deliveries) if can_send else None,
    }


def ticket_history(delivery: Delivery, zone: tzinfo | None = None,
                   since: Mapping[Any, datetime | None] | None = None) -> Ticket:
    """A delivery as support reads it: its status and every step, newest first. A scheduled
    one says when it goes, in ``zone`` (the guest's event's), as the event's times are.
    ``since``: ``suppressions_began`` of its stopped sends by event id, when the caller read
    them for many deliveries at once."""
    if since is None:
        since = suppressions_began(stops=_suppressed([delivery]))
    status = wording.status_words_with_cause(
        status=delivery.status, channel=delivery.channel, reason=delivery.failure_reason,
        failure_type=delivery.failure_type, bounce_type=delivery.bounce_type,
        bounce_subtype=delivery.bounce_subtype)
    first = "Queued"
    if delivery.status == Status.SCHEDULED:
        status = first = wording.scheduled_words(delivery.next_attempt_at, zone)
    entries = [Entry(delivery.created_at, -1, wording.moment(delivery.created_at), first)]
    entries += [_entry(delivery, event, since.get(event.id))
                for event in delivery.events.all()]
    entries.sort(key=lambda e: (e.at, e.order), reverse=True)
    return Ticket(template=delivery.template.name if delivery.template else "Message",
                  recipient=delivery.recipient, status=status, tone=tone(delivery.status),
                  sandbox=delivery.mode == SANDBOX, queued_at=wording.moment(delivery.created_at),
                  entries=entries, id=delivery.pk, cancellable=delivery.status in CANCELLABLE)


# The events whose ``reason`` is the receiving server's or provider's answer to the message.
ANSWERS = {"comms.bounced": "The receiving server said", "comms.deferred":
           "The receiving server said", "comms.dropped": "The mail provider said"}


def _entry(delivery: Delivery, event: DeliveryEvent, since: datetime | None) -> Entry:
    detail = event.detail if isinstance(event.detail, dict) else {}
    words = wording.event_words(name=event.name, status=event.status, detail=detail,
                                channel=delivery.channel, suppressed_since=since)
    reason = str(detail.get("reason") or "")
    said = f"{ANSWERS[event.name]}: “{reason}”" if reason and event.name in ANSWERS else ""
    return Entry(event.occurred_at, event.id, wording.moment(event.occurred_at), words, said,
                 tone(event.status or None) if event.status in FAILURES | GOOD else "")


def _suppressed(deliveries: Iterable[Delivery]) -> list[tuple[Any, Delivery, datetime]]:
    """The sends the suppression list stopped, as ``suppressions_began`` takes them."""
    return [(event.id, delivery, event.occurred_at) for delivery in deliveries
            for event in delivery.events.all() if event.status == Status.SUPPRESSED]


@dataclass(frozen=True)
class SendPlan:
    """What "Send ticket" / "Resend ticket" would do for a guest, and what stands in its way."""

    resend: bool  # the guest has had a ticket: the buttons resend it
    template: MessageTemplate | None  # the ticket's template (None: support chooses one)
    mode: str
    mode_label: str
    refusal: str  # why the 422 rule would refuse a resend to the current address, in words
    suppressed: str  # why the current address is on the suppression list, in words
    templates: list[MessageTemplate]  # the choice, when the guest has no ticket template
    templates_url: str
    send_url: str
    fix_url: str


def send_plan(attendee: Attendee, deliveries: list[Delivery]) -> SendPlan:
    previous = admin_actions.ticket_delivery(deliveries)
    template = previous.template if previous else None
    mode = previous.mode if previous else attendee.mode
    refusal = ""
    if template is not None:
        try:
            previous_send_check(attendee=attendee, template=template, mode=mode)
        except HeraldError as exc:
            refusal = admin_actions.refusal_text(exc)
    suppression = suppressions_active(  # what would stop this ticket: not a topic's unsubscribe
        account_ids=[attendee.account_id], mode=mode, addresses=[attendee.email],
        category=template.category if template else TRANSACTIONAL).order_by("created_at").first()
    templates = [] if template else list(MessageTemplate.objects.filter(
        account_id=attendee.account_id, channel="email", event__isnull=True).order_by("name"))
    return SendPlan(
        resend=previous is not None, template=template, mode=mode,
        mode_label=wording.mode_words(mode), refusal=refusal,
        suppressed=wording.suppression_words(reason=suppression.reason,
                                             since=suppression.created_at) if suppression else "",
        templates=templates,
        templates_url=reverse("admin:templates_messagetemplate_changelist"),
        send_url=reverse("admin:guests_attendee_send_ticket", args=[attendee.pk]),
        fix_url=reverse("admin:guests_attendee_fix_email", args=[attendee.pk]))


def guest_cancel_delivery(model_admin: Any, request: HttpRequest,
                          attendee: Attendee) -> HttpResponse:
    """POST ``delivery``: cancel one of this guest's tickets or reminders not sent yet (one
    conditional UPDATE, ``comms.scheduling.deliveries_cancel``, among the guest's own
    deliveries: another's is not found); one a worker took or already sent stays, said so."""
    delivery = (Delivery.objects.filter(attendee=attendee, account_id=attendee.account_id,
                                        pk=_uuid(request.POST.get("delivery")))
                .select_related("template").first())
    if delivery is None:
        messages.error(request, "Not cancelled: that message is not one of this guest's.")
    elif not deliveries_cancel([delivery.pk], reason=(
            f"Cancelled by {wording.who(request.user)} on the guest's page.")):
        delivery.refresh_from_db(fields=["status"])
        messages.error(request, "Not cancelled: " + (
            "it is being sent right now." if delivery.status == Status.SENDING
            else "it was already sent or stopped.") + " Its history is below.")
    else:
        what = f"“{delivery.template.name}”" if delivery.template else "The message"
        messages.success(request, f"Cancelled: {what} will not be sent to "
                                  f"{delivery.recipient}.")
    return redirect(reverse("admin:guests_attendee_change", args=[attendee.pk]))


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def guest_fix_email_limited(model_admin: Any, request: HttpRequest,
                            attendee: Attendee) -> HttpResponse:
    """``admin_actions.guest_fix_email`` held to EMAIL_FIXES_PER_MINUTE per user and
    EMAIL_FIXES_PER_HOUR per guest: past either, refused in words and nothing changed. Only a
    fix that would be made counts (an invalid or unchanged address is refused anyway)."""
    if _is_a_fix(request, attendee) and (refusal := email_fix_refusal(
            user_id=request.user.pk, attendee_id=attendee.pk)):
        messages.error(request, refusal)
        return redirect(reverse("admin:guests_attendee_change", args=[attendee.pk]))
    return admin_actions.guest_fix_email(model_admin, request, attendee)


def _is_a_fix(request: HttpRequest, attendee: Attendee) -> bool:
    form = admin_actions.FixEmailForm(request.POST)
    return form.is_valid() and form.cleaned_data["email"].lower() != attendee.email.lower()


def email_fix_refusal(*, user_id: Any, attendee_id: Any) -> str:
    """Count one email fix by ``user_id`` of ``attendee_id``'s address: why it is refused
    ("": it may be made). The counters are the API's rate-limit counters (Redis, shared by
    every web process), as the template's "Send a test" uses them."""
    if counters.incr(f"emailfix:user:{user_id}", expiry=60) > EMAIL_FIXES_PER_MINUTE:
        return (f"Not changed: at most {EMAIL_FIXES_PER_MINUTE} email corrections a minute. "
                "Wait a minute and correct it again.")
    if counters.incr(f"emailfix:guest:{attendee_id}", expiry=3600) > EMAIL_FIXES_PER_HOUR:
        return (f"Not changed: this guest's email was already corrected "
                f"{EMAIL_FIXES_PER_HOUR} times in the last hour. Check the address with the "
                "guest, then correct it again in an hour.")
    return ""


def _event_of(request: HttpRequest, event_id: str | None) -> Event | None:
    """The user's event of that id (another account's, or no valid id: None)."""
    if not event_id:
        return None
    try:
        uuid.UUID(event_id)
    except ValueError:
        return None
    events = Event.objects.filter(pk=event_id)
    if not request.user.is_superuser:
        events = events.filter(account__in=list(user_accounts(request)))
    return events.first()
