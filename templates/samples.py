"""Sample data of the admin preview and of "send a test to me"."""

# What the preview renders with: the tokens a ticket send fills in.
SAMPLE = {
    "firstName": "Jane", "lastName": "Smith", "email": "jane@example.com",
    "attendeeId": "00000000-0000-4000-8000-000000000000", "correlationId": "order-2026-0042",
    "attendeeInvitationId": "00000000-0000-4000-8000-000000000001",
    "event": {"id": "00000000-0000-4000-8000-000000000002", "name": "Sample Event",
              "venue": "Main Hall", "startsAt": None, "endsAt": None},
}
