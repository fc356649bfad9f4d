import uuid

from django.contrib.contenttypes.models import ContentType
from django.db import models

from accounts.models import Account
from common import request_id
from common.models import TimeStampedModel, UUIDModel
from comms.providers.registry import CHANNEL_LABELS, CHANNELS
from templates.models import MessageTemplate

# Every channel field's choices: the stored name and its label in words ("sms": "SMS").
CHANNEL_CHOICES = [(name, CHANNEL_LABELS[name]) for name in CHANNELS]


class Status(models.TextChoices):
    SCHEDULED = "scheduled"  # accepted for a later time: waits on the due-time index, no worker
    QUEUED = "queued"  # accepted, waiting for a worker (the row is the outbox)
    SENDING = "sending"  # claimed by a worker, provider call in flight
    SENT = "sent"  # the provider accepted it
    DELIVERED = "delivered"  # the recipient's server accepted it
    OPENED = "opened"  # the recipient opened it
    CLICKED = "clicked"  # the recipient clicked a link
    FAILED = "failed"  # transient API-side failure, retries exhausted (or permanent API error)
    BOUNCED = "bounced"  # the recipient's server rejected the address
    DROPPED = "dropped"  # the provider refused to deliver (its suppression, invalid)
    SPAM_REPORTED = "spam_reported"  # the recipient marked it as spam
    UNSUBSCRIBED = "unsubscribed"  # the recipient opted out
    SUPPRESSED = "suppressed"  # we did not send: the address is on our suppression list
    CANCELLED = "cancelled"  # withdrawn by its sender (or its guest or event) before it was sent


# Precedence: a delivery only moves to a higher rank, so late or repeated events never move
# it backwards. Every failure outranks every success: a bounce after "delivered" still wins.
RANK = {
    Status.SCHEDULED: 0, Status.QUEUED: 0, Status.SENDING: 1, Status.SENT: 2, Status.DELIVERED: 3,
    Status.OPENED: 4, Status.CLICKED: 5,
    Status.FAILED: 10, Status.BOUNCED: 10, Status.DROPPED: 10, Status.SPAM_REPORTED: 10,
    Status.UNSUBSCRIBED: 10, Status.SUPPRESSED: 10, Status.CANCELLED: 10,
}
# Cancelled is final like a failure (nothing moves it) but is no failure: it is not counted,
# shown or refused as one.
FAILURES = frozenset(s for s, rank in RANK.items() if rank >= 10 and s != Status.CANCELLED)
# Not sent yet and still withdrawable: DELETE cancels these (``comms.scheduling``).
CANCELLABLE = frozenset({Status.SCHEDULED, Status.QUEUED})
# The failures after which spec 000 refuses a resend with 422 ("won't change").
PERMANENT_FAILURES = frozenset(
    {Status.BOUNCED, Status.DROPPED, Status.SPAM_REPORTED, Status.UNSUBSCRIBED}
)

# The four statuses spec 004 shows callers (its deliveries and its ``delivery.*`` webhooks)
# over ours, which go beside them as the detail.
PUBLIC_STATUS = {
    Status.SCHEDULED: "pending", Status.QUEUED: "pending", Status.SENDING: "pending",
    Status.SENT: "sent", Status.CANCELLED: "failed",
    Status.DELIVERED: "delivered", Status.OPENED: "delivered", Status.CLICKED: "delivered",
    **{status: "failed" for status in FAILURES},
}


class Delivery(TimeStampedModel):
    """One message to one recipient on one channel. ``id`` is spec 000's attendeeInvitationId."""

    class Mode(models.TextChoices):
        LIVE = "live"  # the configured provider
        TEST = "test"  # the sandbox provider (sent with a test_ key)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    # account: no index of its own, the composite indexes below lead with it (each index is
    # one more write per status change, the hottest write).
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="deliveries",
                                db_index=False)
    # What the message belongs to in the front end that made it (a guest, a contact): the
    # engine never reads it; the front end finds its messages by it (a ``GenericRelation``
    # on a guest also deletes them with it).
    owner_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, null=True,
                                   blank=True, related_name="+", db_index=False)
    owner_id = models.UUIDField(null=True, blank=True)
    # The front end's ids the customer webhooks carry (``attendeeId``, ``eventId``,
    # ``contactId``), set at creation.
    refs = models.JSONField(null=True, blank=True)
    # None: the content was given as is (spec 002's subject and body), stored at creation.
    template = models.ForeignKey(
        MessageTemplate, on_delete=models.PROTECT, null=True, blank=True,
        related_name="deliveries",
    )
    channel = models.CharField(max_length=16, choices=CHANNEL_CHOICES, default="email")
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.LIVE)
    # The channel's address: email, E.164 phone, push token, user id, webhook URL, chat id.
    recipient = models.CharField(max_length=2048)
    # The integration that sent it (channels other than email); spec 004's event name.
    integration = models.ForeignKey(
        "Integration", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    event_name = models.CharField(max_length=128, blank=True)
    correlation_id = models.CharField(max_length=128, null=True, blank=True)
    # The request that made it (its X-Request-Id; a task it published carries it on), which
    # the webhooks carry; None for what no request made (a command, beat's sweeps).
    request_id = models.CharField(max_length=request_id.MAX_LENGTH, null=True, blank=True,
                                  default=request_id.current, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    provider = models.CharField("sending service", max_length=32, blank=True)
    provider_message_id = models.CharField(  # indexed in Meta
        "the sending service's message id", max_length=255, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # scheduled: when it is to be sent (its ``sendAt``). queued: when it is due. A row a
    # provider event moved out of ``sending`` before its worker
    # recorded the send: its claim time, until the send is recorded (the sweeper does it once
    # the claim expired: ``comms.dispatch._reconcile``).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    # The content as sent: rendered on the first attempt, reused by retries, kept for support.
    template_version = models.PositiveIntegerField(null=True, blank=True)
    subject = models.TextField(blank=True)
    html_body = models.TextField(blank=True)
    text_body = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    failure_type = models.CharField(max_length=32, blank=True)
    failure_reason = models.TextField(blank=True)
    bounce_type = models.CharField(max_length=32, blank=True)
    bounce_subtype = models.CharField(max_length=64, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    # The render context the front end gave (a guest's names and event, an email's tokens);
    # ``_sender`` / ``_to_name`` / ``_options``: the sender, the recipient's name and spec
    # 004's per-send overrides.
    context = models.JSONField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        indexes = [
            # A front end's latest message of an owner and template (spec 000's 422 rule).
            models.Index(
                fields=["owner_id", "template", "-created_at"], name="delivery_pair_latest"
            ),
            models.Index(fields=["status", "next_attempt_at"], name="delivery_sweep"),
            models.Index(fields=["account", "-created_at"], name="delivery_account_recent"),
            # The dispatcher's batch claim: due queued rows, oldest first.
            models.Index(fields=["created_at"], condition=models.Q(status="queued"),
                         name="delivery_queued"),
            # Scheduled rows by due time: the release tick reads only what is due (10,000
            # scheduled rows cost it nothing until then).
            models.Index(fields=["next_attempt_at"], condition=models.Q(status="scheduled"),
                         name="delivery_scheduled"),
            # Callbacks find deliveries by the provider's id: equality only (no _like copy).
            models.Index(fields=["provider_message_id"], name="delivery_provider_message"),
        ]

    def __str__(self) -> str:
        """What staff call it: "Email to ann@example.com, 3 Dec 14:02"."""
        from comms.wording import moment

        when = f", {moment(self.created_at)}" if self.created_at else ""
        return f"{CHANNEL_LABELS.get(self.channel, self.channel)} to {self.recipient}{when}"


class DeliveryEvent(models.Model):
    """One step of a delivery's timeline, named as spec 000's webhooks (``comms.sent``…)."""

    id = models.BigAutoField(primary_key=True)
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="events")
    name = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=Status.choices)
    correlation_id = models.CharField(max_length=128, null=True, blank=True)
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    # The provider's own event id: each provider event is recorded once.
    provider_event_id = models.CharField(max_length=255, null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["occurred_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["delivery", "provider_event_id"], name="delivery_event_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} @ {self.occurred_at:%Y-%m-%d %H:%M:%S}"


class Suppression(TimeStampedModel):
    """An address this account must not send to on a channel (a hard bounce, a drop, a spam
    report, an unsubscribe). Removing one keeps the row, with who removed it and why."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="suppressions")
    # The mode of the send that failed: a sandbox bounce never blocks a live send (test sends
    # honour both modes' suppressions, to rehearse what live would do).
    mode = models.CharField(max_length=8, choices=Delivery.Mode.choices, default="live")
    channel = models.CharField(max_length=16, choices=CHANNEL_CHOICES, default="email")
    address = models.CharField(max_length=254, help_text="Lower-cased.")
    reason = models.CharField(max_length=16, choices=Status.choices)
    # What it stops: "" every message (a bounce, a drop, a spam report), a template category's
    # topic (``event-updates``: an unsubscribe from it), or ``ALL_TOPICS`` every topic. Only
    # "" stops a transactional message (a ticket): an unsubscribe never does.
    topic = models.CharField(max_length=64, blank=True, default="")
    detail = models.TextField(blank=True)
    delivery = models.ForeignKey(Delivery, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")
    removed_at = models.DateTimeField(null=True, blank=True)
    removed_reason = models.TextField(blank=True)

    ALL_TOPICS = "*"

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "mode", "channel", "address", "topic"],
                                    condition=models.Q(removed_at__isnull=True),
                                    name="suppression_active_once_per_topic"),
        ]

    def __str__(self) -> str:
        return f"{self.address} ({self.reason})"


class OutboxMessage(Delivery):
    """The admin's view of what the embedded ``outbox`` provider would have sent."""

    class Meta:
        proxy = True
        verbose_name = "outbox message"


class CallbackBatch(models.Model):
    """A provider callback request stored raw before anything else: acknowledged at once,
    processed by a task, re-processable (events are deduplicated) if a worker dies."""

    id = models.BigAutoField(primary_key=True)
    provider = models.CharField(max_length=16)
    body = models.TextField()
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    events_total = models.PositiveIntegerField(default=0)
    events_applied = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        verbose_name_plural = "callback batches"
        indexes = [models.Index(fields=["processed_at", "received_at"], name="callback_pending")]

    def __str__(self) -> str:
        return f"{self.provider} batch {self.id}"


class Integration(UUIDModel):
    """One account's provider for one channel (other than email, which uses the platform's
    provider): its settings, its credentials encrypted at rest (``common.crypto``), and its
    place in the channel's failover order (lowest ``priority`` first)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="integrations")
    channel = models.CharField(max_length=16, choices=CHANNEL_CHOICES)
    provider = models.CharField("sending service", max_length=32)
    name = models.CharField(max_length=100, blank=True)
    priority = models.PositiveSmallIntegerField(
        default=0, help_text="Failover order: the lowest is tried first.")
    is_active = models.BooleanField(default=True)
    config = models.JSONField(default=dict, blank=True, help_text="Non-secret settings.")
    credentials_encrypted = models.TextField(blank=True, editable=False)

    class Meta:
        ordering = ["channel", "priority", "created_at"]
        indexes = [models.Index(fields=["account", "channel", "priority"],
                                name="integration_chain")]

    def __str__(self) -> str:
        return f"{self.channel}: {self.name or self.provider}"


class Dashboard(Delivery):
    """The admin's dashboard page (charts of sends and outcomes), scoped like deliveries."""

    class Meta:
        proxy = True
        verbose_name = "dashboard"
        verbose_name_plural = "dashboard"
