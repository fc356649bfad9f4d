from django.db import transaction
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.response import Response

from api.families import CHECKIN
from api.pagination import page_of, paginate
from api.views import HeraldAPIView, get_owned
from common.times import iso
from comms.models import Delivery
from comms.scheduling import delivery_cancel
from comms.services import owner_type_id
from guests import sending, services
from guests.api.serializers import (
    EventIn,
    EventOut,
    GuestIn,
    GuestOut,
    InvitationOut,
    SendIn,
    SendOut,
    SendRejected,
    scheduled_for,
)
from guests.models import Attendee, Event
from guests.reminders import NOT_REMINDER


class CheckinView(HeraldAPIView):
    family = CHECKIN


GuestResponse = inline_serializer("GuestResponse", fields={
    **{name: field for name, field in GuestOut().get_fields().items()},
    "attendeeInvitationId": serializers.UUIDField(allow_null=True),
    "sendAt": serializers.DateTimeField(allow_null=True, help_text=(
        "When the ticket (attendeeInvitationId) will be sent, while it is scheduled; null "
        "when it is sent now, or already sent or cancelled.")),
})


class EventListCreate(CheckinView):
    # Events are configuration both modes share: a test key lists them, never creates one.
    configuration = True

    @extend_schema(request=EventIn, responses={201: EventOut}, tags=["check-in"])
    def post(self, request):
        data = EventIn(data=request.data)
        data.is_valid(raise_exception=True)
        event = services.event_create(account=self.get_account(), **data.validated_data)
        return Response(EventOut(event).data, status=201)

    @extend_schema(responses=page_of(EventOut, "EventPage"), tags=["check-in"])
    def get(self, request):
        events = Event.objects.filter(account=self.get_account()).order_by("-created_at", "id")
        return Response(paginate(request, events, EventOut))


class EventDetail(CheckinView):
    @extend_schema(responses=EventOut, tags=["check-in"])
    def get(self, request, event_id):
        event = get_owned(Event.objects.filter(account=self.get_account()), event_id, "event")
        return Response(EventOut(event).data)


# The errors of a send's synchronous checks (spec 000), in the family's body ({error, message}).
NOT_VERIFIED = ("account_not_verified: the account may not send yet (an administrator "
                "verifies it)")
GUEST_NOT_FOUND = OpenApiResponse(description="event_not_found, template_not_found: no event "
                                  "(eventId) or template (commsTemplateId) of the account's.")


class GuestCreate(CheckinView):
    @extend_schema(request=GuestIn, tags=["check-in"],
                   responses={200: GuestResponse, 404: GUEST_NOT_FOUND, 403: OpenApiResponse(
                       description=NOT_VERIFIED + ", and commsTemplateId is given")},
                   examples=[OpenApiExample("Create and send", request_only=True, value={
                       "id": "0b5f7c1e-8d2a-4e43-9a57-3f1c2d4e5f60", "firstName": "Jane",
                       "lastName": "Smith", "email": "jane@example.com",
                       "eventId": "6a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
                       "commsTemplateId": "7b2e3d4c-5f6a-4b7c-9d8e-0f1a2b3c4d5e",
                       "correlationId": "order-2026-0042"})],
                   summary="Create a guest (and, with commsTemplateId, queue its ticket email)")
    def post(self, request):
        data = GuestIn(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.attendee_create(
            account=self.get_account(), mode=request.auth.mode, **data.validated_data
        )
        if result.created or result.delivery_id is None:
            return Response(_guest_body(result.attendee, result.delivery_id, result.send_at))
        # A retry of a create: its send as it is now (still scheduled, or not).
        status, due = Delivery.objects.filter(id=result.delivery_id).values_list(
            "status", "next_attempt_at").get()
        return Response(_guest_body(result.attendee, result.delivery_id,
                                    scheduled_for(status, due)))


class GuestDetail(CheckinView):
    @extend_schema(responses=GuestResponse, tags=["check-in"])
    def get(self, request, attendee_id):
        attendee = get_owned(
            Attendee.objects.filter(account=self.get_account()), attendee_id, "attendee"
        )
        first = attendee.deliveries.filter(NOT_REMINDER, mode=request.auth.mode).order_by(
            "created_at").values_list("id", "status", "next_attempt_at").first()
        if first is None:
            return Response(_guest_body(attendee, None))
        return Response(_guest_body(attendee, first[0], scheduled_for(first[1], first[2])))


def _guest_body(attendee: Attendee, delivery_id, send_at=None) -> dict:
    """GuestOut's shape, built by hand: this is the hottest response of the API."""
    return {
        "id": str(attendee.id), "firstName": attendee.first_name,
        "lastName": attendee.last_name, "email": attendee.email,
        "eventId": str(attendee.event_id), "correlationId": attendee.correlation_id,
        "createdAt": iso(attendee.created_at),
        "attendeeInvitationId": str(delivery_id) if delivery_id else None,
        "sendAt": iso(send_at),
    }


# --- spec 000's two-step send, at /comms/v1/api/comms/send ---------------------------------

class Send(CheckinView):
    @extend_schema(
        request=SendIn, tags=["comms"], examples=[
            OpenApiExample("Resend a ticket", request_only=True, value={
                "attendeeId": "0b5f7c1e-8d2a-4e43-9a57-3f1c2d4e5f60",
                "templateId": "7b2e3d4c-5f6a-4b7c-9d8e-0f1a2b3c4d5e",
                "correlationId": "resend-2026-0042"}),
            OpenApiExample("Send the evening before", request_only=True, value={
                "attendeeId": "0b5f7c1e-8d2a-4e43-9a57-3f1c2d4e5f60",
                "templateId": "7b2e3d4c-5f6a-4b7c-9d8e-0f1a2b3c4d5e",
                "sendAt": "2027-04-16T18:00:00+02:00"}),
            OpenApiExample("Scheduled", response_only=True, status_codes=["200"], value={
                "attendeeInvitationId": "5c4b3a29-1807-4f6e-9d5c-4b3a29180716",
                "status": "scheduled", "sendAt": "2027-04-16T16:00:00Z"}),
            OpenApiExample("Previous send bounced", response_only=True, status_codes=["422"],
                           value={"error": "previous_send_permanently_failed",
                                  "message": "Previous send bounced — resending will not help.",
                                  "failureType": "bounced",
                                  "lastFailureAt": "2026-04-29T20:43:55Z",
                                  "lastFailureReason": "550 5.1.1 No such user"})],
        summary="Send a template to an existing attendee (spec 000's two-step send)",
        responses={
            200: SendOut, 403: OpenApiResponse(description=NOT_VERIFIED),
            404: OpenApiResponse(description="attendee_not_found, template_not_found: no "
                                 "attendee (attendeeId) or template (templateId) of the "
                                 "account's."),
            422: OpenApiResponse(SendRejected, description="The previous send of this pair "
                                 "failed permanently.")},
    )
    def post(self, request):
        data = SendIn(data=request.data)
        data.is_valid(raise_exception=True)
        # The send and its idempotency key's stored answer commit together: a crash between
        # the two cannot leave a send that a retry with the key would make again.
        with transaction.atomic():
            delivery = sending.delivery_send_to_attendee(
                account=self.get_account(), mode=request.auth.mode, **data.validated_data)
            return self.finalize_response(request, Response({
                "attendeeInvitationId": str(delivery.id), "status": delivery.status,
                "sendAt": iso(scheduled_for(delivery.status, delivery.next_attempt_at))}))


NOT_CANCELLABLE = ("not_cancellable: the send can no longer be cancelled, it is sending, sent "
                   "or already final (the message says which).")


class Invitation(CheckinView):
    @extend_schema(responses=InvitationOut, tags=["comms"],
                   summary="One send's status and timeline (beyond the spec, for support)")
    def get(self, request, invitation_id):
        deliveries = Delivery.objects.filter(account=self.get_account(),
                                             mode=request.auth.mode).prefetch_related("events")
        return Response(InvitationOut(get_owned(deliveries, invitation_id, "invitation")).data)

    @extend_schema(
        request=None, tags=["comms"],
        summary="Cancel a send not sent yet (scheduled or still queued)",
        description=CHECKIN.description + "\n\nThe send becomes `cancelled` and is never "
                    "sent; `comms.cancelled` is "
                    "emitted to webhooks. Answers the cancelled send as GET does.",
        responses={200: InvitationOut,
                   404: OpenApiResponse(description="invitation_not_found: no send with this "
                                        "id of the account's, in this key's mode."),
                   409: OpenApiResponse(description=NOT_CANCELLABLE)})
    def delete(self, request, invitation_id):
        # Check-in's own sends (the guests'), in this key's mode: a test key cannot cancel a
        # live send, nor this family another front end's.
        rows = Delivery.objects.filter(account=self.get_account(), mode=request.auth.mode,
                                       owner_type_id=owner_type_id(Attendee))
        found = get_owned(rows, invitation_id, "invitation")
        delivery_cancel(rows, found.id)
        cancelled = Delivery.objects.prefetch_related("events").get(id=found.id)
        return Response(InvitationOut(cancelled).data)
