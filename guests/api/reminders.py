"""An event's reminder rules over REST: ``/checkin/v1/api/event/{eventId}/reminders``.

Configuration both key modes share, as the event is: a test key lists them, changing them
needs a live key. Scheduling, moving and cancelling are ``guests.reminders``'.
"""

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from api.families import CHECKIN
from api.fields import Guid, StrictSerializer
from api.pagination import page_of, paginate
from api.views import HeraldAPIView, get_owned
from guests import reminders
from guests.models import Event, ReminderRule


class StrictInt(serializers.IntegerField):
    """A JSON integer: "60", 60.5 and true are refused, not coerced."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class ReminderIn(StrictSerializer):
    templateId = Guid(source="template_id", help_text="An email template of the account's.")
    offsetMinutes = StrictInt(
        source="offset_minutes", min_value=-reminders.MAX_OFFSET_MINUTES,
        max_value=reminders.MAX_OFFSET_MINUTES,
        help_text="Minutes from the event's start: -1440 is a day before, -120 two hours "
                  "before. A time inside the account's quiet hours (the event's local time) "
                  "moves to their end.")


class ReminderOut(serializers.ModelSerializer):
    eventId = serializers.UUIDField(source="event_id")
    templateId = serializers.UUIDField(source="template_id")
    offsetMinutes = serializers.IntegerField(source="offset_minutes")
    createdAt = serializers.DateTimeField(source="created_at")
    scheduling = serializers.SerializerMethodField(
        help_text="True while the guests' reminders are being scheduled in the background "
                  "(an event with more than HERALD_REMINDER_INLINE_GUESTS guests, 500 by "
                  "default); false once every guest has its reminder.")

    class Meta:
        model = ReminderRule
        fields = ["id", "eventId", "templateId", "offsetMinutes", "createdAt", "scheduling"]

    def get_scheduling(self, rule: ReminderRule) -> bool:
        return rule.fill_due is not None


class ReminderDeleted(ReminderOut):
    cancelled = serializers.IntegerField(
        help_text="The guests' unsent reminders of this rule cancelled with it (each "
                  "`comms.cancelled` to webhooks).")

    class Meta(ReminderOut.Meta):
        fields = [*ReminderOut.Meta.fields, "cancelled"]


EVENT_NOT_FOUND = OpenApiResponse(description="event_not_found: no event with this id of the "
                                  "account's.")


class RemindersView(HeraldAPIView):
    family = CHECKIN
    # Rules are the event's configuration: a test key reads them, never changes them (403).
    configuration = True

    def get_event(self, event_id: Any) -> Event:
        return get_owned(Event.objects.filter(account=self.get_account()), event_id, "event")


class ReminderList(RemindersView):
    @extend_schema(responses={200: page_of(ReminderOut, "ReminderPage"), 404: EVENT_NOT_FOUND},
                   tags=["check-in"], summary="The event's reminder rules, earliest first")
    def get(self, request, event_id):
        event = self.get_event(event_id)
        rules = event.reminders.order_by("offset_minutes", "created_at", "id")
        return Response(paginate(request, rules, ReminderOut))

    @extend_schema(
        request=ReminderIn, tags=["check-in"],
        summary="Add a reminder: a template sent to each guest at an offset from the start",
        description="Scheduled for the event's guests (in the background for an event with "
                    "more than HERALD_REMINDER_INLINE_GUESTS guests: `scheduling` is true "
                    "until every guest has its reminder), and for each guest added later; "
                    "moved when the event's start moves. A reminder whose time has passed "
                    "when its guest is added goes now if less than "
                    "HERALD_REMINDER_GRACE_MINUTES late, else not at all.",
        examples=[OpenApiExample("A day before", request_only=True, value={
            "templateId": "7b2e3d4c-5f6a-4b7c-9d8e-0f1a2b3c4d5e", "offsetMinutes": -1440})],
        responses={
            201: ReminderOut,
            400: OpenApiResponse(description="event_has_no_start: the event has no start to "
                                 "time reminders from; or an invalid field."),
            404: OpenApiResponse(description="event_not_found, template_not_found: no event, "
                                 "or no email template (templateId), of the account's."),
            409: OpenApiResponse(description="reminder_exists: this template at this offset "
                                 "is already a reminder of the event.")})
    def post(self, request, event_id):
        event = self.get_event(event_id)
        data = ReminderIn(data=request.data)
        data.is_valid(raise_exception=True)
        rule = reminders.reminder_rule_create(account=self.get_account(), event_id=event.id,
                                              **data.validated_data)
        return Response(ReminderOut(rule).data, status=201)


class ReminderDetail(RemindersView):
    @extend_schema(
        tags=["check-in"], summary="Remove a reminder; its unsent deliveries are cancelled",
        responses={200: ReminderDeleted, 404: OpenApiResponse(
            description="event_not_found, reminder_not_found: no event of the account's, or "
                        "no reminder with this id on it.")})
    def delete(self, request, event_id, reminder_id):
        event = self.get_event(event_id)
        rule = get_owned(event.reminders.all(), reminder_id, "reminder")
        body = ReminderOut(rule).data
        cancelled = reminders.reminder_rule_delete(rule=rule)
        return Response({**body, "cancelled": len(cancelled)})
