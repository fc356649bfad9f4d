"""The guest import's column-mapping step and its safety nets (#18 finding 4): headers such as
"Prénom;Nom;E-mail" are guessed and confirmed by staff before any row is checked, missing
names and unused columns are warned about in words, formula-looking cells are neutralised as
OWASP advises (and never reach a rendered subject as a formula), the rejected rows download
as a formula-safe CSV, Windows files are read with a warning, unreadable files are refused on
the upload form."""

import csv
import io
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from accounts.models import Membership
from accounts.services import account_create
from comms.models import Delivery
from guests import bulk
from guests.imports import guests_csv_header, guests_csv_parse
from guests.jobs import guest_jobs_sweep
from guests.models import Attendee, BulkSend, GuestImport
from guests.services import event_create
from templates.services import template_create
from tests.conftest import member_client

PARSE_ACCOUNT = uuid.UUID(int=1)
FRENCH = ("Prénom;Nom;E-mail;Table\n"
          "Jane;Smith;jane@example.com;4\n"
          "René;Dupont;rene@example.com;7\n"
          ";;nameless@example.com;2\n"
          "Ann;Lee;not-an-email;1\n")


@pytest.fixture
def event(keys):
    return event_create(account=keys.account, name="Spring Gala")


def _member(account, username: str, role=Membership.Role.STAFF) -> Client:
    return member_client(account, username, role)


@pytest.fixture
def staff(keys) -> Client:
    return _member(keys.account, "stella")


def _upload(client, event, data: bytes, capture, name: str = "guests.csv"):
    with capture(execute=True):
        return client.post(reverse("admin:guests_event_import_upload", args=[event.pk]),
                           {"file": SimpleUploadedFile(name, data, content_type="text/csv")})


def _url(guest_import: GuestImport) -> str:
    return reverse("admin:guests_event_import", args=[guest_import.event_id, guest_import.pk])


def _map(client, guest_import, capture, *fields: str):
    with capture(execute=True):
        return client.post(_url(guest_import), {
            "_mapping": "1", **{f"column_{i}": field for i, field in enumerate(fields)}})


def _confirm(client, guest_import, capture) -> GuestImport:
    with capture(execute=True):
        client.post(_url(guest_import))
    guest_import.refresh_from_db()
    return guest_import


# --- guessing (pure) ------------------------------------------------------------------------

@pytest.mark.parametrize("header, expected", [
    ("Prénom;Nom;E-mail", ["first_name", "last_name", "email"]),
    ("Vorname,Nachname,E-Mail-Adresse,Bestellnummer",
     ["first_name", "last_name", "email", "correlation_id"]),
    ("Nombre,Apellidos,Correo electrónico,Referencia",
     ["first_name", "last_name", "email", "correlation_id"]),
    ("Given name\tSurname\tE_MAIL\tOrder #\tTicket number",
     ["first_name", "last_name", "email", "correlation_id", "id"]),
    ("PRÉNOM;NOM DE FAMILLE;Courriel;N° de commande",
     ["first_name", "last_name", "email", "correlation_id"]),
])
def test_headers_are_guessed_in_four_languages_whatever_the_case_accents_separators(
        header, expected):
    delimiter = ";" if ";" in header else "\t" if "\t" in header else ","
    row = delimiter.join(["Jane", "Smith", "jane@example.com", "o-1", "t-1"][:len(expected)])
    parsed = guests_csv_header(data=f"{header}\n{row}\n".encode())
    assert parsed.guess == expected and parsed.delimiter == delimiter
    assert not parsed.certain  # not the documented names: staff confirm the columns


def test_an_unnamed_column_of_addresses_is_guessed_as_the_email_and_a_field_fills_one_column():
    header = guests_csv_header(data=b"Contact,First name,Firstname,Notes\n"
                                    b"jane@example.com,Jane,J,vip\nann@example.com,Ann,A,\n")
    assert header.guess == ["email", "first_name", "", ""]
    assert header.samples == [["jane@example.com", "ann@example.com"], ["Jane", "Ann"],
                              ["J", "A"], ["vip"]]


def test_documented_headers_need_no_mapping_step():
    assert guests_csv_header(data=b"id,firstName,lastName,email\n").certain
    assert guests_csv_header(data=b"email\n").certain
    assert not guests_csv_header(data=b"email,Notes\n").certain  # a column nobody chose


# --- the mapping step in the admin ----------------------------------------------------------

def test_a_french_file_goes_through_the_mapping_step_and_imports_its_names(
        keys, event, staff, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    response = _upload(staff, event, FRENCH.encode(), capture)
    guest_import = GuestImport.objects.get()
    assert response["Location"] == _url(guest_import)
    assert guest_import.status == "mapping" and guest_import.total == 0  # nothing checked yet
    page = staff.get(_url(guest_import))
    html = page.content.decode()
    assert page.status_code == 200 and "Which column is which?" in html
    form = page.context["form"]
    assert [form[f"column_{i}"].value() for i in range(4)] == [
        "first_name", "last_name", "email", ""]
    assert "For example: Jane · René" in html
    assert "Ignore this column" in html
    assert "Not imported: the column “Table” (no field chosen)." in html
    assert "Confirm" not in html  # the preview comes after the columns
    upload = staff.get(reverse("admin:guests_event_import_upload", args=[event.pk]))
    assert "Waiting for its columns to be confirmed" in upload.content.decode()

    fields = ("first_name", "last_name", "email", "")
    assert _map(staff, guest_import, capture, *fields).status_code == 302
    guest_import.refresh_from_db()
    assert (guest_import.status, guest_import.valid, guest_import.invalid) == ("validated", 3, 1)
    html = staff.get(_url(guest_import)).content.decode()
    assert "Columns used: “Prénom” → First name, “Nom” → Last name, “E-mail” → Email" in html
    assert ("1 row without a first or last name, line 4: these guests would have a blank "
            "name.") in html
    assert "Confirm: import 3 valid rows" in html
    assert _confirm(staff, guest_import, capture).imported == 3
    assert sorted(Attendee.objects.values_list("first_name", "last_name")) == [
        ("", ""), ("Jane", "Smith"), ("René", "Dupont")]


def test_the_old_silent_blank_names_are_warned_about(keys, event, staff,
                                                     django_capture_on_commit_callbacks):
    """"Prénom;Nom" with no name chosen: the preview says every guest would have a blank
    name, in words, before anything is imported."""
    capture = django_capture_on_commit_callbacks
    _upload(staff, event, FRENCH.encode(), capture)
    guest_import = GuestImport.objects.get()
    mapping = staff.get(_url(guest_import))
    assert "No name column" not in mapping.content.decode()  # the guess found both
    _map(staff, guest_import, capture, "", "", "email", "")
    html = staff.get(_url(guest_import)).content.decode()
    assert "No name column: every guest would have a blank name" in html
    assert "Not imported: the columns “Prénom”, “Nom”, “Table” (no field chosen)." in html
    assert not Attendee.objects.exists()


def test_a_mapping_needs_one_email_column_and_each_field_once(
        keys, event, staff, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    _upload(staff, event, FRENCH.encode(), capture)
    guest_import = GuestImport.objects.get()
    no_email = _map(staff, guest_import, capture, "first_name", "last_name", "", "")
    assert no_email.status_code == 200
    assert "Choose the column that holds the email addresses" in no_email.content.decode()
    twice = _map(staff, guest_import, capture, "first_name", "first_name", "email", "")
    assert "“First name” is chosen for 2 columns: choose it for one column only." in (
        twice.content.decode())
    unknown = _map(staff, guest_import, capture, "password", "last_name", "email", "")
    assert unknown.status_code == 200
    guest_import.refresh_from_db()
    assert guest_import.status == "mapping"


def test_the_columns_can_be_changed_from_the_preview_until_the_import_starts(
        keys, event, staff, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    _upload(staff, event, b"id,firstName,lastName,email\n1000,Jane,Smith,jane@example.com\n",
            capture)
    guest_import = GuestImport.objects.get()
    assert guest_import.status == "validated"  # documented names: straight to the preview
    html = staff.get(_url(guest_import)).content.decode()
    assert "Columns used: “id” → Guest id or ticket number" in html
    _map(staff, guest_import, capture, "", "last_name", "first_name", "email")
    guest_import.refresh_from_db()
    assert guest_import.status == "validated"
    assert guest_import.preview[0]["lastName"] == "Jane"
    assert guest_import.preview[0]["firstName"] == "Smith"
    assert _confirm(staff, guest_import, capture).imported == 1
    assert _map(staff, guest_import, capture, "id", "first_name", "last_name",
                "email").status_code == 302
    guest_import.refresh_from_db()
    assert guest_import.status == "done" and Attendee.objects.get().first_name == "Smith"


def test_an_import_waiting_for_its_columns_is_left_alone_by_the_sweeper(
        keys, event, staff, django_capture_on_commit_callbacks):
    _upload(staff, event, FRENCH.encode(), django_capture_on_commit_callbacks)
    GuestImport.objects.update(updated_at="2000-01-01T00:00:00Z")
    with django_capture_on_commit_callbacks(execute=True):
        guest_jobs_sweep()
    assert GuestImport.objects.get().status == "mapping"


def test_support_may_look_but_not_choose_and_other_accounts_see_nothing(
        keys, event, staff, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    _upload(staff, event, FRENCH.encode(), capture)
    guest_import = GuestImport.objects.get()
    support = _member(keys.account, "sam", role=Membership.Role.SUPPORT)
    assert support.get(_url(guest_import)).status_code == 200
    fields = ("first_name", "last_name", "email", "")
    assert _map(support, guest_import, capture, *fields).status_code == 403
    assert support.get(_url(guest_import) + "?download=rejected").status_code == 200
    other = _member(account_create(name="Other Org").account, "olga")
    assert other.get(_url(guest_import)).status_code == 404
    assert other.get(_url(guest_import) + "?download=rejected").status_code == 404
    assert _map(other, guest_import, capture, *fields).status_code == 404
    guest_import.refresh_from_db()
    assert guest_import.status == "mapping"


# --- formulas (OWASP CSV injection) ---------------------------------------------------------

FORMULAS = ("firstName,lastName,email,correlationId\n"
            'Jane,Smith,jane@example.com,o-1\n'
            '"=HYPERLINK(""http://evil.example/"",""Click"")",Smith,hyper@example.com,o-2\n'
            "Ann,+1+2,ann@example.com,@SUM(A1)\n"
            "Bob,Lee,=1+2@example.com,o-4\n"
            "Cy,Ng,cy@example.com,-3\n")


def test_formula_looking_cells_are_neutralised_and_counted_and_a_formula_email_is_refused():
    parsed = guests_csv_parse(account_id=PARSE_ACCOUNT, data=FORMULAS.encode())
    names = {row.email: (row.first_name, row.last_name, row.correlation_id)
             for row in parsed.rows}
    assert names["hyper@example.com"][0] == "'=HYPERLINK(\"http://evil.example/\",\"Click\")"
    assert names["ann@example.com"] == ("Ann", "'+1+2", "'@SUM(A1)")
    assert names["cy@example.com"] == ("Cy", "Ng", "'-3")
    assert names["jane@example.com"] == ("Jane", "Smith", "o-1")
    assert parsed.formulas == [3, 4, 6]
    [error] = parsed.errors
    assert error["line"] == 5 and "which a spreadsheet runs as a formula" in error["errors"][0]


def test_a_hyperlink_name_never_reaches_a_subject_as_a_formula(
        keys, event, staff, sandbox_api, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    _upload(staff, event, FORMULAS.encode(), capture)
    guest_import = GuestImport.objects.get()
    html = staff.get(_url(guest_import)).content.decode()
    assert ("3 rows had a cell that a spreadsheet would run as a formula (it starts with =, "
            "+, - or @), lines 3, 4, 6: Herald keeps the text with a &#x27; in front") in html
    assert _confirm(staff, guest_import, capture).imported == 4
    ticket = template_create(account=keys.account, name="Ticket",
                             subject="{{ firstName }} — your ticket",
                             text_body="Hi {{ firstName }}")
    with capture(execute=True):
        bulk.bulk_send_create(event=event, template_id=ticket.pk,
                              audience=BulkSend.Audience.ALL, mode="test", token=uuid.uuid4(),
                              user=None)
    subject = Delivery.objects.get(recipient="hyper@example.com").subject
    assert subject.startswith("'=HYPERLINK(")
    subjects = list(Delivery.objects.values_list("subject", flat=True))
    assert len(subjects) == 4 and not any(s.startswith(("=", "+", "-", "@")) for s in subjects)


# --- the rejected rows as a CSV -------------------------------------------------------------

def test_the_rejected_rows_download_with_line_cells_and_reason_formula_safe(
        keys, event, staff, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    data = FRENCH + '=cmd|" /C calc"!A0;Evil;not-an-email-either;9\n'
    _upload(staff, event, data.encode(), capture, name="Invités mars.csv")
    guest_import = GuestImport.objects.get()
    _map(staff, guest_import, capture, "first_name", "last_name", "email", "")
    html = staff.get(_url(guest_import)).content.decode()
    assert 'href="?download=rejected"' in html
    response = staff.get(_url(guest_import) + "?download=rejected")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == (
        'attachment; filename="Invit-s-mars-rejected-rows.csv"')
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")  # a spreadsheet then reads the accents right
    rows = list(csv.reader(io.StringIO(text[1:]), delimiter=";"))
    assert rows[0] == ["Line", "Reason", "Prénom", "Nom", "E-mail", "Table"]
    assert rows[1] == ["5", "email: 'not-an-email' is not a valid email address",
                       "Ann", "Lee", "not-an-email", "1"]
    assert rows[2][0] == "6" and rows[2][2] == "'=cmd|\" /C calc\"!A0"
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


# --- encodings and unreadable files ---------------------------------------------------------

def test_a_windows_file_is_read_as_such_with_a_warning(keys, event, staff,
                                                       django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    _upload(staff, event, FRENCH.encode("cp1252"), capture)
    guest_import = GuestImport.objects.get()
    mapping = staff.get(_url(guest_import))
    assert "Herald read it as Windows text" in mapping.content.decode()
    assert mapping.context["form"]["column_0"].value() == "first_name"  # "Prénom" recognised
    _map(staff, guest_import, capture, "first_name", "last_name", "email", "")
    html = staff.get(_url(guest_import)).content.decode()
    assert "René" in html and "Herald read it as Windows text" in html
    assert _confirm(staff, guest_import, capture).imported == 3
    assert Attendee.objects.filter(first_name="René").exists()


def test_only_a_file_with_no_utf8_text_is_read_as_windows_text():
    windows = guests_csv_parse(account_id=PARSE_ACCOUNT, data=FRENCH.encode("cp1252"),
                               fields=["first_name", "last_name", "email", ""])
    assert windows.encoding == "cp1252" and windows.rows[1].first_name == "René"
    mixed = FRENCH.encode() + "Zoë;Latin;zoe@example.com;3\n".encode("latin-1")
    parsed = guests_csv_parse(account_id=PARSE_ACCOUNT, data=mixed,
                              fields=["first_name", "last_name", "email", ""])
    assert parsed.encoding == "utf-8" and parsed.rows[1].first_name == "René"
    assert "not UTF-8" in parsed.errors[-1]["errors"][0]


@pytest.mark.parametrize("data, message", [
    (b"", "The file is empty"),
    (b"\n\njane@example.com\n", "Line 1 is blank"),
    ("email\n".encode("utf-16"), "UTF-16 or binary"),
    (b"jane@example.com;Jane;Smith\n", "Line 1 holds a guest (jane@example.com)"),
])
def test_unreadable_files_are_refused_on_the_upload_form(keys, event, staff, data, message,
                                                          django_capture_on_commit_callbacks):
    response = _upload(staff, event, data, django_capture_on_commit_callbacks)
    assert response.status_code == 200 and message in response.content.decode()
    assert not GuestImport.objects.exists()


def test_a_header_without_rows_says_so(keys, event, staff, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    _upload(staff, event, b"firstName,lastName,email\n", capture)
    guest_import = GuestImport.objects.get()
    html = staff.get(_url(guest_import)).content.decode()
    assert "The file names its columns but has no guest rows" in html
    assert 'name="_confirm"' not in html
