"""Staff never type GUIDs (#18 item 3): the admin's "Add attendee" generates the id, a CSV's
ids are optional and may be external ones (mapped to Herald's own, idempotently), nothing
valid offers no Confirm; and the lists show the newest first (#18 item 2)."""

import re
import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from accounts.services import membership_add
from comms.models import Delivery
from guests.models import Attendee, GuestImport
from guests.services import event_create


@pytest.fixture
def event(keys):
    return event_create(account=keys.account, name="Spring Gala")


@pytest.fixture
def staff(keys) -> Client:
    membership = membership_add(account=keys.account, username="stella",
                                role=Membership.Role.STAFF)
    client = Client()
    client.force_login(membership.user)
    return client


def _import(client, event, data: bytes, capture) -> GuestImport:
    from django.core.files.uploadedfile import SimpleUploadedFile

    with capture(execute=True):
        client.post(reverse("admin:guests_event_import_upload", args=[event.pk]),
                    {"file": SimpleUploadedFile("guests.csv", data, content_type="text/csv")})
    return GuestImport.objects.order_by("-created_at").first()


def _confirm(client, guest_import, capture) -> GuestImport:
    with capture(execute=True):
        client.post(reverse("admin:guests_event_import",
                            args=[guest_import.event_id, guest_import.pk]))
    guest_import.refresh_from_db()
    return guest_import


def test_add_attendee_asks_no_id_and_shows_it_read_only(keys, event, staff):
    page = staff.get(reverse("admin:guests_attendee_add"))
    assert page.status_code == 200 and 'name="id"' not in page.content.decode()
    response = staff.post(reverse("admin:guests_attendee_add"), {
        "account": keys.account.pk, "event": event.pk, "first_name": "Jane",
        "last_name": "Smith", "email": "jane@example.com", "correlation_id": ""})
    assert response.status_code == 302, response.content.decode()[:2000]
    jane = Attendee.objects.get()
    assert jane.id.version == 4 and (jane.email, jane.event_id) == ("jane@example.com", event.pk)
    change = staff.get(reverse("admin:guests_attendee_change", args=[jane.pk]))
    html = change.content.decode()
    assert str(jane.id) in html and 'name="id"' not in html  # shown, not editable


def test_external_ids_import_once_and_say_so(keys, event, staff,
                                             django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    data = ("id,firstName,lastName,email\n" + "".join(
        f"{n},Guest,{n},g{n}@example.com\n" for n in range(1000, 1005))).encode()
    guest_import = _import(staff, event, data, capture)
    assert (guest_import.status, guest_import.valid, guest_import.invalid) == ("validated", 5, 0)
    html = staff.get(reverse("admin:guests_event_import",
                             args=[event.pk, guest_import.pk])).content.decode()
    assert "ids 1000, 1001, 1002… are external ids; Herald" in html
    assert "Confirm: import 5 valid rows" in html
    assert _confirm(staff, guest_import, capture).imported == 5
    guest = Attendee.objects.get(correlation_id="1003")
    assert (guest.last_name, guest.email) == ("1003", "g1003@example.com")

    again = _confirm(staff, _import(staff, event, data, capture), capture)
    assert (again.existing, again.imported, again.skipped) == (5, 0, 5)
    assert Attendee.objects.count() == 5


def test_a_file_without_an_id_column_imports(keys, event, staff,
                                             django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    data = "firstName,lastName,email\nJane,Smith,jane@example.com\nAnn,Lee,ann@example.com\n"
    guest_import = _import(staff, event, data.encode(), capture)
    assert (guest_import.status, guest_import.valid) == ("validated", 2)
    html = staff.get(reverse("admin:guests_event_import",
                             args=[event.pk, guest_import.pk])).content.decode()
    assert "Rows without an id get one from Herald." in html
    assert _confirm(staff, guest_import, capture).imported == 2
    assert sorted(Attendee.objects.values_list("email", flat=True)) == [
        "ann@example.com", "jane@example.com"]
    # An empty id cell is the same as no column; the very same file again adds no one.
    mixed = f"id,email\n,walk-in@example.com\n{uuid.uuid4()},vip@example.com\n".encode()
    assert _confirm(staff, _import(staff, event, mixed, capture), capture).imported == 2
    assert _confirm(staff, _import(staff, event, mixed, capture), capture).imported == 0
    assert Attendee.objects.count() == 4


def test_nothing_valid_offers_no_confirm(keys, event, staff,
                                         django_capture_on_commit_callbacks):
    guest_import = _import(staff, event, b"id,email\n1000,not-an-email\n,\n",
                           django_capture_on_commit_callbacks)
    assert (guest_import.status, guest_import.valid, guest_import.invalid) == ("validated", 0, 2)
    html = staff.get(reverse("admin:guests_event_import",
                             args=[event.pk, guest_import.pk])).content.decode()
    assert "No row is valid: nothing can be imported." in html
    assert "Confirm" not in html and 'name="_confirm"' not in html


def _first_ids(client, name: str) -> list[str]:
    """The rows of a list in the order shown, by their change links."""
    html = client.get(reverse(f"admin:{name}_changelist")).content.decode()
    prefix = reverse(f"admin:{name}_changelist")
    return list(dict.fromkeys(re.findall(rf'href="{prefix}([0-9a-f-]{{36}})/change/', html)))


def test_lists_show_the_newest_first(keys, event, staff):
    now = timezone.now()
    guests = []
    for days in (3, 1, 2):
        guest = Attendee.objects.create(id=uuid.uuid4(), account=keys.account, event=event,
                                        email=f"g{days}@example.com")
        Attendee.objects.filter(pk=guest.pk).update(created_at=now - timedelta(days=days))
        guests.append((days, str(guest.pk)))
    assert _first_ids(staff, "guests_attendee") == [pk for _, pk in sorted(guests)]
    deliveries = []
    for days in (2, 3, 1):
        delivery = Delivery.objects.create(account=keys.account, channel="email",
                                           recipient=f"d{days}@example.com", provider="outbox")
        Delivery.objects.filter(pk=delivery.pk).update(created_at=now - timedelta(days=days))
        deliveries.append((days, str(delivery.pk)))
    expected = [pk for _, pk in sorted(deliveries)]
    assert _first_ids(staff, "comms_delivery") == expected
    assert _first_ids(staff, "comms_outboxmessage") == expected
