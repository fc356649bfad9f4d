"""What check-in hands the engine with a guest's message: what it belongs to (the guest),
the render context of spec 000's templates (the guest's names, id and event), the name the
email goes to, and the ids its webhooks carry (``attendeeId``, ``eventId``)."""

from datetime import datetime
from typing import Any

from guests.models import Attendee, Event


def event_context(*, event: Event) -> dict[str, Any]:
    """The ``event`` token of a guest's templates. Times as their text (what a template
    printing a time has always shown)."""
    return {"id": str(event.id), "name": event.name, "venue": event.venue,
            "startsAt": _time(event.starts_at), "endsAt": _time(event.ends_at)}


def guest_message(*, attendee: Attendee, event: dict[str, Any]) -> dict[str, Any]:
    """``owner``, ``context`` and ``refs`` of a message to ``attendee`` (keyword arguments
    of ``comms.services.delivery_new`` / ``delivery_queue``); ``event``: ``event_context``."""
    return {"owner": attendee,
            "context": guest_context(attendee_id=attendee.id, first_name=attendee.first_name,
                                     last_name=attendee.last_name, event=event),
            "refs": guest_refs(attendee_id=attendee.id, event=event)}


def guest_context(*, attendee_id: Any, first_name: str, last_name: str,
                  event: dict[str, Any]) -> dict[str, Any]:
    return {"firstName": first_name, "lastName": last_name, "attendeeId": str(attendee_id),
            "event": event, "_to_name": f"{first_name} {last_name}".strip()}


def guest_refs(*, attendee_id: Any, event: dict[str, Any]) -> dict[str, Any]:
    return {"attendeeId": str(attendee_id), "eventId": event["id"]}


def _time(value: datetime | None) -> str | None:
    return str(value) if value is not None else None
