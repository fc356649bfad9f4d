"""The event's Door page: staff check guests in by scanning (a token) or from the search
(an attendee), see checked in / expected; support may only watch the counts; another
account's event is a 404; the POST needs the CSRF token; the event's Dashboard draws the
arrivals."""

import re
import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from accounts.services import account_create
from guests.models import Attendee
from guests.services import attendee_create, event_create
from guests.tokens import checkin_token, ticket_token
from tests.conftest import member_client


@pytest.fixture
def event(keys):
    return event_create(account=keys.account, name="Spring Gala")


def _guest(event, first: str, last: str, mode: str = "live", **fields) -> Attendee:
    return attendee_create(account=event.account, mode=mode, id=uuid.uuid4(), event_id=event.pk,
                           email=f"{first.lower()}@example.com", first_name=first,
                           last_name=last, **fields).attendee


def _url(name: str, event) -> str:
    return reverse(f"admin:guests_event_door{name}", args=[event.pk])


@pytest.fixture
def staff(keys):
    return member_client(keys.account, "stella", Membership.Role.STAFF)


def test_the_page_has_the_scanner_the_search_and_the_counts(staff, event):
    _guest(event, "Ann", "Lee")
    _guest(event, "Rehearsal", "Guest", mode="test")  # a test key's: not expected at the door
    page = staff.get(_url("", event))
    assert page.status_code == 200
    html = page.content.decode()
    assert "guests/vendor/jsqr/jsQR.js" in html and "guests/door.js" in html
    assert 'id="door-camera-start"' in html and 'id="door-search"' in html
    assert '<strong id="door-checked-in">0</strong>' in html
    assert '<strong id="door-expected">1</strong>' in html
    assert 'data-can-operate="1"' in html and "Send tickets" in html
    # The event's tabs lead to it.
    overview = staff.get(reverse("admin:guests_event_change", args=[event.pk])).content.decode()
    assert f'href="{_url("", event)}"' in overview


def test_a_scanned_ticket_is_welcomed_once_then_already_in(staff, event):
    ann = _guest(event, "Ann", "Lee")
    first = staff.post(_url("_check_in", event), {"token": ticket_token(ann)}).json()
    assert first["result"] == "welcome" and first["title"] == "Welcome, Ann Lee"
    assert first["counts"] == {"checkedIn": 1, "expected": 1}
    ann.refresh_from_db()
    assert ann.checked_in_at is not None and ann.checked_in_by == "stella at the Door page"

    again = staff.post(_url("_check_in", event), {"token": ticket_token(ann)}).json()
    assert again["result"] == "already"
    assert again["title"].startswith("Already checked in at ")
    assert again["title"].endswith("(stella at the Door page)") and again["detail"] == "Ann Lee"
    assert staff.get(_url("_counts", event)).json() == {"checkedIn": 1, "expected": 1}


def test_a_guest_found_by_name_email_or_reference_is_checked_in_by_button(staff, event):
    ann = _guest(event, "Ann", "Lee", correlation_id="order-77")
    _guest(event, "Bob", "Stone")
    _guest(event, "Ann", "Rehearsal", mode="test")
    other = event_create(account=event.account, name="Autumn Fair")
    _guest(other, "Ann", "Elsewhere")
    for query in ("ann l", "ANN@example", "order-77"):
        found = staff.get(_url("_search", event), {"q": query}).json()["guests"]
        assert [g["id"] for g in found] == [str(ann.id)], query
    assert found[0] == {"id": str(ann.id), "name": "Ann Lee", "email": "ann@example.com",
                        "reference": "order-77", "in": ""}

    said = staff.post(_url("_check_in", event), {"attendee": str(ann.id)}).json()

    assert said["result"] == "welcome" and said["guest"]["in"].startswith("Checked in at ")
    found = staff.get(_url("_search", event), {"q": "order-77"}).json()["guests"]
    assert found[0]["in"] == said["guest"]["in"]


@pytest.mark.parametrize(("ticket", "title"), [
    ("other event", "Not a ticket for this event"),
    ("rehearsal", "Not a ticket for this event"),
    ("deleted", "Not a ticket for this event"),
    ("forged", "Not a ticket"),
    ("nothing", "Nothing to check in"),
    ("closed", "Check-in is closed"),
])
def test_a_refused_ticket_says_why_and_lets_no_one_in(staff, event, ticket, title):
    now = timezone.now()
    tokens = {
        "other event": lambda: ticket_token(_guest(event_create(
            account=event.account, name="Autumn Fair"), "Al", "Fair")),
        "rehearsal": lambda: ticket_token(_guest(event, "Rehearsal", "Guest", mode="test")),
        "deleted": lambda: _deleted(event),
        "forged": lambda: checkin_token(uuid.uuid4(), "")[:-2] + "xx",
        "nothing": lambda: "",
        "closed": lambda: _closed(event, now),
    }
    token = tokens[ticket]()

    said = staff.post(_url("_check_in", event), {"token": token}).json()

    assert said["result"] == "refused" and said["title"] == title, said
    assert said["detail"]
    assert not Attendee.objects.filter(checked_in_at__isnull=False).exists()


def _deleted(event) -> str:
    guest = _guest(event, "Gone", "Guest")
    token = ticket_token(guest)
    guest.delete()
    return token


def _closed(event, now) -> str:
    event.starts_at, event.ends_at = now - timedelta(days=3), now - timedelta(days=2)
    event.save()
    return ticket_token(_guest(event, "Late", "Guest"))


def test_support_sees_who_came_in_but_lets_no_one_in(keys, staff, event):
    ann = _guest(event, "Ann", "Lee")
    bob = _guest(event, "Bob", "Stone")
    staff.post(_url("_check_in", event), {"token": ticket_token(bob)})
    support = member_client(keys.account, "sam", Membership.Role.SUPPORT)
    page = support.get(_url("", event))
    assert page.status_code == 200 and page.context["can_operate"] is False
    html = page.content.decode()
    assert 'id="door-search"' in html and 'data-can-operate=""' in html
    assert 'id="door-camera-start"' not in html and 'id="door-result"' not in html
    assert "Send tickets" not in html  # the event's operate buttons neither
    found = support.get(_url("_search", event), {"q": "stone"}).json()["guests"]
    assert found[0]["in"].startswith("Checked in at ")
    assert support.get(_url("_counts", event)).json() == {"checkedIn": 1, "expected": 2}
    assert support.post(_url("_check_in", event),
                        {"token": ticket_token(ann)}).status_code == 403
    ann.refresh_from_db()
    assert ann.checked_in_at is None


def test_another_accounts_event_is_a_404_on_every_door_url(event):
    ann = _guest(event, "Ann", "Lee")
    stranger = member_client(account_create(name="Other Org").account, "olga",
                             Membership.Role.OWNER)
    for name in ("", "_search", "_counts"):
        assert stranger.get(_url(name, event), {"q": "ann"}).status_code == 404, name
    assert stranger.post(_url("_check_in", event),
                         {"token": ticket_token(ann)}).status_code == 404
    ann.refresh_from_db()
    assert ann.checked_in_at is None


def test_the_check_in_post_needs_the_csrf_token(keys, event):
    ann = _guest(event, "Ann", "Lee")
    client = member_client(keys.account, "cara", Membership.Role.STAFF, csrf=True)
    assert client.post(_url("_check_in", event),
                       {"token": ticket_token(ann)}).status_code == 403
    ann.refresh_from_db()
    assert ann.checked_in_at is None


def test_the_dashboard_draws_the_arrivals_in_the_events_time_zone(staff, event):
    event.time_zone = "Europe/Paris"
    event.save()
    assert 'id="arrivals"' not in staff.get(
        reverse("admin:guests_event_dashboard", args=[event.pk])).content.decode()
    start = timezone.now().replace(hour=17, minute=0, second=0, microsecond=0)  # 18:00 Paris
    if start > timezone.now():
        start -= timedelta(days=1)
    for minutes in (0, 2, 4, 40, 41, 75):
        guest = _guest(event, f"G{minutes}", "Guest")
        Attendee.objects.filter(pk=guest.pk).update(
            checked_in_at=start + timedelta(minutes=minutes), checked_in_by="door 1")
    page = staff.get(reverse("admin:guests_event_dashboard", args=[event.pk]))
    html = page.content.decode()
    chart = page.context["arrivals"]
    assert chart["total"] == 6 and chart["step"] == 5
    # Bars from 18:00 (Paris) to 19:15, five minutes each: 3, 0…, 2 (18:40), 0…, 1 (19:15).
    counts = [b["title"].rsplit(": ", 1)[1] for b in chart["bars"]]
    assert counts[0] == "3 in" and counts[8] == "2 in" and counts[-1] == "1 in"
    assert len(chart["bars"]) == 16
    assert chart["bars"][0]["title"].startswith("18:00 to 18:05")
    assert 'id="arrivals-chart"' in html and "Busiest: 18:00 to 18:05: 3 guests" in html


def test_the_guests_page_says_when_they_came_in(staff, event):
    ann = _guest(event, "Ann", "Lee")
    page = reverse("admin:guests_attendee_change", args=[ann.pk])
    assert '<dd id="guest-checked-in">Not checked in yet</dd>' in staff.get(page).content.decode()
    staff.post(_url("_check_in", event), {"token": ticket_token(ann)})
    html = staff.get(page).content.decode()
    assert re.search(r'<dd id="guest-checked-in">Checked in at \d\d:\d\d \(stella at the Door '
                     r'page\)</dd>', html), html


def test_the_home_page_links_each_event_to_its_door_for_who_may_use_it(keys, staff, event):
    door = f'href="{_url("", event)}"'
    assert door in staff.get(reverse("admin:index")).content.decode()
    support = member_client(keys.account, "sam", Membership.Role.SUPPORT)
    assert door not in support.get(reverse("admin:index")).content.decode()
