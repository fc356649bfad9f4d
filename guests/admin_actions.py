"""Support's "Resend ticket": the same service as POST /comms/v1/api/comms/send."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from common.errors import HeraldError
from comms.models import Delivery
from guests.sending import delivery_send_to_attendee


def resend(request: HttpRequest, previous: Delivery) -> None:
    """Resend ``previous``'s template to its attendee; report the 422 rule or the new send."""
    try:
        delivery = delivery_send_to_attendee(
            account=previous.account, mode=previous.mode, attendee_id=previous.owner_id,
            template_id=previous.template_id, correlation_id=previous.correlation_id,
        )
    except HeraldError as exc:
        detail = ""
        if exc.extra.get("failureType"):
            detail = (f" Previous failure: {exc.extra['failureType']} at "
                      f"{exc.extra.get('lastFailureAt')} — {exc.extra.get('lastFailureReason')}")
        messages.error(request, f"Not resent to {previous.recipient}: {exc.message}{detail}")
        return
    url = reverse("admin:comms_delivery_change", args=[delivery.pk])
    messages.success(request, format_html(
        'Resent to {}: new delivery <a href="{}">{}</a> is queued.', previous.recipient, url,
        delivery.pk))


@admin.action(description="Resend ticket (same template, same rules as the API)",
              permissions=["resend"])
def resend_deliveries(modeladmin, request: HttpRequest, queryset: QuerySet) -> None:
    for previous in queryset.select_related("account").filter(attendee__isnull=False)[:100]:
        resend(request, previous)


@admin.action(description="Resend ticket (the template of the latest send)",
              permissions=["resend"])
def resend_attendees(modeladmin, request: HttpRequest, queryset: QuerySet) -> None:
    for attendee in queryset[:100]:
        # The latest live send: a later sandbox rehearsal is never what support resends (a
        # guest only ever rehearsed with a test key gets its latest sandbox send resent).
        sends = Delivery.objects.filter(attendee=attendee).select_related("account").order_by(
            "-created_at")
        previous = sends.filter(mode=Delivery.Mode.LIVE).first() or sends.first()
        if previous is None:
            messages.warning(request, f"{attendee.email} has never been sent a ticket: send "
                                      "one with POST /comms/v1/api/comms/send first.")
            continue
        resend(request, previous)
