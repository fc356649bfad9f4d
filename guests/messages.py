"""What check-in hands the engine with a guest's message (``comms.messages.Message``): what
it belongs to (the guest), the render context of spec 000's templates (the guest's names, id
and event, and the check-in token a ticket's QR code holds), the name the email goes to, and
the ids its webhooks carry (``attendeeId``, ``eventId``)."""

from datetime import datetime
from typing import Any

from comms.messages import Message
from guests.models import Attendee, Event
from guests.tokens import checkin_token


def event_context(*, event: Event) -> dict[str, Any]:
    """The ``event`` token of a guest's templates. Times as their text, with the event's
    ``timeZone``: the render shows them in it (``templates.rendering``: "Saturday 17 April
    2027, 19:00"). ``updatedAt``, the event's last change when known, orders a ticket's
    calendar invites (``comms.tickets``: a later one replaces an earlier one)."""
    context = {"id": str(event.id), "name": event.name, "venue": event.venue,
               "startsAt": _time(event.starts_at), "endsAt": _time(event.ends_at),
               "timeZone": event.time_zone}
    if event.updated_at is not None:
        context["updatedAt"] = _time(event.updated_at)
    return context


def guest_message(*, attendee: Attendee, event: dict[str, Any], template_id: Any, mode: str,
                  correlation_id: str | None, owner: Any = None) -> Message:
    """The message of a template to ``attendee`` (its current email); ``event``:
    ``event_context``; ``owner``: the guest by default, or its (content type id, id)."""
    return Message(
        account_id=attendee.account_id, mode=mode, recipient=attendee.email,
        template_id=template_id, correlation_id=correlation_id, owner=owner or attendee,
        context=guest_context(attendee_id=attendee.id, first_name=attendee.first_name,
                              last_name=attendee.last_name, event=event,
                              ticket_key=attendee.ticket_key),
        to_name=f"{attendee.first_name} {attendee.last_name}".strip(),
        refs=guest_refs(attendee_id=attendee.id, event=event))


def guest_context(*, attendee_id: Any, first_name: str, last_name: str,
                  event: dict[str, Any], ticket_key: str) -> dict[str, Any]:
    """``checkinToken``: the guest's signed check-in token, the content of a ticket's QR
    code (the engine draws it, ``comms.tickets``; templates may print it too)."""
    return {"firstName": first_name, "lastName": last_name, "attendeeId": str(attendee_id),
            "event": event, "checkinToken": checkin_token(attendee_id, ticket_key)}


def guest_refs(*, attendee_id: Any, event: dict[str, Any]) -> dict[str, Any]:
    return {"attendeeId": str(attendee_id), "eventId": event["id"]}


def _time(value: datetime | None) -> str | None:
    return str(value) if value is not None else None
