"""Writes on events and attendees, including spec 000's atomic create + send."""

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from accounts.models import Account
from common.errors import Conflict, NotFound
from common.inserts import insert_together
from comms.messages import Message
from comms.models import Status
from comms.services import (
    account_check_can_send,
    deliveries_logged,
    delivery_enqueue_on_commit,
    message_queue,
    message_row,
)
from guests.messages import event_context, guest_message
from guests.models import Attendee, Event, default_time_zone
from guests.reminders import (
    NOT_REMINDER,
    attendees_deliveries_cancel,
    new_guest_reminders,
    reminders_schedule,
)
from guests.selectors import guest_create_checks


def event_create(*, account: Account, name: str, id: uuid.UUID | None = None, venue: str = "",
                 starts_at: datetime | None = None, ends_at: datetime | None = None,
                 time_zone: str | None = None) -> Event:
    """``time_zone``: an IANA name (checked by the caller); by default the server's."""
    try:
        with transaction.atomic():
            return Event.objects.create(
                id=id or uuid.uuid4(), account=account, name=name, venue=venue,
                starts_at=starts_at, ends_at=ends_at, time_zone=time_zone or default_time_zone(),
            )
    except IntegrityError:
        raise Conflict("id_conflict", "An event with this id already exists.") from None


@dataclass(frozen=True)
class AttendeeResult:
    attendee: Attendee
    delivery_id: uuid.UUID | None
    created: bool
    # The new send's time when it was scheduled (None: sent now, or not a new send).
    send_at: datetime | None = None


def attendee_create(*, account: Account, mode: str, id: uuid.UUID, event_id: uuid.UUID,
                    email: str, first_name: str = "", last_name: str = "",
                    comms_template_id: uuid.UUID | None = None,
                    correlation_id: str | None = None,
                    send_at: datetime | None = None) -> AttendeeResult:
    """Spec 000's atomic path: the attendee and its queued send in one transaction.
    ``send_at``: a time still ahead makes the send ``scheduled`` (``comms.scheduling``).

    ``id`` is the caller's idempotency key: if it exists (even while a concurrent request
    is inserting it) the existing attendee is returned and nothing is sent again — per key
    mode: a request never gets the other mode's send back, and a live request for an id a
    test key rehearsed with wins over the rehearsal (see ``_existing``).
    """
    checks = guest_create_checks(account=account, attendee_id=id, event_id=event_id,
                                 template_id=comms_template_id)
    request = _Request(mode, email, comms_template_id, checks.template_ok, correlation_id,
                       event_id, checks.event_ok, first_name, last_name, send_at)
    if checks.existing_account_id is not None:
        return _existing(Attendee.objects.get(id=id), account, request)
    if not checks.event_ok:
        raise NotFound("event")
    if comms_template_id:
        if not checks.template_ok:
            raise NotFound("template")
        account_check_can_send(account=account)
    fields: dict[str, Any] = dict(
        id=id, account=account, event_id=event_id, email=email, first_name=first_name,
        last_name=last_name, correlation_id=correlation_id, mode=mode,
    )
    attendee = Attendee(**fields)
    delivery = message_row(_at(guest_message(
        attendee=attendee, event=checks.event, template_id=comms_template_id, mode=mode,
        correlation_id=correlation_id), send_at)) if comms_template_id else None
    # The event's reminders (guests.reminders), scheduled in the same statement.
    reminders = new_guest_reminders(attendee=attendee, event=checks.event,
                                    rules=checks.reminders, quiet_hours=checks.quiet_hours)
    try:
        # One statement on PostgreSQL (no BEGIN/COMMIT round trips): all rows or none.
        insert_together(attendee, *([delivery] if delivery else []), *reminders)
    except IntegrityError:
        # A concurrent request with the same id won the insert: answer as its retry would.
        winner = Attendee.objects.filter(id=id).first()
        if winner is None:  # not the id race: the event went away meanwhile
            raise NotFound("event") from None
        return _existing(winner, account, request)
    deliveries_logged([*([delivery] if delivery else []), *reminders])
    late = next((row for row in reminders if row.status == Status.QUEUED), None)
    if late is not None:  # a reminder within its grace goes now (one kick sends them all)
        delivery_enqueue_on_commit(late)
    if delivery is None:
        return AttendeeResult(attendee, None, created=True)
    if delivery.status == Status.QUEUED:  # a scheduled one waits for its time: no task
        delivery_enqueue_on_commit(delivery)
    return AttendeeResult(attendee, delivery.id, created=True,
                          send_at=delivery.next_attempt_at
                          if delivery.status == Status.SCHEDULED else None)


def _at(message: Message, send_at: datetime | None) -> Message:
    return replace(message, send_at=send_at) if send_at is not None else message


@dataclass(frozen=True)
class _Request:
    mode: str
    email: str
    template_id: uuid.UUID | None
    template_ok: bool
    correlation_id: str | None
    event_id: uuid.UUID
    event_ok: bool
    first_name: str
    last_name: str
    send_at: datetime | None = None


def _existing(attendee: Attendee, account: Account, request: _Request) -> AttendeeResult:
    """The answer to a request whose id exists: the attendee and its first send in the
    request's key mode, never the other mode's send.

    - A live request for a rehearsal guest (created by a test key): the live request wins —
      the guest takes its fields (event, email, names, correlationId) and becomes live, and
      its live send goes out with them, queued once (``_make_live``). Its sandbox sends
      stay as they were, as history. So a test key cannot pre-seed a live guest.
    - A test key's request for a live guest: the guest is never changed; its rehearsal send
      is queued once, to the guest's own email (another email: 409).
    """
    if attendee.account_id != account.id:
        raise Conflict("id_conflict", "This id is already used by another account's attendee.")
    if request.mode == Attendee.LIVE and attendee.mode != Attendee.LIVE:
        return _make_live(attendee, account, request)
    first = _first_send(attendee, request.mode)
    if first is not None or attendee.mode == request.mode or request.template_id is None:
        return AttendeeResult(attendee, first, created=False)
    if attendee.email.strip().lower() != request.email.strip().lower():
        raise Conflict("id_conflict", f"This guest id was first used in {attendee.mode} mode "
                       "with another email; use a new id for this guest.")
    if not request.template_ok:
        raise NotFound("template")
    account_check_can_send(account=account)
    with transaction.atomic():
        # Locking the attendee serializes concurrent first requests of this mode: one send.
        Attendee.objects.select_for_update().filter(id=attendee.id).first()
        first = _first_send(attendee, request.mode)
        if first is None:
            first = message_queue(_at(guest_message(
                attendee=attendee, template_id=request.template_id, mode=request.mode,
                correlation_id=request.correlation_id,
                event=event_context(event=Event.objects.get(id=attendee.event_id))),
                request.send_at)).id
    return AttendeeResult(attendee, first, created=False)


def _make_live(attendee: Attendee, account: Account, request: _Request) -> AttendeeResult:
    """A rehearsal guest named by a live request: replaced by the live request's fields and
    made live, under its row lock (concurrent live requests: the first one's fields, one
    live send); the live send is queued with them."""
    if not request.event_ok:
        raise NotFound("event")
    if request.template_id is not None:
        if not request.template_ok:
            raise NotFound("template")
        account_check_can_send(account=account)
    with transaction.atomic():
        locked = Attendee.objects.select_for_update().get(id=attendee.id)
        if locked.mode != Attendee.LIVE:
            locked.event_id, locked.email = request.event_id, request.email
            locked.first_name, locked.last_name = request.first_name, request.last_name
            locked.correlation_id, locked.mode = request.correlation_id, Attendee.LIVE
            locked.save(update_fields=["event", "email", "first_name", "last_name",
                                       "correlation_id", "mode", "updated_at"])
            # Now a live guest of its event: its live reminders (the rehearsal's stay).
            reminders_schedule(event=Event.objects.get(id=locked.event_id), attendees=[locked])
        first = _first_send(locked, Attendee.LIVE)
        if first is None and request.template_id is not None:
            first = message_queue(_at(guest_message(
                attendee=locked, template_id=request.template_id, mode=Attendee.LIVE,
                correlation_id=request.correlation_id,
                event=event_context(event=Event.objects.get(id=locked.event_id))),
                request.send_at)).id
    return AttendeeResult(locked, first, created=False)


def _first_send(attendee: Attendee, mode: str) -> uuid.UUID | None:
    return attendee.deliveries.filter(NOT_REMINDER, mode=mode).order_by("created_at").values_list(
        "id", flat=True).first()


def attendees_delete(*, attendees: QuerySet[Attendee]) -> None:
    """Delete guests: their unsent deliveries are cancelled first (``comms.cancelled`` /
    ``delivery.cancelled`` to webhooks, whose messages keep their payload), then the guests
    go with their deliveries."""
    with transaction.atomic():
        attendees_deliveries_cancel(attendee_ids=attendees, reason="The guest was deleted.")
        attendees.delete()


def events_delete(*, events: QuerySet[Event]) -> None:
    """Delete events: their guests' unsent deliveries are cancelled first, as a guest's."""
    with transaction.atomic():
        attendees_deliveries_cancel(
            attendee_ids=Attendee.objects.filter(event__in=events.values("id")),
            reason="The event was deleted.")
        events.delete()
