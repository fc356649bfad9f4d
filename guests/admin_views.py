"""The Event admin's tools: send a template to its guests (the import is in admin_import).

Each page is built by ``EventAdmin.get_urls`` with ``AccountScopedAdmin.scoped_view`` (staff
login, CSRF protection, the event looked up through the admin's scoped queryset: another
account's is a 404) and declares what it needs per method: starting an import or a send needs
the "operate" capability in the event's account (support may look, 403 otherwise). The views
here receive that event.

The upload URL is wrapped in ``upload_limited``: a body larger than HERALD_IMPORT_MAX_BYTES
(from its Content-Length) is refused before anything reads it — Django's CSRF check would
otherwise parse (and spool to disk) the whole multipart body first.
"""

import uuid
from typing import Any

from django import forms
from django.contrib import messages
from django.db.models import Exists, OuterRef
from django.db.models.functions import Lower
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from accounts.admin_base import AccountScopedAdmin
from common.errors import HeraldError
from comms.models import Delivery
from comms.selectors import suppressions_active
from guests import bulk
from guests.models import BulkSend, Event

# How the pages name a key mode: a test-mode send is a sandbox rehearsal, never live traffic.
MODE_LABELS = {Delivery.Mode.LIVE: "live", Delivery.Mode.TEST: "sandbox rehearsal"}


def _page(model_admin: AccountScopedAdmin, request: HttpRequest, page: str, event: Event,
          title: str, status: int = 200, **context: Any) -> TemplateResponse:
    return TemplateResponse(request, f"admin/guests/event/{page}", {
        **model_admin.admin_site.each_context(request), "opts": Event._meta, "event": event,
        "title": title, "can_change": model_admin.has_change_permission(request, event),
        **context,
    }, status=status)


# --- bulk send ------------------------------------------------------------------------------

class BulkSendForm(forms.Form):
    template = forms.ModelChoiceField(queryset=None, help_text="The account's email templates.")
    audience = forms.ChoiceField(choices=BulkSend.Audience.choices,
                                 initial=BulkSend.Audience.ALL)
    mode = forms.ChoiceField(choices=[
        (Delivery.Mode.LIVE, "Live: the configured provider"),
        (Delivery.Mode.TEST, "Test: the sandbox provider (nothing reaches an inbox)"),
    ], initial=Delivery.Mode.LIVE)
    token = forms.UUIDField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, event: Event, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["template"].queryset = bulk.bulk_send_templates(event=event)


def bulk_send_form(model_admin: AccountScopedAdmin, request: HttpRequest,
                   event: Event) -> HttpResponse:
    """Choose → preview (how many guests, how many skipped) → confirm (carries a one-time
    token: submitting it twice sends once)."""
    form = BulkSendForm(request.POST or None, event=event)
    if request.method != "POST" or not form.is_valid():
        return _page(model_admin, request, "bulk_send_form.html", event,
                     "Send a template to guests", form=form,
                     recent=BulkSend.objects.filter(event=event).select_related("template")[:10])
    data = form.cleaned_data
    if "_confirm" in request.POST and data["token"]:
        try:
            job, created = bulk.bulk_send_create(
                event=event, template_id=data["template"].pk, audience=data["audience"],
                mode=data["mode"], token=data["token"], user=request.user)
        except HeraldError as exc:
            form.add_error(None, exc.message)
        else:
            if not created:
                messages.info(request, "This send was already confirmed: nothing more was "
                                       "sent.")
            return redirect(_job_url(job))
    confirm = BulkSendForm(initial={**data, "template": data["template"].pk,
                                    "token": uuid.uuid4()}, event=event)
    return _page(model_admin, request, "bulk_send_confirm.html", event, "Confirm the send",
                 form=form, confirm=confirm, template=data["template"],
                 audience=BulkSend.Audience(data["audience"]).label,
                 mode=MODE_LABELS[data["mode"]],
                 counts=_preview_counts(event, data["template"], data["audience"],
                                        data["mode"]))


def _preview_counts(event: Event, template: Any, audience: str, mode: str) -> dict[str, int]:
    guests = bulk.bulk_send_audience(event=event, template=template, audience=audience,
                                     mode=mode)
    suppressed = suppressions_active(account_ids=[event.account_id], mode=mode).filter(
        address=Lower(OuterRef("email")))
    matching = guests.count()
    failed = guests.filter(failed_for_good=True).count()
    blocked = guests.filter(Exists(suppressed), failed_for_good=False).count()
    return {"matching": matching, "failed": failed, "suppressed": blocked,
            "to_send": matching - failed - blocked}


def _job_url(job: BulkSend, suffix: str = "") -> str:
    return reverse(f"admin:guests_event_send{suffix}", args=[job.event_id, job.id])


def _job(event: Event, job_id: uuid.UUID) -> BulkSend:
    return get_object_or_404(BulkSend.objects.select_related("template"), id=job_id,
                             event=event)


def bulk_send_detail(model_admin: AccountScopedAdmin, request: HttpRequest, event: Event,
                     job_id: uuid.UUID) -> HttpResponse:
    job = _job(event, job_id)
    return _page(model_admin, request, "bulk_send_detail.html", event,
                 f"Sending “{job.template}”", job=job, mode=MODE_LABELS.get(job.mode, job.mode),
                 progress=bulk.bulk_send_progress(job=job),
                 progress_url=_job_url(job, "_progress"))


def bulk_send_progress(model_admin: AccountScopedAdmin, request: HttpRequest, event: Event,
                       job_id: uuid.UUID) -> JsonResponse:
    job = _job(event, job_id)
    return JsonResponse(bulk.bulk_send_progress(job=job))
