"""The security review of the new admin (issue #18): Fix the email and resend is rate-limited
per user and per guest; a CSV of too many columns is refused at upload; correcting an email
away and back does not sidestep spec 000's 422 rule; formula cells hidden behind white space
or written full-width are neutralised in the rejected-rows CSV and on the way in."""

import csv
import io
import unicodedata
import uuid

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from accounts.models import Membership
from comms.models import Delivery
from guests.admin_guest import EMAIL_FIXES_PER_HOUR, EMAIL_FIXES_PER_MINUTE
from guests.imports import MAX_COLUMNS, guests_csv_parse
from guests.models import Attendee, GuestImport, GuestImportFile
from guests.services import event_create
from tests.conftest import guest, member_client


@pytest.fixture(autouse=True)
def counters_in_this_process(settings) -> None:
    """The limits count per user id, which a new test database gives again: in Redis the
    counts of an earlier run would still be there."""
    settings.HERALD_RATE_LIMIT_REDIS_URL = ""


@pytest.fixture
def live_sandbox(settings):
    """Live sends through the sandbox's lifecycle (bounce@ bounces, others are opened)."""
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0
    settings.HERALD_EMAIL_PROVIDER = "sandbox"


def _member(keys, username: str = "sam", role=Membership.Role.SUPPORT) -> Client:
    return member_client(keys.account, username, role)


def _add(api, event_id, template_id=None, **fields) -> str:
    body = guest(event_id, template_id, **fields)
    response = api.post("/checkin/v1/api/guest", body)
    assert response.status_code in (200, 201), response.content
    return body["id"]


def _fix(client, attendee_id, email: str, capture) -> list[str]:
    with capture(execute=True):
        response = client.post(reverse("admin:guests_attendee_fix_email", args=[attendee_id]),
                               {"email": email}, follow=True)
    assert response.status_code == 200
    return [str(m) for m in get_messages(response.wsgi_request)]


# --- 4. Fix the email and resend: no way to mail many people ----------------------------------

def test_a_guests_email_is_fixed_at_most_three_times_an_hour(
        api, live_sandbox, event_id, template_id, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    attendee_id = _add(api, event_id, template_id, email="bounce@example.com")
    support, other = _member(api.keys), _member(api.keys, "sue")
    for n in range(EMAIL_FIXES_PER_HOUR):
        said = _fix(support, attendee_id, f"victim{n}@example.com", capture)
        assert said[0].startswith("Email corrected")
    sent = Delivery.objects.filter(owner_id=attendee_id).count()
    assert sent == 1 + EMAIL_FIXES_PER_HOUR
    # Another support user is held to the same count for this guest.
    said = _fix(other, attendee_id, "victim9@example.com", capture)
    assert said == [f"Not changed: this guest's email was already corrected "
                    f"{EMAIL_FIXES_PER_HOUR} times in the last hour. Check the address with "
                    "the guest, then correct it again in an hour."]
    last = f"victim{EMAIL_FIXES_PER_HOUR - 1}@example.com"
    assert Attendee.objects.get(pk=attendee_id).email == last
    assert Delivery.objects.filter(owner_id=attendee_id).count() == sent
    assert LogEntry.objects.filter(object_id=attendee_id).count() == EMAIL_FIXES_PER_HOUR


def test_a_user_fixes_at_most_ten_emails_a_minute(api, live_sandbox, event_id, template_id,
                                                  django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    guests = [_add(api, event_id, template_id, email=f"guest{n}@example.com")
              for n in range(EMAIL_FIXES_PER_MINUTE + 1)]
    support = _member(api.keys)
    for n, attendee_id in enumerate(guests[:-1]):
        assert _fix(support, attendee_id, f"victim{n}@example.com", capture)[0].startswith(
            "Email corrected")
    last = guests[-1]
    said = _fix(support, last, "victim-last@example.com", capture)
    assert said == [f"Not changed: at most {EMAIL_FIXES_PER_MINUTE} email corrections a "
                    "minute. Wait a minute and correct it again."]
    assert Attendee.objects.get(pk=last).email == f"guest{EMAIL_FIXES_PER_MINUTE}@example.com"
    assert not Delivery.objects.filter(recipient="victim-last@example.com").exists()
    # Another user is not held by this one's count.
    said = _fix(_member(api.keys, "sue"), last, "victim-last@example.com", capture)
    assert said[0] == (f"Email corrected: guest{EMAIL_FIXES_PER_MINUTE}@example.com → "
                       "victim-last@example.com.")


def test_a_refused_or_unchanged_address_is_not_counted(api, live_sandbox, event_id,
                                                       template_id,
                                                       django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    attendee_id = _add(api, event_id, template_id, email="bounce@example.com")
    support = _member(api.keys)
    for _ in range(EMAIL_FIXES_PER_HOUR + 1):
        assert _fix(support, attendee_id, "not-an-email", capture)[0].startswith("Not changed")
        assert _fix(support, attendee_id, "BOUNCE@example.com", capture)[0].startswith(
            "Not changed: bounce@example.com is already")
    said = _fix(support, attendee_id, "jane@example.com", capture)
    assert said[0] == "Email corrected: bounce@example.com → jane@example.com."


# --- 5. A CSV of thousands of columns ----------------------------------------------------------

def _upload(client, event, data: bytes, capture):
    with capture(execute=True):
        return client.post(reverse("admin:guests_event_import_upload", args=[event.pk]),
                           {"file": SimpleUploadedFile("wide.csv", data,
                                                       content_type="text/csv")})


def _wide(columns: int) -> bytes:
    header = ["email", *(f"extra{n}" for n in range(columns - 1))]
    row = ["jane@example.com", *("x" for _ in range(columns - 1))]
    return (",".join(header) + "\n" + ",".join(row) + "\n").encode()


def test_a_file_of_more_than_a_hundred_columns_is_refused_at_upload(
        keys, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    event = event_create(account=keys.account, name="Spring Gala")
    staff = _member(keys, "stella", role=Membership.Role.STAFF)
    response = _upload(staff, event, _wide(20_000), capture)
    assert response.status_code == 200
    assert response.context["form"].errors["file"] == [
        f"Line 1 names 20,000 columns: at most {MAX_COLUMNS} are read. Keep the guests' "
        "columns (email, names, order reference) and upload the file again."]
    assert "Line 1 names 20,000 columns" in response.content.decode()
    assert not GuestImport.objects.exists() and not GuestImportFile.objects.exists()
    _upload(staff, event, _wide(MAX_COLUMNS + 1), capture)
    assert not GuestImport.objects.exists()
    response = _upload(staff, event, _wide(MAX_COLUMNS), capture)
    assert response.status_code == 302
    assert GuestImport.objects.get().status == GuestImport.Status.MAPPING


# --- 7. The 422 rule and an email corrected away and back --------------------------------------

def test_correcting_the_email_back_to_the_bounced_address_does_not_resend(
        api, live_sandbox, event_id, template_id, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    attendee_id = _add(api, event_id, template_id, email="bounce@example.com")
    support = _member(api.keys)
    _fix(support, attendee_id, "jane@example.com", capture)
    said = _fix(support, attendee_id, "Bounce@Example.com", capture)
    assert said[0] == "Email corrected: jane@example.com → Bounce@Example.com."
    assert said[1].startswith("Not sent to Bounce@Example.com: We can't send to this address: "
                              "it bounced on ")
    sent = list(Delivery.objects.filter(owner_id=attendee_id).order_by("created_at")
                .values_list("recipient", "status"))
    assert sent == [("bounce@example.com", "bounced"), ("jane@example.com", "opened")]
    page = support.get(reverse("admin:guests_attendee_change", args=[attendee_id]))
    assert page.context["plan"].refusal.startswith("We can't send to this address")


def test_the_api_refuses_a_resend_to_an_address_that_bounced_before_a_later_delivery(
        sandbox_api, keys, event_id, template_id, settings,
        django_capture_on_commit_callbacks):
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0
    capture = django_capture_on_commit_callbacks
    attendee_id = _add(sandbox_api, event_id, template_id, email="bounce@example.com")
    support = _member(keys)
    _fix(support, attendee_id, "jane@example.com", capture)  # resent: opened
    _fix(support, attendee_id, "bounce@example.com", capture)  # back: refused in words
    response = sandbox_api.post("/comms/v1/api/comms/send", {
        "attendeeId": attendee_id, "templateId": template_id, "correlationId": "again"})
    assert response.status_code == 422, response.content
    body = response.json()
    assert (body["error"], body["failureType"], body["lastFailureReason"]) == (
        "previous_send_permanently_failed", "bounced", "550 5.1.1 No such user")
    assert Delivery.objects.filter(owner_id=attendee_id,
                                   recipient="bounce@example.com").count() == 1
    # A later delivery to the same address still clears it: "I lost my ticket".
    _fix(support, attendee_id, "jane@example.com", capture)
    response = sandbox_api.post("/comms/v1/api/comms/send", {
        "attendeeId": attendee_id, "templateId": template_id, "correlationId": "again"})
    assert response.status_code == 200, response.content


# --- 8. Formula cells behind white space or written full-width --------------------------------

HIDDEN = [" =1+1", "\u00a0=1+1", "\n=1+1", "\uff1d1+1", "\u200b@SUM(1)", "\u3000+1"]


def _formula(cell: str) -> bool:
    stripped = "".join(c for c in cell if unicodedata.category(c) != "Cf").lstrip()
    return unicodedata.normalize("NFKC", stripped[:1]) in ("=", "+", "-", "@") or (
        cell[:1] in ("=", "+", "-", "@", "\t", "\r"))


def test_the_rejected_rows_csv_neutralises_formulas_behind_white_space_or_full_width(
        keys, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    event = event_create(account=keys.account, name="Spring Gala")
    staff = _member(keys, "stella", role=Membership.Role.STAFF)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["firstName", "lastName", "email"])
    for cell in HIDDEN:
        writer.writerow([cell, "Smith", "not-an-email" + cell])  # rejected for its email
    _upload(staff, event, out.getvalue().encode(), capture)
    guest_import = GuestImport.objects.get()
    response = staff.get(reverse("admin:guests_event_import",
                                 args=[event.pk, guest_import.pk]) + "?download=rejected")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert len(rows) == 1 + len(HIDDEN)
    firsts = [row[2] for row in rows[1:]]
    assert firsts == ["'" + cell for cell in HIDDEN]
    assert not [cell for row in rows for cell in row if _formula(cell)]


def test_a_full_width_or_invisibly_led_formula_is_neutralised_on_the_way_in():
    data = ("firstName,lastName,email,correlationId\n"
            "\uff1dHYPERLINK(1),Smith,a@example.com,o-1\n"
            "Ann,\u200b+1,b@example.com,o-2\n"
            "Bob,Lee,c@example.com,\uff20SUM(1)\n"
            "Cy,Ng,d@example.com,o-4\n"
            "Di,Wu,\uff1dx@example.com,o-5\n")
    parsed = guests_csv_parse(account_id=uuid.UUID(int=1), data=data.encode())
    names = {row.email: (row.first_name, row.last_name, row.correlation_id)
             for row in parsed.rows}
    assert names == {"a@example.com": ("'\uff1dHYPERLINK(1)", "Smith", "o-1"),
                     "b@example.com": ("Ann", "'\u200b+1", "o-2"),
                     "c@example.com": ("Bob", "Lee", "'\uff20SUM(1)"),
                     "d@example.com": ("Cy", "Ng", "o-4")}
    assert parsed.formulas == [2, 3, 4]
    [error] = parsed.errors
    assert error["line"] == 6
    assert error["errors"] == ["email: '\uff1dx@example.com' starts with “=”, which a spreadsheet "
                               "runs as a formula"]


def test_a_bulk_send_skips_a_guest_corrected_back_to_the_address_that_bounced(
        api, live_sandbox, event_id, template_id, django_capture_on_commit_callbacks):
    from guests.bulk import bulk_send_audience
    from guests.models import Event
    from templates.models import MessageTemplate

    capture = django_capture_on_commit_callbacks
    attendee_id = _add(api, event_id, template_id, email="bounce@example.com")
    support = _member(api.keys)
    _fix(support, attendee_id, "jane@example.com", capture)  # resent: opened
    _fix(support, attendee_id, "bounce@example.com", capture)  # back: the 422 rule holds
    audience = bulk_send_audience(event=Event.objects.get(pk=event_id),
                                  template=MessageTemplate.objects.get(pk=template_id),
                                  audience="all")
    assert audience.get(pk=attendee_id).failed_for_good is True
