import secrets
import uuid
import zoneinfo
from functools import cache

from django.conf import settings
from django.contrib.contenttypes.fields import GenericRelation
from django.core.exceptions import ValidationError
from django.db import models

from accounts.models import Account
from common.models import TimeStampedModel, UUIDModel


@cache
def time_zone_names() -> tuple[str, ...]:
    """The IANA time zone names this system knows (Europe/London…), sorted."""
    return tuple(sorted(zoneinfo.available_timezones() - {"localtime", "Factory"}))


@cache
def time_zone_choices() -> list[tuple[str, list[tuple[str, str]]]]:
    """The names grouped by region for a select: ("America", [("America/New_York",
    "America/New York"), …]), names without a region last."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for name in time_zone_names():
        region, _, place = name.partition("/")
        group = region if place else "Other"
        groups.setdefault(group, []).append((name, name.replace("_", " ")))
    return sorted(groups.items(), key=lambda item: (item[0] == "Other", item[0]))


def default_time_zone() -> str:
    return settings.TIME_ZONE


class TimeZoneField(models.CharField):
    """An IANA time zone name, chosen from the system's list (a select in forms; any other
    value fails validation). The list is left out of migrations: a new tzdata release would
    otherwise be one."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("max_length", 64)
        kwargs["choices"] = time_zone_choices()
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs.pop("choices", None)
        return name, path, args, kwargs


def new_ticket_key() -> str:
    """A guest's ``ticket_key``: 72 random bits, URL-safe."""
    return secrets.token_urlsafe(9)


class Event(TimeStampedModel):
    """The occasion guests attend (a concert, a conference day)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="events")
    name = models.CharField(max_length=200)
    venue = models.CharField(max_length=200, blank=True)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    # Where the event happens: its messages show its dates and times in this zone
    # ("Saturday 17 April 2027, 19:00"), whatever zone the server or the staff are in.
    time_zone = TimeZoneField(
        default=default_time_zone, verbose_name="time zone",
        help_text="Where the event takes place: tickets show its dates and times in this "
                  "zone.")

    def clean(self) -> None:
        super().clean()
        if self.starts_at and self.ends_at and self.ends_at < self.starts_at:
            raise ValidationError({"ends_at": "The event ends before it starts: choose an end "
                                              "after the start."})

    def __str__(self) -> str:
        return self.name


class Attendee(TimeStampedModel):
    """A guest of an event. ``id`` is the caller's GUID and the idempotency key of spec 000."""

    id = models.UUIDField(primary_key=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="attendees")
    # Indexed by (event, id) below: the event's guests in id order, as a bulk send pages them.
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="attendees",
                              db_index=False)
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    email = models.EmailField(max_length=254)
    correlation_id = models.CharField(max_length=128, blank=True, null=True)
    # The key mode of the request that created it ("live" for the admin's imports): a request
    # of the other mode reusing its id gets its own send, never this mode's, and a live
    # request takes a test key's rehearsal guest over (guests.services). Live audiences
    # (bulk send) leave test guests out.
    LIVE, TEST = "live", "test"
    mode = models.CharField(max_length=8, default="live", editable=False,
                            choices=[("live", "Live"), ("test", "Test")])
    # What makes this guest's ticket its own (``guests.tokens``): the check-in token signs it
    # with the id, so a guest deleted and added again under the same id (ids are the
    # caller's) gets a new ticket, and the deleted one's QR code stays refused.
    ticket_key = models.CharField(max_length=16, default=new_ticket_key, editable=False)
    # At the door: when the guest was let in, and by whom ("key <prefix>", "admin <user>");
    # set once (guests.checkin), a second scan is refused saying when.
    checked_in_at = models.DateTimeField(null=True, blank=True)
    checked_in_by = models.CharField(max_length=200, blank=True)
    # Its messages (the engine's deliveries it owns): deleted with it.
    deliveries = GenericRelation("comms.Delivery", content_type_field="owner_type",
                                 object_id_field="owner_id", related_query_name="attendee")

    class Meta:
        verbose_name = "guest"  # staff's word (the spec's API says attendee)
        indexes = [models.Index(fields=["account", "email"]),
                   models.Index(fields=["event", "id"], name="attendee_event_id")]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name} <{self.email}>".strip()


class ReminderRule(UUIDModel):
    """An event's reminder: a template sent to each guest at an offset from the event's start
    (-1440 minutes: a day before). Scheduled per guest when the guest is added, moved with
    the event's start, cancelled with the guest or the event (``guests.reminders``)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="reminders")
    template = models.ForeignKey("templates.MessageTemplate", on_delete=models.PROTECT,
                                 related_name="+")
    # Minutes from the event's start: negative before it (-1440 = 24 h before).
    offset_minutes = models.IntegerField(
        help_text="Minutes from the event's start: -1440 is a day before, -120 two hours.")
    # A big event's guests get the rule's reminders from a job (``guests.reminders``): set
    # when it is queued and at each batch it commits (its progress), None once every guest
    # has it. The sweep queues the job again when it stood still longer than the grace.
    fill_due = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["offset_minutes"]
        constraints = [models.UniqueConstraint(fields=["event", "template", "offset_minutes"],
                                               name="reminder_once")]

    def __str__(self) -> str:
        return f"{self.template} at {self.offset_minutes:+d} min"


class GuestImport(UUIDModel):
    """A CSV of guests uploaded into an event: validated (a preview, nothing written), then
    imported once confirmed. The file itself is a ``GuestImportFile``."""

    class Status(models.TextChoices):
        MAPPING = "mapping"  # stored, waiting for staff to confirm which column is which
        UPLOADED = "uploaded"  # stored, validation queued
        VALIDATED = "validated"  # preview and errors ready, waiting for confirmation
        IMPORTING = "importing"  # confirmed, the import task is writing attendees
        DONE = "done"  # every valid row imported or skipped as existing
        FAILED = "failed"  # the file cannot be read (encoding, header) or the task crashed

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="imports")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                    null=True, blank=True, related_name="+")
    filename = models.CharField(max_length=255, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UPLOADED)
    file_error = models.TextField(blank=True, help_text="Why the whole file was refused.")
    total = models.PositiveIntegerField(default=0, help_text="Data rows in the file.")
    valid = models.PositiveIntegerField(default=0, help_text="Rows without errors.")
    invalid = models.PositiveIntegerField(default=0, help_text="Rows with errors.")
    existing = models.PositiveIntegerField(
        default=0, help_text="Valid rows whose id the account already has (at validation).")
    to_process = models.PositiveIntegerField(default=0, help_text="Rows the import goes through.")
    processed = models.PositiveIntegerField(default=0, help_text="Rows handled so far.")
    imported = models.PositiveIntegerField(default=0, help_text="Attendees created.")
    skipped = models.PositiveIntegerField(default=0, help_text="Ids that existed: left as is.")
    errors = models.JSONField(default=list, blank=True, help_text="The first row errors.")
    preview = models.JSONField(default=list, blank=True, help_text="The first valid rows.")
    mapping = models.JSONField(default=dict, blank=True, help_text=(
        "The file's columns (headers, samples, delimiter, encoding) and the field chosen for "
        "each."))
    warnings = models.JSONField(default=list, blank=True, help_text=(
        "What the preview warns about: formula-looking cells, rows without a name."))
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.filename or 'upload'} → {self.event_id} ({self.status})"


class GuestImportFile(models.Model):
    """The uploaded bytes, kept in the database (capped by HERALD_IMPORT_MAX_BYTES) so web
    and worker processes on different hosts both reach them; deleted once imported. A table of
    its own: progress updates of the import never rewrite a large row."""

    guest_import = models.OneToOneField(GuestImport, on_delete=models.CASCADE,
                                        primary_key=True, related_name="file")
    data = models.BinaryField()

    def __str__(self) -> str:
        return f"file of {self.guest_import_id}"


class BulkSend(UUIDModel):
    """One "send a template to the guests of an event" job. ``token`` comes from the confirm
    form: a second submission of the same form finds this row instead of sending again."""

    class Status(models.TextChoices):
        PENDING = "pending"  # confirmed, the task is queued
        CREATING = "creating"  # the task is inserting queued deliveries, batch by batch
        DONE = "done"  # every delivery is queued (the send pipeline takes it from there)
        FAILED = "failed"  # the task crashed; ``error`` says why
        CANCELLED = "cancelled"  # staff cancelled it: no more queued, the unsent withdrawn

    class Audience(models.TextChoices):
        ALL = "all", "All guests"
        NEVER_SENT = "never_sent", "Guests never sent this template"
        LAST_FAILED = "last_failed", "Guests whose last delivery of this template failed"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="bulk_sends")
    template = models.ForeignKey("templates.MessageTemplate", on_delete=models.PROTECT,
                                 related_name="+")
    mode = models.CharField(max_length=8, default="live")
    audience = models.CharField(max_length=16, choices=Audience.choices, default=Audience.ALL)
    token = models.UUIDField(unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                   null=True, blank=True, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    total = models.PositiveIntegerField(default=0, help_text="Guests matching the audience.")
    queued = models.PositiveIntegerField(default=0, help_text="Deliveries created.")
    skipped_suppressed = models.PositiveIntegerField(default=0)
    skipped_failed = models.PositiveIntegerField(
        default=0, help_text="Latest delivery of the template bounced, dropped, spam, unsub.")
    # The last attendee id handled: a batch and its cursor commit together, so a re-run task
    # resumes after it and never queues a guest twice.
    cursor = models.UUIDField(null=True, blank=True)
    # When the guests get it: empty sends at once; a later time queues every delivery
    # ``scheduled`` (``comms.scheduling``), so a task re-run after a crash schedules the rest
    # for the same minute.
    send_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.template_id} → {self.event_id} ({self.status})"
