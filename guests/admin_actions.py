"""Support's buttons: Send ticket, Resend ticket, Fix the email and resend (on the guest's
page), and the lists' "Resend ticket" actions. All go through the same service as
POST /comms/v1/api/comms/send (``guests.sending.delivery_send_to_attendee``), so spec 000's
422 rule applies; a refusal is said in words a guest could be told (``comms.wording``)."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html

from common.errors import HeraldError
from comms import wording
from comms.models import Delivery
from guests.models import Attendee
from guests.reminders import NOT_REMINDER, reminders_readdress
from guests.sending import delivery_send_to_attendee
from templates.models import MessageTemplate


def refusal_text(exc: HeraldError) -> str:
    """Why a send was refused, in words a guest could be told."""
    if exc.code == "previous_send_permanently_failed":
        failed_at = parse_datetime(str(exc.extra.get("lastFailureAt") or ""))
        return wording.refusal_words(failure_type=str(exc.extra.get("failureType") or ""),
                                     failed_at=failed_at,
                                     reason=str(exc.extra.get("lastFailureReason") or ""))
    if exc.code == "template_not_found":
        return "That template is gone: choose another one."
    if exc.code == "attendee_not_found":
        return "This guest was added by a sandbox rehearsal: live tickets cannot be sent to them."
    return exc.message


def server_answer(exc: HeraldError) -> str:
    """The receiving server's own answer behind a 422 refusal, for support to quote."""
    reason = exc.extra.get("lastFailureReason") if exc.extra else None
    return f" (The receiving server said: “{reason}”.)" if reason else ""


# --- the lists' actions ----------------------------------------------------------------------

def resend(request: HttpRequest, previous: Delivery) -> None:
    """Resend ``previous``'s template to its attendee; report the 422 rule or the new send."""
    try:
        delivery = delivery_send_to_attendee(
            account=previous.account, mode=previous.mode, attendee_id=previous.owner_id,
            template_id=previous.template_id, correlation_id=previous.correlation_id,
        )
    except HeraldError as exc:
        messages.error(request, f"Not resent to {previous.recipient}: {refusal_text(exc)}"
                                f"{server_answer(exc)}")
        return
    messages.success(request, format_html(
        'Resent to {}{}: new delivery queued (<a href="{}">see it</a>, or <a href="{}">the '
        "guest's page</a>).", delivery.recipient,
        " as a sandbox rehearsal" if delivery.mode == Delivery.Mode.TEST else "",
        reverse("admin:comms_delivery_change", args=[delivery.pk]),
        reverse("admin:guests_attendee_change", args=[previous.owner_id])))


@admin.action(description="Resend ticket (same template, same rules as the API)",
              permissions=["resend"])
def resend_deliveries(modeladmin, request: HttpRequest, queryset: QuerySet) -> None:
    for previous in queryset.select_related("account").filter(attendee__isnull=False)[:100]:
        resend(request, previous)


@admin.action(description="Resend ticket (the template of the latest send)",
              permissions=["resend"])
def resend_attendees(modeladmin, request: HttpRequest, queryset: QuerySet) -> None:
    for attendee in queryset[:100]:
        sends = list(Delivery.objects.filter(attendee=attendee).select_related("account")
                     .order_by("-created_at")[:30])
        previous = ticket_delivery(sends)
        if previous is None:
            messages.warning(request, format_html(
                'No ticket was ever sent to {}: send one from <a href="{}">the guest\'s '
                "page</a>.", attendee.email,
                reverse("admin:guests_attendee_change", args=[attendee.pk])))
            continue
        resend(request, previous)


def ticket_delivery(deliveries: list[Delivery]) -> Delivery | None:
    """The delivery whose template is the guest's ticket (deliveries newest first): the latest
    live one, else the latest rehearsal (a guest only ever rehearsed with a test key). A later
    sandbox rehearsal is never what support resends."""
    with_template = [d for d in deliveries if d.template_id]
    live = [d for d in with_template if d.mode == Delivery.Mode.LIVE]
    return (live or with_template or [None])[0]


# --- the guest's page: Send ticket, Resend ticket, Fix the email and resend --------------------

def _guest_url(attendee: Attendee) -> str:
    return reverse("admin:guests_attendee_change", args=[attendee.pk])


def _ticket(request: HttpRequest, attendee: Attendee, *,
            quiet: bool = False) -> tuple[Any, str] | None:
    """The template and key mode to send: the guest's ticket (the template of their latest
    send, in its mode), else the template chosen on the page (in the mode that added the
    guest). None when there is nothing to send (said in a message unless ``quiet``)."""
    deliveries = list(Delivery.objects.filter(NOT_REMINDER, attendee=attendee)
                      .order_by("-created_at")[:30])
    previous = ticket_delivery(deliveries)
    if previous is not None:
        return previous.template_id, previous.mode
    chosen = MessageTemplate.objects.filter(
        account_id=attendee.account_id, channel="email",
        pk=_uuid(request.POST.get("template"))).values_list("pk", flat=True).first()
    if chosen is None:
        if not quiet:
            messages.error(request, "Choose the template to send as this guest's ticket.")
        return None
    return chosen, attendee.mode


def _uuid(value: str | None) -> str | None:
    try:
        return str(forms.UUIDField().clean(value)) if value else None
    except forms.ValidationError:
        return None


def _send(request: HttpRequest, attendee: Attendee, template_id: Any, mode: str) -> bool:
    """Send, and say what happened (the new ticket, or why not)."""
    try:
        delivery = delivery_send_to_attendee(
            account=attendee.account, mode=mode, attendee_id=attendee.pk,
            template_id=template_id, correlation_id=attendee.correlation_id)
    except HeraldError as exc:
        messages.error(request, f"Not sent to {attendee.email}: {refusal_text(exc)}"
                                f"{server_answer(exc)}")
        return False
    label = " as a sandbox rehearsal" if mode == Delivery.Mode.TEST else ""
    messages.success(request, f"Ticket sent to {delivery.recipient}{label}: it is queued, and "
                              "its history is below.")
    return True


def guest_send(model_admin: Any, request: HttpRequest, attendee: Attendee) -> HttpResponse:
    """POST: send the guest's ticket again (or a first one, of the chosen template)."""
    ticket = _ticket(request, attendee)
    if ticket is not None:
        _send(request, attendee, *ticket)
    return redirect(_guest_url(attendee))


class FixEmailForm(forms.Form):
    email = forms.EmailField(max_length=254)


def guest_fix_email(model_admin: Any, request: HttpRequest, attendee: Attendee) -> HttpResponse:
    """POST: correct the guest's email (a typo), recorded in the guest's history with who did
    it, then resend the ticket to the new address (a guest never sent one: only the fix)."""
    form = FixEmailForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Not changed: " + " ".join(form.errors.get("email", [])))
        return redirect(_guest_url(attendee))
    new, old = form.cleaned_data["email"], attendee.email
    if new.lower() == old.lower():
        messages.error(request, f"Not changed: {old} is already this guest's address. Type "
                                "the corrected one.")
        return redirect(_guest_url(attendee))
    ticket = _ticket(request, attendee, quiet=True)
    attendee = attendee_email_fix(attendee=attendee, email=new)
    model_admin.log_change(request, attendee, f"Email corrected from {old} to {new}.")
    messages.success(request, f"Email corrected: {old} → {new}.")
    if ticket is not None:
        _send(request, attendee, *ticket)
    return redirect(_guest_url(attendee))


def attendee_email_fix(*, attendee: Attendee, email: str) -> Attendee:
    """Correct a guest's email (the row locked: a send in flight takes one address or the
    other, never half of each). Later sends go to the new address; spec 000's 422 rule
    compares each failure's address with it, so an old bounce no longer blocks them."""
    with transaction.atomic():
        locked = Attendee.objects.select_for_update().get(pk=attendee.pk)
        locked.email = email
        locked.save(update_fields=["email", "updated_at"])
        reminders_readdress(attendee=locked)  # its scheduled reminders go there too
    return locked
