"""The Event admin's guest import: upload a CSV, check it (preview, row errors), confirm, watch
the progress bar. Built by ``EventAdmin.get_urls`` with ``scoped_view`` (see admin_views).

The upload URL is wrapped in ``upload_limited``: a body larger than HERALD_IMPORT_MAX_BYTES
(from its Content-Length) is refused before anything reads it — Django's CSRF check would
otherwise parse (and spool to disk) the whole multipart body first.
"""

import uuid
from functools import wraps
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from accounts.admin_base import AccountScopedAdmin
from guests import imports
from guests.admin_views import _page
from guests.models import Event, GuestImport

FORM_OVERHEAD = 64 * 1024  # multipart boundaries and the other fields, beside the file


def upload_limited(view: Any) -> Any:
    """Refuse an oversized POST from its Content-Length, before its body is read. The view
    itself stays CSRF-protected (``admin_view`` wraps it in ``csrf_protect``)."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if request.method == "POST" and length > settings.HERALD_IMPORT_MAX_BYTES + FORM_OVERHEAD:
            return HttpResponse(
                f"The upload is too large: at most {_mb(settings.HERALD_IMPORT_MAX_BYTES)}.",
                status=413, content_type="text/plain; charset=utf-8")
        return view(request, *args, **kwargs)

    return csrf_exempt(guarded)


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:g} MB"


# --- import ---------------------------------------------------------------------------------

class UploadForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text=(
        "UTF-8 CSV with a header line: email, firstName, lastName and optionally id and "
        "correlationId (case-insensitive; first_name style accepted). Ids are optional: "
        "Herald gives each guest its own; an id that is not a GUID (1000) is kept as an "
        "external id."))

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.HERALD_IMPORT_MAX_BYTES:
            raise forms.ValidationError(
                f"The file is too large: at most {_mb(settings.HERALD_IMPORT_MAX_BYTES)}.",
                code="too_large")
        return upload


def import_upload(model_admin: AccountScopedAdmin, request: HttpRequest,
                  event: Event) -> HttpResponse:
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        guest_import = imports.guest_import_create(
            event=event, user=request.user, filename=upload.name, data=upload.read())
        return redirect(_import_url(guest_import))
    too_large = any(e.code == "too_large" for e in form.errors.as_data().get("file", []))
    recent = GuestImport.objects.filter(event=event)[:10]
    return _page(model_admin, request, "import_upload.html", event, "Import guests",
                 status=413 if too_large else 200, form=form, recent=recent,
                 max_size=_mb(settings.HERALD_IMPORT_MAX_BYTES))


def _import_url(guest_import: GuestImport, suffix: str = "") -> str:
    return reverse(f"admin:guests_event_import{suffix}",
                   args=[guest_import.event_id, guest_import.id])


def import_detail(model_admin: AccountScopedAdmin, request: HttpRequest, event: Event,
                  import_id: uuid.UUID) -> HttpResponse:
    """The preview (counts, row errors, first rows, Confirm), then the progress bar."""
    guest_import = get_object_or_404(GuestImport.objects, id=import_id, event=event)
    if request.method == "POST":
        if imports.guest_import_confirm(guest_import=guest_import):
            messages.success(request, "Import started.")
        else:
            messages.info(request, f"Nothing to start: this import is {guest_import.status}.")
        return redirect(_import_url(guest_import))
    return _page(model_admin, request, "import_detail.html", event,
                 f"Import of {guest_import.filename or 'a CSV file'}", guest_import=guest_import,
                 progress=imports.guest_import_progress(guest_import=guest_import),
                 progress_url=_import_url(guest_import, "_progress"),
                 max_errors=settings.HERALD_IMPORT_MAX_ERRORS,
                 external_ids=[row["externalId"] for row in guest_import.preview
                               if row.get("externalId")][:3],
                 generated_ids=any(row.get("generated") for row in guest_import.preview))


def import_progress(model_admin: AccountScopedAdmin, request: HttpRequest, event: Event,
                    import_id: uuid.UUID) -> JsonResponse:
    guest_import = get_object_or_404(GuestImport.objects, id=import_id, event=event)
    return JsonResponse(imports.guest_import_progress(guest_import=guest_import))


