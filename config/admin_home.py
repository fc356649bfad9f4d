"""The admin's front door: the sidebar by the staff's work and the home page.

django-unfold calls ``navigation`` for the sidebar (settings.UNFOLD["SIDEBAR"]["navigation"])
and ``dashboard`` for the home page (settings.UNFOLD["DASHBOARD_CALLBACK"]) on every request.
Staff and support see their work — Events, Support, Settings — each link only when their role
lets them open it (the registered ModelAdmin's own permission check, so the sidebar never
offers a 403); the engine's internals (callback batches, outbox, periodic tasks, users, login
attempts) are for superusers only.

The home page shows what the user's accounts are doing now, in live figures only (a test key's
sandbox rehearsal never counts): the events, today's sends, and what needs attention; and its
health (what ``/metrics`` and ``/readyz`` tell operators): the queues, the last hour's failed
sends by provider and reason, readiness.
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.contrib import admin
from django.db.models import Count, Model, Q, QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from accounts.admin_base import user_accounts
from comms.models import Delivery, Status
from config.health import readiness
from domains.models import SenderDomain
from guests.models import Attendee, BulkSend, Event, GuestImport
from ops.selectors import (
    CALLBACK_BATCHES,
    DELIVERIES,
    SCHEDULED,
    WEBHOOK_MESSAGES,
    Queue,
    queues_waiting,
)
from templates.models import MessageTemplate
from templates.services import without_test_sends
from webhooks.models import Endpoint
from webhooks.models import Message as WebhookMessage

LIVE = Delivery.Mode.LIVE
FAILED = [Status.BOUNCED, Status.DROPPED, Status.FAILED, Status.SPAM_REPORTED]


def _url(name: str, *args: Any, query: str = "") -> str | None:
    try:
        return reverse(name, args=args) + (f"?{query}" if query else "")
    except NoReverseMatch:
        return None


def _can_view(label: str) -> Callable[[HttpRequest], bool]:
    """Whether the user may open ``label``'s admin list (its ModelAdmin decides)."""

    def allowed(request: HttpRequest) -> bool:
        model_admin = admin.site._registry.get(apps.get_model(label))
        return bool(model_admin and model_admin.has_module_permission(request)
                    and model_admin.has_view_permission(request))

    return allowed


def _can_add(model: type[Model], request: HttpRequest) -> bool:
    model_admin = admin.site._registry.get(model)
    return bool(model_admin and model_admin.has_add_permission(request))


def _superuser(request: HttpRequest) -> bool:
    return request.user.is_superuser


def _item(title: str, icon: str, url_name: str, label: str | None = None, *,
          query: str = "", permission: Callable[[HttpRequest], bool] | None = None
          ) -> dict[str, Any] | None:
    link = None
    for name in url_name.split("|"):  # the first that exists
        link = link or _url(name, query=query)
    if link is None:
        return None
    return {"title": title, "icon": icon, "link": link,
            "permission": permission or (_can_view(label) if label else _superuser)}


def _group(title: str, items: list[dict[str, Any] | None], **extra: Any) -> dict[str, Any]:
    return {"title": title, "separator": True, "collapsible": False,
            "items": [item for item in items if item], **extra}


def navigation(request: HttpRequest) -> list[dict[str, Any]]:
    """The sidebar: the staff's work first, the internals last and for superusers only."""
    groups = [
        _group("Events", [
            _item("Home", "home", "admin:index", permission=lambda request: True),
            _item("Events", "event", "admin:guests_event_changelist", "guests.event"),
            _item("Guests", "groups", "admin:guests_attendee_changelist", "guests.attendee"),
            _item("Sends", "send", "admin:guests_bulksend_changelist", "guests.bulksend"),
            _item("Imports", "upload_file", "admin:guests_guestimport_changelist",
                  "guests.guestimport"),
            _item("Dashboard", "monitoring", "admin:comms_dashboard_changelist",
                  "comms.dashboard"),
        ]),
        _group("Support", [
            _item("Find a guest", "person_search",
                  "admin:guests_attendee_support|admin:guests_attendee_changelist",
                  "guests.attendee"),
            _item("Deliveries", "mark_email_read", "admin:comms_delivery_changelist",
                  "comms.delivery"),
            _item("Suppressed addresses", "block", "admin:comms_suppression_changelist",
                  "comms.suppression"),
            _item("Contacts", "contacts", "admin:contacts_contact_changelist",
                  "contacts.contact"),
        ]),
        _group("Settings", [
            _item("Templates", "draft", "admin:templates_messagetemplate_changelist",
                  "templates.messagetemplate"),
            _item("Notification events", "notifications",
                  "admin:templates_notificationevent_changelist",
                  "templates.notificationevent"),
            _item("Sender domains", "dns", "admin:domains_senderdomain_changelist",
                  "domains.senderdomain"),
            _item("Brands", "palette", "admin:domains_brand_changelist", "domains.brand"),
            _item("Webhooks", "webhook", "admin:webhooks_endpoint_changelist",
                  "webhooks.endpoint"),
            _item("Webhook messages", "outgoing_mail", "admin:webhooks_message_changelist",
                  "webhooks.message"),
            _item("Integrations", "extension", "admin:comms_integration_changelist",
                  "comms.integration"),
            _item("Account and keys", "key", "admin:accounts_account_changelist",
                  "accounts.account"),
        ]),
        _group("Internals", [
            _item("Outbox", "inbox", "admin:comms_outboxmessage_changelist"),
            _item("Callback batches", "inventory_2", "admin:comms_callbackbatch_changelist"),
            _item("Webhook attempts", "history", "admin:webhooks_attempt_changelist"),
            _item("Periodic tasks", "schedule",
                  "admin:django_celery_beat_periodictask_changelist"),
            _item("API keys", "vpn_key", "admin:accounts_apikey_changelist"),
            _item("Users", "person", "admin:auth_user_changelist"),
            _item("Groups", "group", "admin:auth_group_changelist"),
            _item("Login attempts", "lock", "admin:axes_accessattempt_changelist"),
            _item("Login failures", "lock_clock", "admin:axes_accessfailurelog_changelist"),
        ]),
    ]
    return [group for group in groups if group["items"]]


# --- the home page ---------------------------------------------------------------------------

def _scoped(request: HttpRequest, queryset: QuerySet, path: str = "account") -> QuerySet:
    if request.user.is_superuser:
        return queryset
    return queryset.filter(**{f"{path}__in": list(user_accounts(request))})


def _link(model: type[Model], view: str, *args: Any, query: str = "") -> str | None:
    meta = model._meta
    return _url(f"admin:{meta.app_label}_{meta.model_name}_{view}", *args, query=query)


def dashboard(request: HttpRequest, context: dict[str, Any]) -> dict[str, Any]:
    """The home page's figures: the user's events, today's sends, what needs attention."""
    now = timezone.now()
    today = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    week = now - timedelta(days=7)
    event_admin = admin.site._registry[Event]
    events = list(_scoped(request, Event.objects.all())
                  .annotate(guests=Count("attendees", filter=Q(attendees__mode=LIVE)))
                  .order_by("-starts_at", "-created_at")[:8])
    deliveries = without_test_sends(_scoped(request, Delivery.objects.filter(
        mode=LIVE, created_at__gte=today)))
    counts = deliveries.aggregate(
        total=Count("id"),
        sent=Count("id", filter=Q(status__in=[Status.SENT, Status.DELIVERED, Status.OPENED,
                                              Status.CLICKED])),
        delivered=Count("id", filter=Q(status__in=[Status.DELIVERED, Status.OPENED,
                                                   Status.CLICKED])),
        waiting=Count("id", filter=Q(status__in=[Status.QUEUED, Status.SENDING])),
        failed=Count("id", filter=Q(status__in=FAILED)),
    )
    # Still to go out today at their time: read on the partial index of scheduled rows.
    counts["scheduled"] = without_test_sends(_scoped(request, Delivery.objects.filter(
        mode=LIVE, status=Status.SCHEDULED, next_attempt_at__lt=today + timedelta(days=1),
    ))).count()
    sends = list(_scoped(request, BulkSend.objects.filter(created_at__gte=today))
                 .select_related("event", "template").order_by("-created_at")[:6])
    attention = _attention(request, week)
    context.update({
        "title": "Home",
        "home": True,
        "events": [{
            "event": event,
            "url": _link(Event, "change", event.pk),
            "guests_url": _link(Attendee, "changelist", query=f"event__id__exact={event.pk}"),
            "send_url": _url("admin:guests_event_send_form", event.pk)
            if event_admin.has_operate_permission(request, event) else None,
            "door_url": _url("admin:guests_event_door", event.pk)
            if event_admin.has_operate_permission(request, event) else None,
        } for event in events],
        "today": counts,
        "today_failed_url": _link(Delivery, "changelist", query="status__in=" + ",".join(FAILED)),
        "today_scheduled_url": _link(Delivery, "changelist",
                                     query=f"status__exact={Status.SCHEDULED}"),
        "sends": [{"send": send, "url": _url("admin:guests_event_send", send.event_id, send.pk)}
                  for send in sends],
        "attention": attention,
        "health": _health(request, now),
        "add_event_url": _link(Event, "add") if _can_add(Event, request) else None,
        "find_guest_url": _url("admin:guests_attendee_support")
        or _link(Attendee, "changelist"),
        "add_template_url": _link(MessageTemplate, "add")
        if _can_add(MessageTemplate, request) else None,
    })
    return context


def _health(request: HttpRequest, now: datetime) -> dict[str, Any]:
    """What operators watch (the figures /metrics and /readyz give): the work waiting and how
    long the oldest due item has waited, the last hour's failed sends by provider and reason,
    and readiness. Staff see their accounts' queues (both modes: a test key's sends wait in
    the same queue) and their live failures; superusers see every account's, and the
    callback batches, which belong to no account. The queues are ``ops.selectors``' one
    read, the same as ``/metrics``' gauges."""
    scope = None if request.user.is_superuser else list(user_accounts(request))
    figures = queues_waiting(account_ids=scope)  # the figures /metrics' gauges read
    scheduled = figures[SCHEDULED]
    queues = [
        _queue("Deliveries waiting to send", figures[DELIVERIES], figures.at),
        {"name": "Scheduled sends", "count": scheduled.depth, "next": scheduled.next_due,
         "late": bool(scheduled.next_due
                      and scheduled.next_due < figures.at - timedelta(minutes=1))},
        _queue("Webhook messages waiting", figures[WEBHOOK_MESSAGES], figures.at),
    ]
    if scope is None:
        queues.append(_queue("Provider callbacks waiting", figures[CALLBACK_BATCHES],
                             figures.at))
    errors = list(without_test_sends(_scoped(request, Delivery.objects.filter(
        mode=LIVE, status__in=FAILED, failed_at__gte=now - timedelta(hours=1))))
        .values("provider", "failure_type").annotate(count=Count("id"))
        .order_by("-count", "provider", "failure_type")[:10])
    checks = readiness()
    return {"queues": queues, "errors": errors, "checks": checks,
            "ready": all(value == "ok" for value in checks.values()),
            "global": request.user.is_superuser}


def _queue(name: str, queue: Queue, at: datetime) -> dict[str, Any]:
    """A queue's figures; one whose oldest due item waited over 5 minutes is flagged."""
    return {"name": name, "count": queue.depth, "oldest": queue.oldest_due,
            "late": queue.age(at) > timedelta(minutes=5).total_seconds()}


def _attention(request: HttpRequest, since: Any) -> list[dict[str, Any]]:
    """What staff should look at: guests whose ticket bounced this week, imports waiting for a
    Confirm, webhook endpoints that stopped or keep failing, sender domains not yet verified."""
    items: list[dict[str, Any]] = []
    bounced = (without_test_sends(_scoped(request, Delivery.objects.filter(
        mode=LIVE, status__in=FAILED, created_at__gte=since))).values("owner_id")
        .distinct().count())
    if bounced:
        items.append({"text": f"{bounced} guest{'s' if bounced != 1 else ''} whose message "
                              f"bounced or failed in the last 7 days",
                      "url": _link(Attendee, "changelist", query="last_status=bounced"),
                      "tone": "danger"})
    waiting = _scoped(request, GuestImport.objects.filter(
        status=GuestImport.Status.VALIDATED, valid__gt=0, created_at__gte=since))
    for guest_import in waiting.select_related("event")[:3]:
        items.append({"text": f"Import of {guest_import.filename or 'a CSV file'} for "
                              f"{guest_import.event.name} is waiting for Confirm",
                      "url": _url("admin:guests_event_import", guest_import.event_id,
                                  guest_import.pk), "tone": "warning"})
    for endpoint in _scoped(request, Endpoint.objects.exclude(disabled_at=None))[:3]:
        items.append({"text": f"Webhook {endpoint.url} is switched off"
                              + (f": {endpoint.disabled_reason}" if endpoint.disabled_reason
                                 else ""),
                      "url": _link(Endpoint, "change", endpoint.pk), "tone": "danger"})
    failing = _scoped(request, WebhookMessage.objects.filter(
        status=WebhookMessage.Status.FAILED, created_at__gte=since)).count()
    if failing:
        items.append({"text": f"{failing} webhook message{'s' if failing != 1 else ''} could "
                              f"not be delivered in the last 7 days",
                      "url": _link(WebhookMessage, "changelist", query="status__exact=failed"),
                      "tone": "warning"})
    for domain in _scoped(request, SenderDomain.objects.filter(verified=False))[:3]:
        items.append({"text": f"Sender domain {domain.domain} is not verified yet: mail goes "
                              f"from the platform's address",
                      "url": _link(SenderDomain, "change", domain.pk), "tone": "warning"})
    return items
