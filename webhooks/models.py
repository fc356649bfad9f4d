"""Outgoing webhooks: one endpoint per account, a message per event, an attempt per try."""

from django.db import models
from django.db.models import Q

from accounts.models import Account
from common.models import TimeStampedModel, UUIDModel


class Endpoint(UUIDModel):
    """Where an account receives its webhooks (spec 004: one per account). Soft-deleted."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.CharField(max_length=2048)
    description = models.CharField(max_length=500, blank=True)
    enabled_events = models.JSONField(default=list)
    # Test keys' (sandbox) deliveries produce events too; they reach the endpoint only when it
    # opted in (their payloads say ``"mode": "test"``), so a rehearsal never looks live.
    include_test_events = models.BooleanField(default=False)
    # Fernet-encrypted ``whsec_…`` secrets (common.signing); the raw value is shown at creation.
    secret_encrypted = models.TextField(editable=False)
    # After a rotation the old secret keeps signing beside the new one until it expires.
    previous_secret_encrypted = models.TextField(blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=255, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    # Start of the current run of failed attempts (cleared by a success): 5 days → disabled.
    failing_since = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account"], condition=Q(deleted_at__isnull=True),
                name="webhook_endpoint_one_per_account",
            ),
        ]

    def __str__(self) -> str:
        return self.url


class Message(TimeStampedModel):
    """One event to send to one endpoint; ``webhook_id`` (``msg_…``) is its Standard Webhooks id."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"  # waiting for its (next) attempt
        SENDING = "sending", "Being sent"  # claimed by a worker, HTTP request in flight
        SUCCEEDED = "succeeded", "Received"  # the receiver answered 2xx
        # retries exhausted, endpoint disabled or gone
        FAILED = "failed", "Failed: no more tries"

    id = models.BigAutoField(primary_key=True)
    webhook_id = models.CharField(max_length=40, unique=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="webhook_messages")
    # endpoint and delivery_event: no index of their own, webhook_message_ep and
    # webhook_message_once lead with them (one index fewer to write per message, twice).
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="messages",
                                 db_index=False)
    delivery_event = models.ForeignKey(
        "comms.DeliveryEvent", on_delete=models.SET_NULL, null=True, blank=True,
        related_name="webhook_messages", db_index=False,
    )
    event_type = models.CharField(max_length=64)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Tries since (re)queued.")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["delivery_event", "endpoint", "event_type"], name="webhook_message_once",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhook_message_sweep"),
            models.Index(fields=["endpoint", "status", "created_at"], name="webhook_message_ep"),
        ]

    def __str__(self) -> str:
        # Not its status: shown beside its attempts, a "(succeeded)" read as theirs.
        return f"{self.event_type} {self.webhook_id}"


class Attempt(models.Model):
    """One HTTP try of a message: what the receiver said, or why nothing was said."""

    id = models.BigAutoField(primary_key=True)
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attempt_log")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="attempts")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    url = models.CharField(max_length=2048)
    status_code = models.PositiveSmallIntegerField("HTTP status", null=True, blank=True)
    duration_ms = models.PositiveIntegerField("duration (ms)", default=0)
    response_body = models.TextField(blank=True, help_text="The first KB of the response.")
    error = models.TextField(blank=True)
    succeeded = models.BooleanField("this attempt succeeded", default=False)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        """This attempt's own outcome: "HTTP 500 · failed", "No answer · failed"."""
        answer = f"HTTP {self.status_code}" if self.status_code else "No answer"
        return f"{answer} · {'succeeded' if self.succeeded else 'failed'}"
