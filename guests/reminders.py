"""Event reminders: an event's rules (a template at an offset from its start) scheduled for each
of its guests, moved with the event, cancelled with the rule, the guest or the event.

A reminder is an ordinary scheduled delivery (``comms.scheduling``): the guest's message with
``send_at`` = the event's start + the rule's offset, and ``reminderRuleId`` among its refs, so
the rule's deliveries are found by it. The time is the same for every guest of an event (it
depends on the event, the rule and the account's quiet hours), so moving the event or changing
the rule is one ``UPDATE`` per rule however many guests there are.

Quiet hours (``Account.quiet_hours_start``/``_end``) are read in the event's own time zone: a
reminder falling inside them goes at their end. A reminder whose time has passed (a guest
added late, an event moved closer) goes now if it is less than HERALD_REMINDER_GRACE_MINUTES
late, else never: "your concert starts in 24 hours" two hours before it would be wrong; for the
same reason a reminder meant before the start that quiet hours would push past it is not sent.
"""

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from accounts.models import Account
from common import jobs
from common.errors import Conflict, HeraldError, NotFound
from comms.messages import Message
from comms.models import Delivery, Status
from comms.scheduling import deliveries_cancel
from comms.services import message_row, messages_queue, owner_type_id
from guests.messages import event_context, guest_message
from guests.models import Attendee, Event, ReminderRule
from templates.models import MessageTemplate

# The ref naming a reminder's rule on its deliveries (how a rule finds its reminders).
RULE_REF = "reminderRuleId"
# A guest's deliveries that are not reminders: its tickets (its "last ticket", spec 000's
# attendeeInvitationId, what support resends).
NOT_REMINDER = Q(**{f"refs__{RULE_REF}__isnull": True})
# Offsets beyond a year either side mean nothing for an event (and could not be scheduled).
MAX_OFFSET_MINUTES = 366 * 24 * 60
# Guests scheduled per INSERT when a rule is added to an event that has them already.
BATCH = 1000
# Up to this many guests, a new or moved rule's reminders are made inside the request (~0.2 ms
# a guest: 500 is ~0.1 s, and staff see them at once); a bigger event's by the job
# ``guests.reminder_rule_fill`` (50,000 guests took the request ~7-20 s).
INLINE_GUESTS = 500


# --- times ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class QuietHours:
    """An account's quiet hours (local times; both None: none). ``start`` after ``end`` is a
    window across midnight (21:00 → 08:00)."""

    start: time | None = None
    end: time | None = None

    @classmethod
    def of(cls, account: Account) -> "QuietHours":
        return cls(account.quiet_hours_start, account.quiet_hours_end)

    def shift(self, when: datetime, zone: str) -> datetime:
        """``when``, or the end of the quiet period it falls in (read in ``zone``)."""
        if self.start is None or self.end is None or self.start == self.end:
            return when
        tz = ZoneInfo(zone)
        local = when.astimezone(tz)
        clock, day = local.time().replace(tzinfo=None), local.date()
        if self.start < self.end:
            inside, end_day = self.start <= clock < self.end, day
        else:  # across midnight: the evening part ends tomorrow, the morning part today
            inside = clock >= self.start or clock < self.end
            end_day = day + timedelta(days=1) if clock >= self.start else day
        if not inside:
            return when
        return max(wall_time(end_day, self.end, tz).astimezone(when.tzinfo), when)


def wall_time(day: date, clock: time, tz: ZoneInfo) -> datetime:
    """The moment a wall clock in ``tz`` shows ``clock`` on ``day``: the first one when the
    clocks go back (it shows twice); when they go forward past it (02:30 on the night 02:00
    becomes 03:00), the change itself (03:00), the first minute that exists after it."""
    first = datetime.combine(day, clock, tzinfo=tz)
    instant = first.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == first.replace(tzinfo=None):
        return first
    # In the gap: the offset changes between the two readings of the missing time.
    low, high = sorted((instant, first.replace(fold=1).astimezone(UTC)))
    before = low.astimezone(tz).utcoffset()
    moment = low.replace(second=0, microsecond=0)
    while moment < high and moment.astimezone(tz).utcoffset() == before:
        moment += timedelta(minutes=1)
    return moment.astimezone(tz)


def grace() -> timedelta:
    return timedelta(minutes=settings.HERALD_REMINDER_GRACE_MINUTES)


def reminder_due(*, starts_at: datetime, offset_minutes: int, time_zone: str,
                 quiet: QuietHours) -> datetime | None:
    """When a rule's reminder is due for an event: its start + the offset, out of quiet hours;
    None past the calendar's edge (a start stored before ``guests.event_times`` bounded it,
    in the year 9999 or 1): no reminder rather than a 500."""
    try:
        return quiet.shift(starts_at + timedelta(minutes=offset_minutes), time_zone)
    except OverflowError:
        return None


def reminder_send_at(*, due: datetime, now: datetime, time_zone: str,
                     quiet: QuietHours) -> datetime | None:
    """When a reminder due at ``due`` goes out, decided at ``now``: ``due`` if still ahead;
    now (out of quiet hours) if less than the grace late; None if later: never."""
    if due > now:
        return due
    if now - due < grace():
        return quiet.shift(now, time_zone)
    return None


@dataclass(frozen=True)
class Timing:
    """A rule's reminder for an event, decided at a moment: when it is due, and when it goes
    (None: never, ``why_not`` says why)."""

    due: datetime | None
    send_at: datetime | None
    why_not: str = ""


def reminder_timing(*, starts_at: datetime, offset_minutes: int, time_zone: str,
                    quiet: QuietHours, now: datetime) -> Timing:
    """``reminder_due`` and ``reminder_send_at``; and a reminder meant before the start that
    quiet hours would put at or after it is not sent ("2 hours before" at 08:00 for a 07:00
    start would be wrong, as a late one would)."""
    due = reminder_due(starts_at=starts_at, offset_minutes=offset_minutes,
                       time_zone=time_zone, quiet=quiet)
    if due is None:
        return Timing(None, None, "The event's start is at the calendar's edge (the year 1 "
                      "or 9999): it cannot be timed.")
    send_at = reminder_send_at(due=due, now=now, time_zone=time_zone, quiet=quiet)
    if send_at is None:
        return Timing(due, None, f"Its time ({due:%Y-%m-%d %H:%M} UTC) passed more than "
                                 f"{settings.HERALD_REMINDER_GRACE_MINUTES} minutes ago.")
    if offset_minutes < 0 and send_at >= starts_at:
        return Timing(due, None, "The account's quiet hours would send it after the event "
                                 "starts.")
    return Timing(due, send_at)


@dataclass(frozen=True)
class Planned:
    """One rule's reminder for an event's guests: its template and time."""

    rule_id: uuid.UUID
    template_id: uuid.UUID
    send_at: datetime


def reminders_plan(*, event: Event, rules: Iterable[tuple[Any, Any, int]], quiet: QuietHours,
                   now: datetime | None = None) -> list[Planned]:
    """The reminders a guest added to ``event`` now gets: one per rule (``(id, template id,
    offset)``) whose time is ahead or within the grace; none without a start."""
    if event.starts_at is None:
        return []
    now = now or timezone.now()
    planned = []
    for rule_id, template_id, offset in rules:
        timing = reminder_timing(starts_at=event.starts_at, offset_minutes=offset,
                                 time_zone=event.time_zone, quiet=quiet, now=now)
        if timing.send_at is not None:
            planned.append(Planned(uuid.UUID(str(rule_id)), uuid.UUID(str(template_id)),
                                   timing.send_at))
    return planned


# --- guests added -----------------------------------------------------------------------------

def reminder_message(*, attendee: Attendee, event: dict[str, Any], planned: Planned,
                     mode: str) -> Message:
    """The guest's message of one planned reminder: the guest's ticket message with the
    rule's template, its time and the rule among its refs."""
    message = guest_message(attendee=attendee, event=event, template_id=planned.template_id,
                            mode=mode, correlation_id=attendee.correlation_id)
    return replace(message, send_at=planned.send_at,
                   refs={**(message.refs or {}), RULE_REF: str(planned.rule_id)})


def reminder_rows(*, attendee: Attendee, event: dict[str, Any],
                  planned: Sequence[Planned]) -> list[Delivery]:
    """The unsaved deliveries of a new guest's reminders, in the guest's mode (for the
    atomic path, which inserts them in its one statement with the guest)."""
    return [message_row(reminder_message(attendee=attendee, event=event, planned=p,
                                         mode=attendee.mode)) for p in planned]


def reminders_schedule(*, event: Event, attendees: Sequence[Attendee],
                       now: datetime | None = None) -> list[uuid.UUID]:
    """Queue each of the event's rules for guests just added (an import's batch, the admin's
    new guest), each in the guest's mode, in one INSERT; in the caller's transaction."""
    if not attendees or event.starts_at is None:
        return []
    rules = list(event.reminders.values_list("id", "template_id", "offset_minutes"))
    if not rules:
        return []
    planned = reminders_plan(event=event, rules=rules, now=now,
                             quiet=QuietHours.of(Account.objects.get(id=event.account_id)))
    context = event_context(event=event)
    return messages_queue([reminder_message(attendee=a, event=context, planned=p, mode=a.mode)
                           for a in attendees for p in planned])


# --- rules ------------------------------------------------------------------------------------

NO_START = ("event_has_no_start", "This event has no start time: reminders are timed from "
            "it. Set the event's start first.")


def reminder_rule_create(*, account: Account, event_id: Any, template_id: Any,
                         offset_minutes: int) -> ReminderRule:
    """A new rule on one of the account's events, with one of its email templates (another
    account's: 404), scheduled at once for the guests the event already has. An event
    without a start: 400; the same template at the same offset twice: 409."""
    event = _owned(Event.objects.filter(account=account), event_id, "event")
    template = _owned(MessageTemplate.objects.filter(account=account, channel="email"),
                      template_id, "template")
    if event.starts_at is None:
        raise HeraldError(*NO_START)
    reminder_offset_check(offset_minutes)
    try:
        with transaction.atomic():
            rule = ReminderRule.objects.create(account=account, event=event, template=template,
                                               offset_minutes=offset_minutes)
            reminder_rule_saved(rule=rule, created=True)
    except IntegrityError:
        raise Conflict("reminder_exists", "This event already has a reminder of this template "
                       "at this offset.") from None
    return rule


def reminder_offset_check(offset_minutes: int) -> None:
    if abs(offset_minutes) > MAX_OFFSET_MINUTES:
        raise HeraldError("invalid_offset", "offsetMinutes must be within a year of the "
                          f"event's start (±{MAX_OFFSET_MINUTES}).")


def _owned(queryset: QuerySet, pk: Any, what: str) -> Any:
    try:
        row = queryset.filter(pk=uuid.UUID(str(pk))).first()
    except ValueError:
        row = None
    if row is None:
        raise NotFound(what)
    return row


def reminder_rule_saved(*, rule: ReminderRule, created: bool,
                        now: datetime | None = None) -> bool:
    """After a rule was added (its reminders scheduled for the event's guests) or changed
    (its unsent reminders moved to the new time and template, and given to guests who never
    had it). A small event's are made here, in batches; a big event's (over
    ``inline_guests()``) by the job ``reminder_rule_fill``, queued on commit. Returns whether
    the job has it (the guests' reminders are being scheduled)."""
    event = Event.objects.get(id=rule.event_id)
    now = now or timezone.now()
    if not created and not _rule_move(rule, event, QuietHours.of(event.account), now):
        return False
    # Twice when new: a guest added while the batches ran (its insert could not see this
    # rule yet) is found by the second pass, one read when there is none.
    return _rule_fill(rule, event, now, passes=2 if created else 1)


def inline_guests() -> int:
    """The most guests an event may have for its rules' reminders to be made in the request."""
    return getattr(settings, "HERALD_REMINDER_INLINE_GUESTS", INLINE_GUESTS)


def reminders_schedule_rule(*, rule: ReminderRule, event: Event,
                            attendees: Sequence[Attendee],
                            now: datetime | None = None) -> list[uuid.UUID]:
    planned = reminders_plan(event=event, now=now, quiet=QuietHours.of(event.account),
                             rules=[(rule.id, rule.template_id, rule.offset_minutes)])
    context = event_context(event=event)
    return messages_queue([reminder_message(attendee=a, event=context, planned=p, mode=a.mode)
                           for a in attendees for p in planned])


def _guest_batches(event: Event, *, without: ReminderRule | None = None,
                   ) -> Iterable[list[Attendee]]:
    """The event's guests in id order, BATCH at a time (keyset, the ``attendee_event_id``
    index); ``without``: only those who never had a delivery of this rule."""
    guests = Attendee.objects.filter(event_id=event.id)
    if without is not None:
        guests = _without_rule(guests, without)
    after = None
    while True:
        rows = guests.order_by("id").only(*GUEST_FIELDS)
        if after is not None:
            rows = rows.filter(id__gt=after)
        batch = list(rows[:BATCH])
        if not batch:
            return
        yield batch
        after = batch[-1].id


# What a guest's reminder message needs of it.
GUEST_FIELDS = ("id", "account_id", "event_id", "email", "first_name", "last_name",
                "correlation_id", "mode", "ticket_key")


def _without_rule(guests: QuerySet[Attendee], rule: ReminderRule) -> QuerySet[Attendee]:
    """Those of ``guests`` who never had a delivery of ``rule`` (any status: one cancelled
    stays so)."""
    return guests.filter(~Exists(Delivery.objects.filter(
        owner_type_id=owner_type_id(Attendee), owner_id=OuterRef("id"),
        refs__reminderRuleId=str(rule.id))))


def reminder_rule_delete(*, rule: ReminderRule) -> list[Any]:
    """Remove a rule: its unsent reminders are cancelled (with their webhooks) first."""
    with transaction.atomic():
        cancelled = deliveries_cancel(
            _rule_deliveries(rule), reason="Its reminder was removed from the event.")
        rule.delete()
    return cancelled


def _rule_deliveries(rule: ReminderRule) -> QuerySet[Delivery]:
    return event_deliveries(rule.event_id).filter(status=Status.SCHEDULED,
                                                  refs__reminderRuleId=str(rule.id))


def event_deliveries(event_id: Any) -> QuerySet[Delivery]:
    """The deliveries of an event's guests (through their owner: the ``delivery_pair_latest``
    index leads with it)."""
    return Delivery.objects.filter(
        owner_type_id=owner_type_id(Attendee),
        owner_id__in=Attendee.objects.filter(event_id=event_id).values("id"))


# --- the event changed ------------------------------------------------------------------------

def event_reminders_follow(*, event: Event, moved: bool, now: datetime | None = None) -> bool:
    """After an event was saved: the stored render context of its guests' still scheduled
    deliveries gets the event as it is now (the engine renders from it: a moved or renamed
    event shows its new time and name); if its start or time zone changed (``moved``), each
    rule's unsent reminders move to their new time, or are cancelled if it passed more than
    the grace ago. Set-based: a few UPDATEs whatever the number of guests; guests who never had
    a rule's reminder get it (``_rule_fill``: the job's, for a big event). Returns whether
    the job has any rule's."""
    now = now or timezone.now()
    scheduled = event_deliveries(event.id).filter(status=Status.SCHEDULED)
    scheduled.update(context=RawSQL(
        "jsonb_set(COALESCE(context, '{}'::jsonb), '{event}', %s::jsonb)",
        (json.dumps(event_context(event=event), cls=DjangoJSONEncoder),)), updated_at=now)
    if not moved:
        return False
    if event.starts_at is None:
        deliveries_cancel(scheduled.filter(refs__has_key=RULE_REF),
                          reason="The event no longer has a start time.")
        return False
    quiet = QuietHours.of(Account.objects.get(id=event.account_id))
    queued = False
    for rule in event.reminders.all():
        if _rule_move(rule, event, quiet, now):
            queued = _rule_fill(rule, event, now) or queued
    return queued


def account_reminders_follow(*, account: Account, now: datetime | None = None) -> None:
    """After an account's quiet hours changed: the unsent reminders of its events move."""
    now = now or timezone.now()
    quiet = QuietHours.of(account)
    for rule in ReminderRule.objects.filter(account=account, event__starts_at__isnull=False
                                            ).select_related("event"):
        _rule_move(rule, rule.event, quiet, now)


def _rule_move(rule: ReminderRule, event: Event, quiet: QuietHours, now: datetime) -> bool:
    """One rule's scheduled reminders to its time (and template) now: one UPDATE, or the
    cancel of the ones now too late. Whether the rule still has a time to send at."""
    rows = _rule_deliveries(rule)
    if event.starts_at is None:
        return False
    timing = reminder_timing(starts_at=event.starts_at, offset_minutes=rule.offset_minutes,
                             time_zone=event.time_zone, quiet=quiet, now=now)
    if timing.send_at is None:
        deliveries_cancel(rows, reason=f"{timing.why_not} (The event, the reminder or the "
                          "quiet hours changed.)")
        return False
    rows.update(next_attempt_at=timing.send_at, template_id=rule.template_id, updated_at=now)
    return True


def _rule_fill(rule: ReminderRule, event: Event, now: datetime, *, passes: int = 1) -> bool:
    """The guests who never had this rule's reminder (all of them for a new rule; those added
    once its time had passed, now that the event moved it ahead again) get it: here for a
    small event, else by the job (returns True). One read (an anti-join on the deliveries'
    owner) when every guest has it; one cancelled by staff or by an earlier move stays so."""
    if _big(event):
        reminder_rule_fill_queue(rule=rule)
        return True
    for _ in range(passes):
        for batch in _guest_batches(event, without=rule):
            reminders_schedule_rule(rule=rule, event=event, attendees=batch, now=now)
    return False


def _big(event: Event) -> bool:
    limit = inline_guests()
    return Attendee.objects.filter(event_id=event.id)[:limit + 1].count() > limit


# --- the job: a big event's reminders ---------------------------------------------------------

FILL_TASK = "guests.reminder_rule_fill"


def reminder_rule_fill_queue(*, rule: ReminderRule) -> None:
    """Hand the rule's reminders to the job, in the caller's transaction: its ``fill_due``
    marks it to do (the sweep's record, should the task be lost; the API and the admin read
    "being scheduled" from it), the task goes on commit."""
    rule.fill_due = timezone.now()
    ReminderRule.objects.filter(id=rule.id).update(fill_due=rule.fill_due)
    rule_id = str(rule.id)
    transaction.on_commit(lambda: jobs.publish(FILL_TASK, rule_id), robust=True)


def reminder_rule_fill(*, rule_id: Any, batch: int = BATCH) -> int:
    """The job: the rule's reminder for every guest of its event who has none of it, ``batch``
    guests per transaction, then a second pass for guests added meanwhile; ``fill_due`` cleared
    at the end. Returns how many were made.

    Idempotent and crash-safe: each batch locks the rule's row first and takes only guests
    without a delivery of the rule (the anti-join read after the lock), so a rerun after a
    crash continues where the dead one stopped, and two runs at once take turns, the second
    seeing the first's rows: no guest gets it twice. Each batch reads the rule and the event
    again (a change made meanwhile applies to the rest); a rule removed stops it. The end
    (``fill_due`` cleared) is written under the same lock as the last read, so a fill asked
    for meanwhile (the event moved) is not lost with it."""
    made = 0
    for last in (False, True):
        after: Any = None
        while True:
            with transaction.atomic():
                step = _fill_step(rule_id, after, batch, last=last)
            if step is None:
                return made
            count, after = step
            made += count
            if after is None:
                break
    return made


def _fill_step(rule_id: Any, after: Any, size: int, *, last: bool) -> tuple[int, Any] | None:
    """One batch, in the caller's transaction: (reminders made, the last guest's id; None
    when no guest is left, and then on the ``last`` pass the job is done). None when the
    rule is gone or has no time to send at (done too)."""
    rule = ReminderRule.objects.select_for_update().filter(id=rule_id).first()
    if rule is None:
        return None
    event = Event.objects.select_related("account").get(id=rule.event_id)
    planned = reminders_plan(event=event, quiet=QuietHours.of(event.account),
                             rules=[(rule.id, rule.template_id, rule.offset_minutes)])
    if not planned:
        ReminderRule.objects.filter(id=rule_id).update(fill_due=None)
        return None
    guests = _without_rule(Attendee.objects.filter(event_id=event.id), rule)
    if after is not None:
        guests = guests.filter(id__gt=after)
    guests = list(guests.order_by("id").only(*GUEST_FIELDS)[:size])
    if not guests:
        if last:
            ReminderRule.objects.filter(id=rule_id).update(fill_due=None)
        return 0, None
    context = event_context(event=event)
    messages_queue([reminder_message(attendee=a, event=context, planned=p, mode=a.mode)
                    for a in guests for p in planned])
    ReminderRule.objects.filter(id=rule_id).update(fill_due=timezone.now())  # progress
    return len(guests) * len(planned), guests[-1].id


def reminder_fills_lost(*, cutoff: datetime, until: datetime, limit: int = 100) -> list[Any]:
    """Rules whose job stood still since before ``cutoff`` (its task lost with the broker, its
    worker dead): claimed for another run by moving ``fill_due`` to ``until``. Their ids."""
    return jobs.lease(RULE_FILLS, cutoff=cutoff, until=until, limit=limit)


RULE_FILLS = jobs.JobTable(ReminderRule, status=None, token=None, due="fill_due",
                           null_due=False, attempts=None)


# --- guests changed ---------------------------------------------------------------------------

def reminders_readdress(*, attendee: Attendee) -> int:
    """The guest's email was corrected: its scheduled deliveries (reminders, scheduled
    tickets) go to the new address. Returns how many."""
    return Delivery.objects.filter(
        owner_type_id=owner_type_id(Attendee), owner_id=attendee.pk, status=Status.SCHEDULED,
    ).update(recipient=attendee.email, updated_at=timezone.now())


def attendee_reminders_follow(*, attendee: Attendee, event_changed: bool) -> None:
    """The guest was edited (the admin's form): its scheduled deliveries follow it — its
    address, its names, its event in their stored context; moved to another event, its old
    event's reminders are cancelled and the new one's scheduled."""
    scheduled = Delivery.objects.filter(owner_type_id=owner_type_id(Attendee),
                                        owner_id=attendee.pk, status=Status.SCHEDULED)
    event = Event.objects.get(id=attendee.event_id)
    if event_changed:
        deliveries_cancel(scheduled.filter(refs__has_key=RULE_REF),
                          reason="The guest moved to another event.")
    names = {"firstName": attendee.first_name, "lastName": attendee.last_name,
             "_to_name": f"{attendee.first_name} {attendee.last_name}".strip(),
             "event": event_context(event=event)}
    scheduled.update(recipient=attendee.email, updated_at=timezone.now(), context=RawSQL(
        "COALESCE(context, '{}'::jsonb) || %s::jsonb",
        (json.dumps(names, cls=DjangoJSONEncoder),)), refs=RawSQL(
        "COALESCE(refs, '{}'::jsonb) || %s::jsonb",
        (json.dumps({"eventId": str(event.id)}),)))
    if event_changed:
        reminders_schedule(event=event, attendees=[attendee])


def attendees_deliveries_cancel(*, attendee_ids: Iterable[Any] | QuerySet,
                                reason: str) -> list[Any]:
    """Cancel the unsent (scheduled or queued) deliveries of these guests, with their
    ``comms.cancelled`` / ``delivery.cancelled`` webhooks: before the guests are deleted."""
    ids = attendee_ids.values("id") if isinstance(attendee_ids, QuerySet) else list(attendee_ids)
    return deliveries_cancel(Delivery.objects.filter(owner_type_id=owner_type_id(Attendee),
                                                     owner_id__in=ids), reason=reason)


def new_guest_reminders(*, attendee: Attendee, event: dict[str, Any],
                        rules: Sequence[tuple[Any, Any, int]],
                        quiet_hours: Sequence[str | None]) -> list[Delivery]:
    """The atomic path's reminders of a new guest (unsaved rows, in the guest's mode), from
    what its one read gave (``guests.selectors.guest_create_checks``): the event's context,
    its rules and the account's quiet hours as text."""
    if not rules or not event.get("startsAt"):
        return []
    start, end = (time.fromisoformat(value) if value else None for value in quiet_hours)
    shell = Event(id=event["id"], starts_at=datetime.fromisoformat(event["startsAt"]),
                  time_zone=event["timeZone"])
    planned = reminders_plan(event=shell, rules=rules, quiet=QuietHours(start, end))
    return reminder_rows(attendee=attendee, event=event, planned=planned)
