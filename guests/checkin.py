"""Door check-in: a scanned ticket (or a guest picked from the list) lets the guest in once.

Used by ``POST /checkin/v1/api/checkin`` (``guests.api.checkin``) and the admin's Door page
(``guests.admin_door``): one rule for both.

- The ticket's token (``guests.tokens``) or the guest's id names the guest; the guest must be
  the caller's account's *and* of the caller's key mode (a test key rehearses on test
  guests, a live key lets real guests in). Anything else is "no such ticket": a key never
  learns whether another account's guest exists. A token Herald did not sign is a 400
  (damaged or forged); a guest deleted since the ticket was sent is a 404 — deleting a guest
  is how a ticket is cancelled (the guest's scheduled sends go with it).
- The door may name its event: a ticket for another event of the account is refused.
- Check-in closes ``CLOSES_AFTER`` after the event's end (its start when it has no end):
  yesterday's ticket does not open today's door. An event without dates never closes.
- One conditional UPDATE (``WHERE checked_in_at IS NULL``) sets ``checked_in_at`` and
  ``checked_in_by``: of two doors scanning the same ticket at once, PostgreSQL's row lock makes
  the second UPDATE see the first's commit and change nothing, so exactly one lets the guest
  in and the other answers 409 saying when and by whom.
- The ``guest.checked_in`` webhook is written in the same transaction as the check-in.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone
from django.utils.formats import date_format

from accounts.models import Account
from common.errors import HeraldError, NotFound
from common.times import iso
from guests.models import Attendee, Event
from guests.tokens import checkin_token_read
from webhooks.services import webhooks_emit_account_event

# How long after its end (or start) an event still lets guests in.
CLOSES_AFTER = timedelta(hours=24)
BY_MAX = 200  # Attendee.checked_in_by's length


@dataclass(frozen=True)
class CheckIn:
    """A guest let in: the guest (with its event) and when and by whom."""

    attendee: Attendee
    checked_in_at: datetime
    checked_in_by: str


class InvalidTicket(HeraldError):
    def __init__(self) -> None:
        super().__init__("invalid_token", "This is not a Herald ticket: the code is damaged, "
                         "cut or was not issued by Herald.", status=400)


class AlreadyCheckedIn(HeraldError):
    """409, saying when and by whom; ``attendee`` for the pages that show who it is."""

    def __init__(self, attendee: Attendee, at: datetime, by: str) -> None:
        said = f"Already checked in {moment_words(at, attendee.event)}"
        super().__init__("already_checked_in", f"{said} ({by})." if by else f"{said}.",
                         status=409, attendeeId=str(attendee.id), checkedInAt=iso(at),
                         checkedInBy=by)
        self.attendee = attendee


class WrongEvent(HeraldError):
    def __init__(self, attendee: Attendee) -> None:
        super().__init__("wrong_event", f"Not a ticket for this event: it is for "
                         f"“{attendee.event.name}”.", status=422,
                         attendeeId=str(attendee.id), eventId=str(attendee.event_id))
        self.attendee = attendee


class CheckInClosed(HeraldError):
    def __init__(self, event: Event, closed_at: datetime) -> None:
        super().__init__("checkin_closed", f"Check-in for “{event.name}” closed "
                         f"{moment_words(closed_at, event)}, a day after the event.",
                         status=422, eventId=str(event.id), closedAt=iso(closed_at))


def attendee_check_in(*, account: Account, mode: str, by: str, token: str | None = None,
                      attendee_id: uuid.UUID | None = None,
                      event_id: uuid.UUID | None = None) -> CheckIn:
    """Check the guest named by ``token`` (or ``attendee_id``) in, once; ``by`` says who
    (a door, a key, an admin user). Raises ``InvalidTicket`` (400), ``NotFound`` (404),
    ``WrongEvent`` / ``CheckInClosed`` (422) or ``AlreadyCheckedIn`` (409)."""
    guest_id, what, key = _named(token, attendee_id)
    attendee = (Attendee.objects.select_related("event")
                .filter(pk=guest_id, account=account, mode=mode).first())
    if attendee is None or (key is not None and key != attendee.ticket_key):
        raise NotFound(what)  # a deleted guest's ticket, even if its id was used again
    if event_id is not None and attendee.event_id != event_id:
        raise WrongEvent(attendee)
    now = timezone.now()
    closes = check_in_closes(attendee.event)
    if closes is not None and now > closes:
        raise CheckInClosed(attendee.event, closes)
    by = by.strip()[:BY_MAX]
    with transaction.atomic():
        let_in = Attendee.objects.filter(pk=attendee.pk, checked_in_at__isnull=True).update(
            checked_in_at=now, checked_in_by=by)
        if not let_in:
            raise _refusal(attendee, what)
        attendee.checked_in_at, attendee.checked_in_by = now, by
        webhooks_emit_account_event(account_id=account.pk, event_type="guest.checked_in",
                                    data=checked_in_payload(attendee), mode=mode)
    return CheckIn(attendee, now, by)


def _named(token: Any, attendee_id: uuid.UUID | None) -> tuple[uuid.UUID, str, str | None]:
    """The guest's id, what named it ("ticket" or "attendee", for the 404's words) and the
    ticket key a token carries (None: named by id)."""
    if token is not None:
        ticket = checkin_token_read(token)
        if ticket is None:
            raise InvalidTicket()
        return ticket.attendee_id, "ticket", ticket.key
    if attendee_id is None:
        raise HeraldError("validation_error", "Give the ticket's token or the attendee's id.")
    return attendee_id, "attendee", None


def _refusal(attendee: Attendee, what: str) -> HeraldError:
    """Why the conditional UPDATE changed nothing: let in already (by another door, maybe a
    moment ago), or deleted since it was read."""
    current = (Attendee.objects.filter(pk=attendee.pk)
               .values_list("checked_in_at", "checked_in_by").first())
    if current is None or current[0] is None:
        return NotFound(what)
    return AlreadyCheckedIn(attendee, *current)


def check_in_closes(event: Event) -> datetime | None:
    """When the door of ``event`` stops letting guests in; None for an event without dates,
    or one ending a day before the calendar does (stored before ``guests.event_times``
    bounded event times): it never closes."""
    end = event.ends_at or event.starts_at
    try:
        return end + CLOSES_AFTER if end is not None else None
    except OverflowError:
        return None


def checked_in_payload(attendee: Attendee) -> dict[str, Any]:
    """The ``guest.checked_in`` webhook's data (spec 000's camelCase)."""
    return {"attendeeId": str(attendee.id), "eventId": str(attendee.event_id),
            "checkedInAt": iso(attendee.checked_in_at), "checkedInBy": attendee.checked_in_by,
            "correlationId": attendee.correlation_id, "mode": attendee.mode}


def checked_in_words(attendee: Attendee) -> str:
    """"Checked in at 19:02 (door 2)", or "Not checked in yet": the guest's page and the
    Door page's search."""
    if attendee.checked_in_at is None:
        return "Not checked in yet"
    by = f" ({attendee.checked_in_by})" if attendee.checked_in_by else ""
    return f"Checked in {moment_words(attendee.checked_in_at, attendee.event)}{by}"


def moment_words(at: datetime, event: Event) -> str:
    """"at 19:02" today, else "on 6 Dec at 19:02", in the event's time zone: what the
    person at the door reads on the wall clock."""
    zone = ZoneInfo(event.time_zone)
    local, today = at.astimezone(zone), timezone.now().astimezone(zone).date()
    clock = local.strftime("%H:%M")
    if local.date() == today:
        return f"at {clock}"
    return f"on {date_format(local, 'j M')} at {clock}"
