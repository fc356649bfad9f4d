"""The event's Door page: staff at the entrance let guests in, from a phone or a laptop.

Built by ``EventAdmin.get_urls`` with ``scoped_view`` (the event through the admin's scoped
queryset: another account's is a 404; staff login and CSRF by the admin site). Letting guests
in needs the "operate" capability (owner, staff): support's role is remote help (look up,
resend), not the door, so support sees the page, the counts and whether a guest came in
("Is Ann here?"), without the camera or the Check in buttons, and its POST is a 403.

- a search box (name, email, order reference) whose results come from ``door_search`` as the
  user types, each with a "Check in" button;
- a camera scanner (``guests/static/guests/door.js`` with the vendored jsQR, no CDN) posting
  the token it reads;
- both post to ``door_check_in``, which calls ``guests.checkin.attendee_check_in`` — the API's
  own rule — for the event's live guests, and answers what the screen shows in big letters
  ("Welcome, Ann Lee", "Already checked in at 19:02 (door 2)", "Not a ticket for this event");
  every outcome is a 200 with its words (the page's screen, not an API);
- checked in / expected from ``door_counts``, polled every few seconds.

``arrivals`` is the event's Dashboard tab's chart of check-ins over time.
"""

import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Count, Q
from django.http import HttpRequest, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from accounts.admin_base import AccountScopedAdmin
from common.errors import HeraldError, NotFound
from guests import admin_views
from guests.admin_guest import guests_find
from guests.checkin import (
    AlreadyCheckedIn,
    CheckInClosed,
    InvalidTicket,
    WrongEvent,
    attendee_check_in,
    checked_in_words,
)
from guests.models import Attendee, Event

LIVE = Attendee.LIVE  # the door lets real guests in: a test key's rehearsal guests are not
COUNTS_EVERY_SECONDS = 5


def _live_guests(event: Event):
    return Attendee.objects.filter(event=event, account_id=event.account_id, mode=LIVE)


def door_page(model_admin: AccountScopedAdmin, request: HttpRequest,
              event: Event) -> TemplateResponse:
    can_operate = model_admin.has_operate_permission(request, event)
    return TemplateResponse(request, "admin/guests/event/door.html", {
        **model_admin.admin_site.each_context(request), "opts": Event._meta, "event": event,
        "original": event, "title": f"{event}: door", "can_operate": can_operate,
        "subtitle": "Scan tickets or find guests by name, email or order reference."
        if can_operate else "Find guests by name, email or order reference: who came in "
        "and when. Letting guests in needs the staff or owner role.",
        "tab_list": admin_views.event_tabs(event, "door"), "counts": counts(event),
        "every": COUNTS_EVERY_SECONDS * 1000, "urls": {
            name: reverse(f"admin:guests_event_door_{name}", args=[event.pk])
            for name in ("search", "check_in", "counts")}})


def door_search(model_admin: AccountScopedAdmin, request: HttpRequest,
                event: Event) -> JsonResponse:
    """The event's live guests matching ``q`` (name, email, order reference)."""
    query = request.GET.get("q", "").strip()[:100]
    found = guests_find(_live_guests(event), query) if query else []
    return JsonResponse({"query": query, "guests": [_row(guest, event) for guest in found]})


def _row(guest: Attendee, event: Event) -> dict[str, Any]:
    return {"id": str(guest.id), "name": _name(guest), "email": guest.email,
            "reference": guest.correlation_id or "",
            "in": _in_words(guest, event) if guest.checked_in_at else ""}


def _name(guest: Attendee) -> str:
    return f"{guest.first_name} {guest.last_name}".strip() or guest.email


def _in_words(guest: Attendee, event: Event) -> str:
    guest.event = event  # the words' time zone, without a query per guest
    return checked_in_words(guest)


def door_check_in(model_admin: AccountScopedAdmin, request: HttpRequest,
                  event: Event) -> JsonResponse:
    """Let in the guest of ``token`` (scanned) or ``attendee`` (picked from the search)."""
    token, attendee = request.POST.get("token"), request.POST.get("attendee")
    if not token and not attendee:
        return _said("refused", "Nothing to check in", "Scan a ticket or pick a guest.")
    try:
        attendee_id = uuid.UUID(attendee) if attendee and not token else None
    except ValueError:
        return _said("refused", "No such guest", "")
    try:
        done = attendee_check_in(
            account=event.account, mode=LIVE, token=token or None, attendee_id=attendee_id,
            event_id=event.pk, by=f"{request.user.get_username()} at the Door page")
    except HeraldError as refusal:
        return _refused(refusal, event)
    guest = done.attendee
    return _said("welcome", f"Welcome, {_name(guest)}", _in_words(guest, event),
                 guest=_row(guest, event), counts=counts(event))


def _refused(refusal: HeraldError, event: Event) -> JsonResponse:
    """What the door's screen says for each refusal, in the staff's words."""
    if isinstance(refusal, AlreadyCheckedIn):
        return _said("already", refusal.message.rstrip("."), _name(refusal.attendee),
                     guest=_row(refusal.attendee, event))
    if isinstance(refusal, WrongEvent):
        return _said("refused", "Not a ticket for this event",
                     f"{_name(refusal.attendee)}'s ticket is for "
                     f"“{refusal.attendee.event.name}”.")
    if isinstance(refusal, InvalidTicket):
        return _said("refused", "Not a ticket", "This code was not made by Herald, or it is "
                     "damaged: try again, or find the guest by name.")
    if isinstance(refusal, CheckInClosed):
        return _said("refused", "Check-in is closed", refusal.message)
    if isinstance(refusal, NotFound):
        return _said("refused", "Not a ticket for this event", "No guest of this event has "
                     "it: the guest was deleted (the ticket is cancelled), or it is a "
                     "rehearsal (test key) ticket.")
    return _said("refused", "Not checked in", refusal.message)


def _said(result: str, title: str, detail: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"result": result, "title": title, "detail": detail, **extra})


def door_counts(model_admin: AccountScopedAdmin, request: HttpRequest,
                event: Event) -> JsonResponse:
    return JsonResponse(counts(event))


def counts(event: Event) -> dict[str, int]:
    """Checked in / expected: the event's live guests, in one query."""
    figures = _live_guests(event).aggregate(
        expected=Count("id"), checked_in=Count("id", filter=Q(checked_in_at__isnull=False)))
    return {"checkedIn": figures["checked_in"], "expected": figures["expected"]}


# --- arrivals over time (the event's Dashboard tab) ----------------------------------------

# Bar widths to choose from: the smallest that draws the whole span in at most MAX_BARS.
STEPS = (5, 10, 15, 30, 60, 120, 240, 24 * 60)
MAX_BARS = 36
WIDTH, HEIGHT = 420, 120


def arrivals(event: Event) -> dict[str, Any] | None:
    """Check-ins per interval, in the event's time zone, as an SVG's bars; None before the
    first guest is in. Times are read, not counted by the database: one value per guest
    in, bounded by the event's size."""
    times = sorted(_live_guests(event).filter(checked_in_at__isnull=False)
                   .values_list("checked_in_at", flat=True))
    if not times:
        return None
    zone = ZoneInfo(event.time_zone)
    span = (times[-1] - times[0]).total_seconds() / 60
    step = next((s for s in STEPS if span / s < MAX_BARS), STEPS[-1])
    start = _floor(times[0].astimezone(zone), step)
    buckets: dict[int, int] = {}
    for at in times:
        index = int((at.astimezone(zone) - start).total_seconds() // (step * 60))
        buckets[index] = buckets.get(index, 0) + 1
    return _bars(start, step, [buckets.get(i, 0) for i in range(max(buckets) + 1)])


def _floor(moment: datetime, minutes: int) -> datetime:
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    into = (moment - midnight).total_seconds() // 60
    return midnight + timedelta(minutes=into - into % minutes)


def _bars(start: datetime, step: int, values: list[int]) -> dict[str, Any]:
    top = max(values)
    slot = WIDTH / max(len(values), 1)
    every = max(1, len(values) // 6)  # about six time labels
    bars, labels = [], []
    for i, value in enumerate(values):
        at = start + timedelta(minutes=step * i)
        height = round(HEIGHT * value / top, 1)
        until = (at + timedelta(minutes=step)).strftime("%H:%M")
        bars.append({"x": round(i * slot + 1, 1), "w": round(max(slot - 2, 1), 1),
                     "y": round(HEIGHT - height, 1), "h": height,
                     "title": f"{at:%H:%M} to {until}: {value} in"})
        if i % every == 0:
            labels.append({"x": round(i * slot + slot / 2, 1), "text": f"{at:%H:%M}"})
    busiest = bars[values.index(top)]["title"].replace(" in", "")
    return {"bars": bars, "labels": labels, "width": WIDTH, "height": HEIGHT, "step": step,
            "total": sum(values), "busiest": f"{busiest} guest{'s' if top != 1 else ''}"}
