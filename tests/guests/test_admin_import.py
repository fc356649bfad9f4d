"""CSV import of guests in the admin: upload → preview with per-row errors → confirm → a
Celery task imports; idempotent on the id column; scoped, role-checked, CSRF-protected,
size-limited."""

import re
import uuid

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Membership
from accounts.services import account_create, membership_add
from guests.imports import ImportFileError, guests_csv_header, guests_csv_parse
from guests.models import Attendee, GuestImport, GuestImportFile
from guests.services import attendee_create, event_create

HEADER = "id,firstName,lastName,email,correlationId\n"
IDS = [str(uuid.uuid4()) for _ in range(4)]


# Pure parsing needs an account only as the namespace of derived guest ids.
PARSE_ACCOUNT = uuid.UUID(int=1)


def _member(account, username: str, role=Membership.Role.STAFF, csrf: bool = False) -> Client:
    membership = membership_add(account=account, username=username, role=role)
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(membership.user)
    return client


def _token(response) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"',
                     response.content.decode()).group(1)


def _file(data: bytes, name: str = "guests.csv"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="text/csv")


def _upload(client, event_id, data: bytes, capture, **extra):
    with capture(execute=True):
        return client.post(reverse("admin:guests_event_import_upload", args=[event_id]),
                           {"file": _file(data), **extra})


def _confirm(client, guest_import, capture, **extra):
    url = reverse("admin:guests_event_import", args=[guest_import.event_id, guest_import.pk])
    with capture(execute=True):
        return client.post(url, extra)


GOOD = (
    f"{IDS[0]},Jane,Smith,jane@example.com,order-1\n"
    f"{IDS[1]},Ren\u00e9,Dupont,rene@example.com,\n"
    f"{IDS[2]},Ann,Lee,ann@example.com,order-3\n"
)


@pytest.fixture
def event(keys):
    return event_create(account=keys.account, name="Spring Gala")


def test_upload_preview_confirm_import_with_csrf_enforced(keys, event,
                                                          django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    client = _member(keys.account, "stella", csrf=True)
    bad = (HEADER + GOOD
           + f"{IDS[3]},Bad,Email,not-an-email,\n"
           + f"{IDS[0]},Dup,Licate,dup@example.com,\n"
           + "not-a-guid,No,Guid,x@example.com,\n").encode()
    latin1 = f"{uuid.uuid4()},Zo\u00eb,Latin,zoe@example.com,\n".encode("latin-1")
    page = client.get(reverse("admin:guests_event_import_upload", args=[event.pk]))
    assert page.status_code == 200
    # Without the CSRF token: refused, nothing stored.
    assert _upload(client, event.pk, bad + latin1, capture).status_code == 403
    assert not GuestImport.objects.exists()

    response = _upload(client, event.pk, bad + latin1, capture,
                       csrfmiddlewaretoken=_token(page))
    guest_import = GuestImport.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(
        f"/import/{guest_import.pk}/")
    preview = client.get(response["Location"])
    html = preview.content.decode()
    guest_import.refresh_from_db()
    assert (guest_import.status, guest_import.total, guest_import.valid,
            guest_import.invalid) == ("validated", 7, 4, 3)
    errors = {e["line"]: e["errors"] for e in guest_import.errors}
    assert errors[5] == ["email: 'not-an-email' is not a valid email address"]
    assert errors[6] == ["id: duplicate of line 2"]
    assert 7 not in errors  # an id that is not a GUID is an external id, not an error
    assert "not UTF-8" in errors[8][0]
    assert "duplicate of line 2" in html and "Confirm: import 4 valid rows" in html
    assert "Ren\u00e9" in html  # the preview
    assert not Attendee.objects.exists()  # nothing until confirmed

    assert _confirm(client, guest_import, capture).status_code == 403  # CSRF again
    response = _confirm(client, guest_import, capture, csrfmiddlewaretoken=_token(preview))
    assert response.status_code == 302
    guest_import.refresh_from_db()
    assert (guest_import.status, guest_import.imported, guest_import.skipped) == ("done", 4, 0)
    done = client.get(response["Location"]).content.decode()
    assert "Imported: <strong>4</strong>" in done
    assert f'href="{reverse("admin:guests_event_send_form", args=[event.pk])}"' in done
    assert "Next: send tickets" in done and "See the guests" in done
    assert f"?event__id__exact={event.pk}" in done
    jane = Attendee.objects.get(id=IDS[0])
    assert (jane.first_name, jane.email, jane.correlation_id, jane.event_id,
            jane.account_id) == ("Jane", "jane@example.com", "order-1", event.pk,
                                 keys.account.pk)
    assert Attendee.objects.get(id=IDS[1]).correlation_id is None
    assert Attendee.objects.get(correlation_id="not-a-guid").first_name == "No"
    assert Attendee.objects.count() == 4
    progress = client.get(reverse("admin:guests_event_import_progress",
                                  args=[event.pk, guest_import.pk])).json()
    assert progress["status"] == "done" and progress["finished"]
    assert "4 guests imported" in progress["text"]


def test_reimporting_the_same_file_duplicates_nothing(keys, event,
                                                      django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    client = _member(keys.account, "stella")
    data = (HEADER + GOOD).encode()
    for expected in ((3, 0), (0, 3)):
        _upload(client, event.pk, data, capture)
        guest_import = GuestImport.objects.order_by("-created_at").first()
        _confirm(client, guest_import, capture)
        _confirm(client, guest_import, capture)  # a double click starts nothing more
        guest_import.refresh_from_db()
        assert (guest_import.imported, guest_import.skipped) == expected
    assert guest_import.existing == 3
    assert Attendee.objects.count() == 3
    assert not GuestImportFile.objects.exists()  # the file is dropped once imported


def test_a_file_without_an_email_column_asks_for_it_and_imports_nothing(
        keys, event, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    client = _member(keys.account, "stella")
    _upload(client, event.pk, f"id,firstName,lastName\n{IDS[0]},Jane,Smith\n".encode(), capture)
    guest_import = GuestImport.objects.get()
    assert guest_import.status == "mapping"  # not checked with a guess that has no email
    url = reverse("admin:guests_event_import", args=[event.pk, guest_import.pk])
    html = client.get(url).content.decode()
    assert "No column holds the email addresses" in html and "Confirm" not in html
    with capture(execute=True):
        refused = client.post(url, {"_mapping": "1", "column_0": "id",
                                    "column_1": "first_name", "column_2": "last_name"})
    assert refused.status_code == 200
    assert "Choose the column that holds the email addresses" in refused.content.decode()
    assert _confirm(client, guest_import, capture).status_code == 302  # starts nothing
    guest_import.refresh_from_db()
    assert guest_import.status == "mapping" and not Attendee.objects.exists()


def test_an_id_of_another_accounts_guest_is_a_row_error(keys, event,
                                                        django_capture_on_commit_callbacks):
    other = account_create(name="Other Org").account
    theirs = event_create(account=other, name="Theirs")
    attendee_create(account=other, mode="live", id=uuid.UUID(IDS[0]), event_id=theirs.pk,
                    email="theirs@example.com")
    client = _member(keys.account, "stella")
    _upload(client, event.pk, (HEADER + GOOD).encode(), django_capture_on_commit_callbacks)
    guest_import = GuestImport.objects.get()
    assert (guest_import.valid, guest_import.invalid) == (2, 1)
    assert guest_import.errors == [{"line": 2, "id": IDS[0], "errors": [
        "id: already used by a guest of another account"], "cells": [
        IDS[0], "Jane", "Smith", "jane@example.com", "order-1"]}]
    _confirm(client, guest_import, django_capture_on_commit_callbacks)
    assert Attendee.objects.get(id=IDS[0]).account_id == other.pk  # untouched
    assert Attendee.objects.filter(account=keys.account).count() == 2


def test_staff_of_another_account_gets_404_and_support_403(keys, event,
                                                           django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    _upload(_member(keys.account, "stella"), event.pk, (HEADER + GOOD).encode(), capture)
    guest_import = GuestImport.objects.get()
    other = _member(account_create(name="Other Org").account, "olga")
    args = [event.pk, guest_import.pk]
    assert other.get(reverse("admin:guests_event_import_upload", args=[event.pk])
                     ).status_code == 404
    assert _upload(other, event.pk, (HEADER + GOOD).encode(), capture).status_code == 404
    for name in ("admin:guests_event_import", "admin:guests_event_import_progress"):
        assert other.get(reverse(name, args=args)).status_code == 404
    assert _confirm(other, guest_import, capture).status_code == 404

    support = _member(keys.account, "sam", role=Membership.Role.SUPPORT)
    assert support.get(reverse("admin:guests_event_import_upload", args=[event.pk])
                       ).status_code == 403
    assert _upload(support, event.pk, (HEADER + GOOD).encode(), capture).status_code == 403
    assert support.get(reverse("admin:guests_event_import", args=args)).status_code == 200
    assert _confirm(support, guest_import, capture).status_code == 403
    assert GuestImport.objects.count() == 1 and not Attendee.objects.exists()

    anonymous = Client().get(reverse("admin:guests_event_import_progress", args=args))
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]


def test_oversize_uploads_are_refused(keys, event, settings,
                                      django_capture_on_commit_callbacks):
    settings.HERALD_IMPORT_MAX_BYTES = 1000
    client = _member(keys.account, "stella")
    data = (HEADER + GOOD * 10).encode()
    assert len(data) > 1000
    response = _upload(client, event.pk, data, django_capture_on_commit_callbacks)
    assert response.status_code == 413 and "too large" in response.content.decode()
    # A 1 GB Content-Length is refused before its body is read.
    response = client.post(reverse("admin:guests_event_import_upload", args=[event.pk]),
                           {"file": _file(data)}, CONTENT_LENGTH=str(1024 ** 3))
    assert response.status_code == 413
    assert not GuestImport.objects.exists()


def test_event_page_links_to_the_tools(keys, event):
    html = _member(keys.account, "stella").get(
        reverse("admin:guests_event_change", args=[event.pk])).content.decode()
    assert reverse("admin:guests_event_import_upload", args=[event.pk]) in html
    assert reverse("admin:guests_event_send_form", args=[event.pk]) in html


# --- the parser on its own ------------------------------------------------------------------

def test_header_names_are_case_insensitive_and_snake_case_is_accepted():
    data = ("\ufeffID;First_Name;LAST NAME;E-mail;correlation_id\n"
            f"{IDS[0]};Jane;Smith;jane@example.com;c1\n\n").encode()
    parsed = guests_csv_parse(account_id=PARSE_ACCOUNT, data=data)
    [row] = parsed.rows
    assert (row.first_name, row.last_name, row.email, row.correlation_id) == (
        "Jane", "Smith", "jane@example.com", "c1")
    assert parsed.total == 1 and parsed.invalid == 0


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"\n\njane@example.com\n", "Line 1 is blank"),
    ("id,email\n".encode("utf-16"), "UTF-16"),
    # Not UTF-8 in a file that is UTF-8 elsewhere (a Windows-only file is read as such).
    (b"id,first\xe9,email\n1,Ren\xc3\xa9,rene@example.com\n", "Line 1: the header is not UTF-8"),
    (b"jane@example.com,Jane,Smith\n", "Line 1 holds a guest (jane@example.com)"),
])
def test_unreadable_files_are_refused_whole(data, message):
    with pytest.raises(ImportFileError, match=re.escape(message)):
        guests_csv_parse(account_id=PARSE_ACCOUNT, data=data)
    with pytest.raises(ImportFileError, match=re.escape(message)):
        guests_csv_header(data=data)


def test_row_errors_name_the_line_and_are_capped():
    rows = "".join(f"{uuid.uuid4()},A,B,bad-{i},\n" for i in range(30))
    parsed = guests_csv_parse(account_id=PARSE_ACCOUNT, max_errors=5,
                              data=(HEADER + rows + f"{IDS[0]},A,B\n").encode())
    assert parsed.invalid == 31 and len(parsed.errors) == 5
    assert parsed.errors[0]["line"] == 2
    long_name = guests_csv_parse(
        account_id=PARSE_ACCOUNT,
        data=(HEADER + f"{IDS[0]},{'x' * 101},B,a@example.com,\n").encode())
    assert long_name.errors[0]["errors"] == ["firstName: longer than 100 characters"]
    short = guests_csv_parse(account_id=PARSE_ACCOUNT, data=(HEADER + f"{IDS[0]},A,B\n").encode())
    assert short.errors[0]["errors"] == ["expected 5 fields, found 3", "email: missing"]
