"""A ticket's attachments: the guest's check-in QR code and the event's calendar invite,
made at send time from what the guest's front end stored in the delivery's context (the
engine reads no guest or event row: ``checkinToken``, ``event``).

- The QR code (``MessageTemplate.attach_qr``): a PNG of the signed check-in token the door
  scans (``guests.tokens``), attached as ``ticket.png``, and inline as ``cid:ticket-qr``
  when the template shows it (``<img src="{{ticket_qr_src}}">``): an inline part no HTML
  refers to would show as a second copy of the file in most mail readers.
- The invite (``attach_ics``): an iCalendar REQUEST of the event, its start and end in the
  event's time zone (TZID and its VTIMEZONE), the venue, the organiser (the account's
  sender), the guest as attendee, a UID per event and guest and a SEQUENCE that grows with
  the event's last change, so a later ticket replaces the invite in the guest's calendar
  instead of adding a second one. An event without a start has no invite.

Each is made again on every attempt from the same frozen context, so a retry (and the
admin's Outbox page) carries what the first attempt did.
"""

import io
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
import segno
from django.conf import settings

from accounts.models import Account
from comms.models import Delivery
from comms.providers.base import Attachment
from domains.selectors import sender_for

log = logging.getLogger(__name__)

QR_CONTENT_ID = "ticket-qr"
QR_SRC = f"cid:{QR_CONTENT_ID}"
QR_INLINE_NAME, QR_FILE_NAME, INVITE_NAME = "ticket-qr.png", "ticket.png", "invite.ics"
INVITE_TYPE = "text/calendar; method=REQUEST"  # UTF-8 is text/calendar's default charset
# What a template writes to show the QR code: either marks it as shown inline.
_QR_MARKS = ("ticket_qr_src", QR_SRC)
# SEQUENCE counts seconds from here to the event's last change: it only grows, and fits the
# 32-bit integer calendar clients store it in until 2088.
_SEQUENCE_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def render_tokens(delivery: Delivery) -> dict[str, Any]:
    """``ticket_qr_src``: the QR code's ``cid:`` source when the email carries it, else
    empty (an ``<img>`` with no source rather than one pointing at a missing part)."""
    return {"ticket_qr_src": QR_SRC if _qr_token(delivery) else ""}


def email_attachments(delivery: Delivery) -> tuple[Attachment, ...]:
    """The QR code (inline when the template shows it, and as a file) and the .ics invite,
    as the delivery's template asks and its context allows. Never raises: what cannot be
    made is left out and logged, so one bad context cannot stop the rest of a batch."""
    template = _template(delivery)
    if template is None or not (template.attach_qr or template.attach_ics):
        return ()
    attachments: list[Attachment] = []
    try:
        if (token := _qr_token(delivery)) is not None:
            attachments += qr_attachments(token, inline=_shows_qr(template))
        if template.attach_ics and (invite := invite_ics(delivery)) is not None:
            attachments.append(Attachment(INVITE_NAME, INVITE_TYPE, invite))
    except Exception:
        log.exception("Ticket attachments of delivery %s not made", delivery.id)
    return tuple(attachments)


def missing(delivery: Delivery) -> list[str]:
    """What the template asks for that this delivery's email goes without, and why (the
    admin says so beside the message)."""
    template = _template(delivery)
    said = []
    if template is not None and template.attach_qr and _qr_token(delivery) is None:
        said.append("No QR code: this message was not sent to a guest with a check-in code.")
    if template is not None and template.attach_ics and invite_ics(delivery) is None:
        said.append("No calendar invite: the event has no start time.")
    return said


# --- the QR code ------------------------------------------------------------------------------

def qr_png(token: str) -> bytes:
    """The token as a QR code PNG: error correction M (a scuffed phone screen still scans),
    8 pixels a module and the standard 4-module quiet zone."""
    out = io.BytesIO()
    segno.make_qr(token, error="m").save(out, kind="png", scale=8, border=4)
    return out.getvalue()


def qr_attachments(token: str, *, inline: bool) -> list[Attachment]:
    png = qr_png(token)
    files = [Attachment(QR_FILE_NAME, "image/png", png)]
    if inline:
        files.insert(0, Attachment(QR_INLINE_NAME, "image/png", png,
                                   content_id=QR_CONTENT_ID, disposition="inline"))
    return files


def _qr_token(delivery: Delivery) -> str | None:
    template = _template(delivery)
    token = (delivery.context or {}).get("checkinToken")
    if template is None or not template.attach_qr or not isinstance(token, str) or not token:
        return None
    return token


def _shows_qr(template: Any) -> bool:
    return any(mark in (template.html_body or "") for mark in _QR_MARKS)


# --- the calendar invite ----------------------------------------------------------------------

def invite_ics(delivery: Delivery, *, now: datetime | None = None) -> bytes | None:
    """The event as an iCalendar REQUEST for this guest, or None when it has no start."""
    context = delivery.context or {}
    event = context.get("event") or {}
    zone = _zone(event.get("timeZone"))
    starts_at = _when(event.get("startsAt"), zone)
    if starts_at is None:
        return None
    ends_at = _when(event.get("endsAt"), zone)
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//Herald//Tickets//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "REQUEST")
    vevent = icalendar.Event()
    vevent.add("uid", invite_uid(event.get("id"), context.get("attendeeId") or delivery.id))
    vevent.add("sequence", invite_sequence(event.get("updatedAt")))
    vevent.add("dtstamp", now or datetime.now(UTC))
    vevent.add("dtstart", starts_at)
    if ends_at is not None and ends_at >= starts_at:
        vevent.add("dtend", ends_at)
    vevent.add("summary", str(event.get("name") or "Your event"))
    if event.get("venue"):
        vevent.add("location", str(event["venue"]))
    vevent.add("status", "CONFIRMED")
    vevent.add("transp", "OPAQUE")
    vevent.add("organizer", _organiser(delivery))
    vevent.add("attendee", _attendee(delivery))
    calendar.add_component(vevent)
    calendar.add_missing_timezones(first_date=(starts_at - timedelta(days=366)).date(),
                                   last_date=((ends_at or starts_at) + timedelta(days=366))
                                   .date())
    return calendar.to_ical()


def invite_uid(event_id: Any, attendee_id: Any) -> str:
    """The same for every invite of this event to this guest, so calendars update it."""
    return f"{event_id}-{attendee_id}@herald"


def invite_sequence(updated_at: Any) -> int:
    """Seconds from 2020 to the event's last change (0 when not known): a ticket sent after
    the event moved has a higher SEQUENCE than the invite the guest already has."""
    changed = _when(updated_at, UTC)
    if changed is None:
        return 0
    return max(0, int((changed - _SEQUENCE_EPOCH).total_seconds()))


def _when(value: Any, zone: ZoneInfo | Any) -> datetime | None:
    """A context's time (``str(datetime)`` or ISO 8601) in ``zone``; None if absent or
    unreadable (a naive time is read as UTC, as Django stores it)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        log.warning("Unreadable event time %r in a delivery context", value)
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(zone)


def _zone(name: Any) -> ZoneInfo:
    try:
        return ZoneInfo(str(name)) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _organiser(delivery: Delivery) -> icalendar.vCalAddress:
    """Who the invite is from: the account's sender (its default brand at its verified
    domain, else the platform's address under the account's name), as its email's From is:
    replies to the invite reach it."""
    email, name = organiser_for(delivery.account_id)
    address = icalendar.vCalAddress(f"mailto:{email}")
    if name:
        address.params["cn"] = icalendar.vText(name)
    return address


def _attendee(delivery: Delivery) -> icalendar.vCalAddress:
    address = icalendar.vCalAddress(f"mailto:{delivery.recipient}")
    name = str((delivery.context or {}).get("_to_name") or "")
    if name:
        address.params["cn"] = icalendar.vText(name)
    address.params["role"] = icalendar.vText("REQ-PARTICIPANT")
    address.params["partstat"] = icalendar.vText("NEEDS-ACTION")
    address.params["rsvp"] = icalendar.vText("FALSE")  # Herald reads no replies
    return address


# An account's organiser for a short while (a bulk send's invites need it once, not per
# guest): (expires, (email, name)).
_ORGANISERS: dict[Any, tuple[float, tuple[str, str]]] = {}
ORGANISER_SECONDS = 60.0


def organiser_for(account_id: Any) -> tuple[str, str]:
    """``(email, name)`` of the account as organiser: its sending brand, else the platform's
    address with the account's name."""
    cached = _ORGANISERS.get(account_id)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    brand = sender_for(account_id=account_id)
    if brand is not None:
        found = (brand[0], brand[1] or _account_name(account_id))
    else:
        found = (settings.HERALD_DEFAULT_FROM_EMAIL, _account_name(account_id))
    if len(_ORGANISERS) > 10_000:
        _ORGANISERS.clear()
    _ORGANISERS[account_id] = (time.monotonic() + ORGANISER_SECONDS, found)
    return found


def _account_name(account_id: Any) -> str:
    return Account.objects.filter(id=account_id).values_list("name", flat=True).first() or ""


def _template(delivery: Delivery) -> Any:
    """The delivery's template (prefetched by the dispatcher), for email only."""
    if delivery.channel != "email" or delivery.template_id is None:
        return None
    return delivery.template
