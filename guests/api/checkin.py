"""``POST /checkin/v1/api/checkin``: let a guest in at the door (``guests.checkin``).

A door's scanner posts the token its camera read from the ticket's QR code; a door app that
looks guests up by name posts the attendee's id instead, which needs an admin key (a token
proves the ticket is in hand, an id does not). Each guest is let in once: the second scan is
a 409 saying when and by whom. A replayed Idempotency-Key answers with the first 200 (a door
that lost the answer to a network blip sees "welcome" again, not a 409 about itself).
"""

from typing import Any

from django.db import transaction
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.response import Response

from api.families import CHECKIN
from api.fields import Guid, Str, StrictSerializer
from api.views import HeraldAPIView
from common.times import iso
from guests.checkin import CheckIn, attendee_check_in

LABEL = 100  # longest door or scanner label


class CheckInIn(StrictSerializer):
    token = Str(max_length=200, required=False, trim_whitespace=False, help_text=(
        "What the ticket's QR code holds, as scanned. Give this or attendeeId."))
    attendeeId = Guid(required=False, source="attendee_id", help_text=(
        "The guest's id, for a guest let in from a list: needs an admin key."))
    eventId = Guid(required=False, source="event_id", help_text=(
        "The event this door lets in: a ticket for another event is refused (422 "
        "wrong_event). Without it any event of the account's is let in."))
    door = Str(max_length=LABEL, required=False, allow_blank=True, default="", help_text=(
        "A label for the door (\"door 2\"), kept as checkedInBy and said in a later 409."))
    scannedBy = Str(max_length=LABEL, required=False, allow_blank=True, default="",
                    source="scanned_by", help_text="Who scanned (\"Sam\"), kept beside door.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Exactly one names the guest: the 400 names the field(s) at fault — both when
        neither or both were given, as either one would do."""
        if ("token" in attrs) == ("attendee_id" in attrs):
            said = ("Give token or attendeeId, not both." if "token" in attrs
                    else "Give token or attendeeId (one of them).")
            raise serializers.ValidationError({"token": said, "attendeeId": said})
        return attrs


class CheckInOut(serializers.Serializer):
    attendeeId = serializers.UUIDField()
    firstName = serializers.CharField()
    lastName = serializers.CharField()
    correlationId = serializers.CharField(allow_null=True)
    eventId = serializers.UUIDField()
    eventName = serializers.CharField()
    checkedInAt = serializers.DateTimeField()
    checkedInBy = serializers.CharField(help_text="The door and scanner given, else the key.")


class AlreadyCheckedInOut(serializers.Serializer):
    error = serializers.CharField(help_text="already_checked_in")
    message = serializers.CharField()
    attendeeId = serializers.UUIDField()
    checkedInAt = serializers.DateTimeField()
    checkedInBy = serializers.CharField()


class CheckInRefusedOut(serializers.Serializer):
    """A 422: the ticket is real and its guest exists, but this door does not let it in."""

    error = serializers.CharField(help_text="wrong_event or checkin_closed")
    message = serializers.CharField()
    eventId = serializers.UUIDField(help_text=(
        "wrong_event: the event the ticket is for; checkin_closed: the event that closed."))
    attendeeId = serializers.UUIDField(required=False, help_text=(
        "wrong_event only: the guest the ticket names."))
    closedAt = serializers.DateTimeField(required=False, help_text=(
        "checkin_closed only: when check-in closed (24 h after the event's end)."))


EXAMPLE_TOKEN = "0b5f7c1e8d2a4e439a573f1c2d4e5f60.x8Qm2b1YvKp0m9TuqG3fX0c2r5o"
RESPONSES = {
    200: CheckInOut,
    400: OpenApiResponse(description="invalid_token: the token is not one Herald signed "
                         "(damaged, cut, forged); validation_error: neither or both of token "
                         "and attendeeId, or a field of the wrong type."),
    403: OpenApiResponse(description="forbidden: attendeeId without an admin key."),
    404: OpenApiResponse(description="ticket_not_found / attendee_not_found: no guest of this "
                         "account and key mode has it (another account's, a test guest with a "
                         "live key, or a guest deleted since: a cancelled ticket)."),
    409: OpenApiResponse(AlreadyCheckedInOut, description="already_checked_in: the guest was "
                         "let in before; the message says when and by whom."),
    422: OpenApiResponse(CheckInRefusedOut, description="wrong_event: the ticket is for "
                         "another event than eventId; checkin_closed: more than 24 h after the "
                         "event's end (its start when it has no end)."),
}


class CheckInView(HeraldAPIView):
    family = CHECKIN

    @extend_schema(
        request=CheckInIn, responses=RESPONSES, tags=["check-in"],
        summary="Check a guest in at the door (a scanned ticket, once)",
        description=CHECKIN.description + (
            "\n\nLets the guest named by the ticket's `token` (what its QR code holds) in, "
            "once: a second scan is a 409 saying when and by whom. The guest must be the "
            "key's account's and of the key's mode (a test key rehearses on test guests); "
            "any other ticket is a 404, the same as a ticket of nobody's. `attendeeId` "
            "instead of a token needs an admin key. Check-in closes 24 h after the event's "
            "end (its start when it has no end). A replayed Idempotency-Key answers the "
            "first 200."),
        examples=[
            OpenApiExample("A scanned ticket", request_only=True, value={
                "token": EXAMPLE_TOKEN, "eventId": "6a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
                "door": "door 2"}),
            OpenApiExample("Welcome", response_only=True, status_codes=["200"], value={
                "attendeeId": "0b5f7c1e-8d2a-4e43-9a57-3f1c2d4e5f60", "firstName": "Ann",
                "lastName": "Lee", "correlationId": "order-2026-0042",
                "eventId": "6a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "eventName": "Spring Gala",
                "checkedInAt": "2027-04-17T17:02:11Z", "checkedInBy": "door 2"}),
            OpenApiExample("Second scan", response_only=True, status_codes=["409"], value={
                "error": "already_checked_in",
                "message": "Already checked in at 19:02 (door 2).",
                "attendeeId": "0b5f7c1e-8d2a-4e43-9a57-3f1c2d4e5f60",
                "checkedInAt": "2027-04-17T17:02:11Z", "checkedInBy": "door 2"}),
            OpenApiExample("Another event's ticket", response_only=True, status_codes=["422"],
                           value={"error": "wrong_event", "message": "Not a ticket for this "
                                  "event: it is for “Spring Gala”.",
                                  "attendeeId": "0b5f7c1e-8d2a-4e43-9a57-3f1c2d4e5f60",
                                  "eventId": "6a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d"})])
    def post(self, request):
        data = CheckInIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        if "attendee_id" in v and not request.auth.is_admin:
            raise exceptions.PermissionDenied("Checking a guest in by attendeeId needs an admin "
                                              "key; a scanned ticket's token needs none.")
        by = ", ".join(part for part in (v["door"].strip(), v["scanned_by"].strip()) if part)
        # The check-in and its idempotency key's stored answer commit together: a retry
        # after a crash finds either neither (and lets the guest in) or both (the replay).
        with transaction.atomic():
            done = attendee_check_in(
                account=self.get_account(), mode=request.auth.mode,
                by=by or f"key {request.auth.prefix}…", token=v.get("token"),
                attendee_id=v.get("attendee_id"), event_id=v.get("event_id"))
            return self.finalize_response(request, Response(_body(done)))


def _body(done: CheckIn) -> dict[str, Any]:
    attendee = done.attendee
    return {"attendeeId": str(attendee.id), "firstName": attendee.first_name,
            "lastName": attendee.last_name, "correlationId": attendee.correlation_id,
            "eventId": str(attendee.event_id), "eventName": attendee.event.name,
            "checkedInAt": iso(done.checked_in_at), "checkedInBy": done.checked_in_by}
