import uuid

from django.db import models

from accounts.models import Account
from common.models import TimeStampedModel
from comms.providers.registry import CHANNEL_LABELS, CHANNELS

# The channels, as the provider registry defines them (one list): email, sms, push, …
Channel = models.TextChoices("Channel", [(name.upper(), (name, CHANNEL_LABELS[name]))
                                         for name in CHANNELS])


# The category of a template that is never unsubscribable.
TRANSACTIONAL = "transactional"


class NotificationEvent(TimeStampedModel):
    """Spec 004's kind of event (``order.confirmed``): the channels it goes out on and a
    template per channel and language (``MessageTemplate.event``)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE,
                                related_name="notification_events")
    identifier = models.CharField(max_length=128)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    channels = models.JSONField(default=list)
    default_language = models.CharField(max_length=16, default="en")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "identifier"],
                                               name="notification_event_once")]

    def __str__(self) -> str:
        return self.identifier


class MessageTemplate(TimeStampedModel):
    """A message to render per recipient: subject and bodies with merge tokens."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="templates")
    name = models.CharField(max_length=200)
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.EMAIL)
    language = models.CharField(max_length=16, default="en")
    subject = models.CharField(max_length=998)
    html_body = models.TextField(blank=True)
    text_body = models.TextField(blank=True)
    # What kind of message it is: "transactional" (tickets, receipts: always sent, never
    # unsubscribable) or a topic (``event-updates``, ``marketing``): its emails carry RFC 8058
    # one-click unsubscribe headers and stop for whoever unsubscribed from the topic.
    category = models.CharField(
        max_length=64, default=TRANSACTIONAL,
        help_text='"transactional" (tickets, receipts: never unsubscribable) or a topic '
                  'name such as event-updates or marketing (recipients can unsubscribe).')
    # A ticket: the guest's check-in QR code (inline in the HTML as cid:ticket-qr, and as
    # an attachment) and the event's calendar invite (.ics) go with each email.
    attach_qr = models.BooleanField(
        "attach the check-in QR code", default=False,
        help_text="The guest's QR code for the door, shown in the email and attached.")
    attach_ics = models.BooleanField(
        "attach a calendar invite", default=False,
        help_text="The event as an .ics invite (its time zone, venue and organiser).")
    # Bumped on every change, so caches of compiled templates key on (id, version).
    version = models.PositiveIntegerField(default=1)
    # Set for a notification event's template: one per (event, channel, language).
    event = models.ForeignKey(NotificationEvent, on_delete=models.CASCADE, null=True,
                              blank=True, related_name="templates")

    class Meta:
        constraints = [models.UniqueConstraint(
            fields=["event", "channel", "language"], condition=models.Q(event__isnull=False),
            name="event_template_once")]

    def __str__(self) -> str:
        return self.name


class TemplateVersion(models.Model):
    """One saved version of a template: its content and who made it (history in the admin)."""

    template = models.ForeignKey(MessageTemplate, on_delete=models.CASCADE,
                                 related_name="versions")
    version = models.PositiveIntegerField()
    subject = models.CharField(max_length=998, blank=True)
    html_body = models.TextField(blank=True)
    text_body = models.TextField(blank=True)
    changed_by = models.CharField(max_length=200, blank=True,
                                  help_text="An admin user or an API key, by name.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]
        constraints = [models.UniqueConstraint(fields=["template", "version"],
                                               name="template_version_once")]

    def __str__(self) -> str:
        return f"v{self.version}"
