"""The Event admin's guest import: upload a CSV, say which column is which (a step skipped
when every header is a documented name), check it (preview, warnings, row errors, the
rejected rows as a CSV), confirm, watch the progress bar, then go on to send the tickets.
Built by ``EventAdmin.get_urls`` with ``scoped_view`` (see admin_views): the mapping step and
the rejected-rows download live on the import's own URL (POST ``_mapping``, GET
``?download=rejected``), so they need what that URL needs ("operate" to post, "view" to look).

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
from unfold.widgets import UnfoldAdminSelectWidget

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
    file = forms.FileField(label="CSV file", widget=forms.FileInput(attrs={
        "accept": ".csv,.txt,text/csv", "class": "border border-base-200 rounded-default "
        "px-3 py-2 w-full max-w-2xl cursor-pointer"}), error_messages={"empty": (
        "The file is empty: the first line must name the columns (for example email, "
        "firstName, lastName).")}, help_text=(
        "A CSV with a header line, separated by commas or semicolons, as a spreadsheet saves "
        "it. Herald recognises the usual column names (email, first name, last name, order "
        "reference; in English, French, German or Spanish) and lets you check which column is "
        "which before anything is imported. Ids are optional: Herald gives each guest its "
        "own; a ticket number in an id column is kept as an external id."))

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.HERALD_IMPORT_MAX_BYTES:
            raise forms.ValidationError(
                f"The file is too large: at most {_mb(settings.HERALD_IMPORT_MAX_BYTES)}.",
                code="too_large")
        self.data_bytes = upload.read()
        try:
            imports.guests_csv_header(data=self.data_bytes)
        except imports.ImportFileError as exc:
            raise forms.ValidationError(str(exc), code="unreadable") from None
        return upload


class MappingForm(forms.Form):
    """One select per column of the file, preset with Herald's guess."""

    def __init__(self, *args: Any, mapping: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.samples = mapping.get("samples", [])
        choices = [(imports.IGNORE, "Ignore this column"), *imports.FIELD_LABELS.items()]
        for index, name in enumerate(mapping.get("headers", [])):
            self.fields[f"column_{index}"] = forms.ChoiceField(
                label=name or f"Column {index + 1}", choices=choices, required=False,
                initial=mapping["fields"][index], widget=UnfoldAdminSelectWidget)

    def columns(self) -> list[dict[str, Any]]:
        """Each column's select with its sample values, for the template."""
        return [{"field": self[f"column_{index}"], "samples": values}
                for index, values in enumerate(self.samples)]

    def chosen(self) -> list[str]:
        return [self.cleaned_data[f"column_{index}"] for index in range(len(self.fields))]

    def submitted(self) -> list[str] | None:
        """The fields as posted (None before a post): the warnings follow the staff's choice."""
        if not self.is_bound:
            return None
        return [self.data.get(f"column_{index}", "") for index in range(len(self.fields))]

    def clean(self):
        data = super().clean()
        if not self.errors:
            for problem in imports.mapping_problems(fields=self.chosen()):
                self.add_error(None, problem)
        return data


def _mapping_form(guest_import: GuestImport, data: Any = None) -> MappingForm:
    return MappingForm(data, mapping=guest_import.mapping or {})


def import_upload(model_admin: AccountScopedAdmin, request: HttpRequest,
                  event: Event) -> HttpResponse:
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        guest_import = imports.guest_import_create(
            event=event, user=request.user, filename=upload.name, data=form.data_bytes)
        return redirect(_import_url(guest_import))
    too_large = any(e.code == "too_large" for e in form.errors.as_data().get("file", []))
    recent = [(item, STATUS_WORDS[item.status])
              for item in GuestImport.objects.filter(event=event)[:10]]
    return _page(model_admin, request, "import_upload.html", event, "Import guests",
                 status=413 if too_large else 200, form=form, recent=recent,
                 max_size=_mb(settings.HERALD_IMPORT_MAX_BYTES))


def _import_url(guest_import: GuestImport, suffix: str = "") -> str:
    return reverse(f"admin:guests_event_import{suffix}",
                   args=[guest_import.event_id, guest_import.id])


def import_detail(model_admin: AccountScopedAdmin, request: HttpRequest, event: Event,
                  import_id: uuid.UUID) -> HttpResponse:
    """The mapping step, the preview (counts, warnings, row errors, first rows, Confirm),
    then the progress bar and what to do next."""
    guest_import = get_object_or_404(GuestImport.objects, id=import_id, event=event)
    if request.method == "POST" and "_mapping" in request.POST:
        return _import_map(model_admin, request, event, guest_import)
    if request.method == "POST":
        if imports.guest_import_confirm(guest_import=guest_import):
            messages.success(request, "Import started.")
        else:
            messages.info(request, "Nothing to start: this import is "
                                   f"{STATUS_WORDS[guest_import.status]}.")
        return redirect(_import_url(guest_import))
    if request.GET.get("download") == "rejected":
        return _rejected_csv(guest_import)
    if guest_import.status == GuestImport.Status.MAPPING:
        return _mapping_page(model_admin, request, event, guest_import,
                             _mapping_form(guest_import))
    return _page(model_admin, request, "import_detail.html", event,
                 f"Import of {guest_import.filename or 'a CSV file'}", guest_import=guest_import,
                 progress=imports.guest_import_progress(guest_import=guest_import),
                 progress_url=_import_url(guest_import, "_progress"),
                 status_words=STATUS_WORDS[guest_import.status],
                 warnings=imports.guest_import_warnings(guest_import=guest_import),
                 columns=_columns_used(guest_import), mapping_form=_mapping_form(guest_import),
                 guests_url=reverse("admin:guests_attendee_changelist")
                 + f"?event__id__exact={event.pk}",
                 external_ids=[row["externalId"] for row in guest_import.preview
                               if row.get("externalId")][:3],
                 generated_ids=any(row.get("generated") for row in guest_import.preview))


# How the pages name an import's status.
STATUS_WORDS = {
    GuestImport.Status.MAPPING: "waiting for its columns to be confirmed",
    GuestImport.Status.UPLOADED: "being checked",
    GuestImport.Status.VALIDATED: "checked, waiting for confirmation",
    GuestImport.Status.IMPORTING: "importing",
    GuestImport.Status.DONE: "done",
    GuestImport.Status.FAILED: "stopped",
}


def _import_map(model_admin: AccountScopedAdmin, request: HttpRequest, event: Event,
                guest_import: GuestImport) -> HttpResponse:
    form = _mapping_form(guest_import, request.POST)
    if form.is_valid():
        try:
            mapped = imports.guest_import_map(guest_import=guest_import, fields=form.chosen())
        except imports.ImportFileError as exc:
            form.add_error(None, str(exc))
        else:
            if not mapped:
                messages.info(request, "This import has started: its columns can no longer "
                                       "change.")
            return redirect(_import_url(guest_import))
    return _mapping_page(model_admin, request, event, guest_import, form)


def _mapping_page(model_admin: AccountScopedAdmin, request: HttpRequest, event: Event,
                  guest_import: GuestImport, form: MappingForm) -> HttpResponse:
    return _page(model_admin, request, "import_mapping.html", event, "Which column is which?",
                 guest_import=guest_import, form=form,
                 warnings=imports.guest_import_warnings(
                     guest_import=guest_import, fields=form.submitted(),
                     refused=bool(form.is_bound and form.errors)))


def _columns_used(guest_import: GuestImport) -> list[tuple[str, str]]:
    """(header, field label) of each column the import uses."""
    mapping = guest_import.mapping or {}
    return [(name, imports.FIELD_LABELS[key]) for name, key
            in zip(mapping.get("headers", []), mapping.get("fields") or [], strict=False)
            if key != imports.IGNORE]


def _rejected_csv(guest_import: GuestImport) -> HttpResponse:
    response = HttpResponse(imports.guests_csv_rejected(guest_import=guest_import),
                            content_type="text/csv; charset=utf-8")
    stem = (guest_import.filename or "guests").rsplit(".", 1)[0]
    safe = "".join(c if (c.isascii() and c.isalnum()) or c in "-_" else "-"
                   for c in stem)[:60] or "guests"
    response["Content-Disposition"] = f'attachment; filename="{safe}-rejected-rows.csv"'
    return response


def import_progress(model_admin: AccountScopedAdmin, request: HttpRequest, event: Event,
                    import_id: uuid.UUID) -> JsonResponse:
    guest_import = get_object_or_404(GuestImport.objects, id=import_id, event=event)
    return JsonResponse(imports.guest_import_progress(guest_import=guest_import))
