"""Sample data of the admin preview and of "send a test to…", and the tokens a guest's
template can use (the token picker and the unknown-token warning read them)."""

from typing import Any

import segno

# The sample ticket's check-in token and its QR code, as the preview shows it (an email shows
# its guest's own code, attached inline as cid:ticket-qr by comms.tickets).
_SAMPLE_TOKEN = "00000000000040008000000000000000.sample-check-in-token"
# What the preview renders with when no guest is chosen: the tokens a ticket send fills in.
SAMPLE: dict[str, Any] = {
    "firstName": "Jane", "lastName": "Smith", "email": "jane@example.com",
    "attendeeId": "00000000-0000-4000-8000-000000000000", "correlationId": "order-2026-0042",
    "attendeeInvitationId": "00000000-0000-4000-8000-000000000001",
    "event": {"id": "00000000-0000-4000-8000-000000000002", "name": "Sample Event",
              "venue": "Main Hall", "startsAt": "2027-04-17 18:00:00+00:00",
              "endsAt": "2027-04-17 22:30:00+00:00", "timeZone": "Europe/London"},
    # The links of comms.unsubscribe (each email gets its recipient's own).
    "unsubscribe_url": "https://herald.example/u/sample-unsubscribe-link",
    "preferences_url": "https://herald.example/u/sample-unsubscribe-link#preferences",
    "checkinToken": _SAMPLE_TOKEN,
    "ticket_qr_src": segno.make(_SAMPLE_TOKEN, error="m").png_data_uri(scale=4),
}

# The tokens of a guest's template, in the picker's order, with what each one shows. The
# context is built by guests.messages (guest_context, event_context) and the engine
# (comms.pipeline.delivery_render: email, correlationId, attendeeInvitationId; the links of
# comms.unsubscribe).
GUEST_TOKENS: tuple[tuple[str, str], ...] = (
    ("firstName", "First name"),
    ("lastName", "Last name"),
    ("email", "Email address"),
    ("event.name", "Event name"),
    ("event.venue", "Venue"),
    ("event.startsAt", "Start (day and time)"),
    ("event.startsAt|date", "Start day"),
    ("event.startsAt|time", "Start time"),
    ("event.endsAt|time", "End time"),
    ("correlationId", "Order reference"),
    ("attendeeId", "Guest's id"),
    ("attendeeInvitationId", "This message's id"),
    ("unsubscribe_url", "Unsubscribe link (a topic's emails)"),
    ("preferences_url", "Email preferences link"),
    ("ticket_qr_src", "Ticket QR code image (<img src=…>, with the QR code attached)"),
    ("checkinToken", "Check-in code (what the QR code holds)"),
)
EVENT_KEYS = frozenset({"id", "name", "venue", "startsAt", "endsAt", "timeZone", "updatedAt"})
TOP_TOKENS = frozenset({"firstName", "lastName", "email", "attendeeId", "correlationId",
                        "attendeeInvitationId", "event", "unsubscribe_url", "preferences_url",
                        "checkinToken", "ticket_qr_src"})
