from django.conf import settings
from django.db import models
from django.utils import timezone

from common.models import TimeStampedModel, UUIDModel


class Account(UUIDModel):
    """A tenant: every event, guest, template and delivery belongs to exactly one."""

    name = models.CharField(max_length=200)
    # Spec 000's "your account is verified for sending": set by createaccount, toggled in admin.
    verified_for_sending = models.BooleanField(default=False)
    subscription_key_hash = models.CharField(max_length=64, unique=True, null=True, blank=True)
    # Spec 004's "contact quota reached" (402): creating a contact beyond it is refused.
    contact_quota = models.PositiveIntegerField(null=True, blank=True, help_text="None: unlimited")
    # Spec 004's "Rate Limits": per API key and second, and deliveries per UTC day, by key
    # mode. Empty: the HERALD_RATE_LIMIT_* / HERALD_DAILY_QUOTA_* setting; 0: no limit.
    rate_limit_live = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per second per live key; empty: the default")
    rate_limit_test = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per second per test key; empty: the default")
    daily_quota_live = models.PositiveIntegerField(
        null=True, blank=True, help_text="Live deliveries per UTC day; empty: the default")
    daily_quota_test = models.PositiveIntegerField(
        null=True, blank=True, help_text="Test deliveries per UTC day; empty: the default")
    # Reminders are not sent between these times, read in each event's own time zone: one
    # falling inside is moved to the end (``guests.reminders``). Both empty: no quiet hours.
    quiet_hours_start = models.TimeField(
        null=True, blank=True, help_text="Reminders wait from this time (the event's local "
                                         "time) …")
    quiet_hours_end = models.TimeField(
        null=True, blank=True, help_text="… until this time. E.g. 21:00 to 08:00.")

    def __str__(self) -> str:
        return self.name


class Membership(TimeStampedModel):
    class Role(models.TextChoices):
        OWNER = "owner"  # manages everything of the account
        STAFF = "staff"  # runs events, guests and templates
        SUPPORT = "support"  # looks up guests and resends tickets

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.STAFF)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "account"], name="membership_unique"),
        ]

    def __str__(self) -> str:
        """How the admin names the row: "olivia (owner)", not "Membership object (1)"."""
        return f"{self.user.get_username()} ({self.get_role_display().lower()})"


class ApiKey(TimeStampedModel):
    """An API key, stored as the SHA-256 of its 32 random bytes; shown once at creation."""

    class Mode(models.TextChoices):
        LIVE = "live"  # sends through the configured provider
        TEST = "test"  # sends through the sandbox provider, never reaches a real inbox

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    mode = models.CharField(max_length=8, choices=Mode.choices)
    is_admin = models.BooleanField(default=False)
    prefix = models.CharField(max_length=16, help_text="The first characters, to recognise a key.")
    key_hash = models.CharField(max_length=64, unique=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class IdempotentRequest(models.Model):
    """A POST made with an idempotency key and, once it has finished, its response.

    The unique (account, mode, key) row is the claim: whoever inserts it runs the request;
    a retry finds it and replays the stored response. Kept HERALD_IDEMPOTENCY_TTL_SECONDS.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    mode = models.CharField(max_length=8, choices=ApiKey.Mode.choices)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body")
    status = models.PositiveSmallIntegerField(null=True, help_text="None: still being processed")
    content_type = models.CharField(max_length=255, blank=True)
    body = models.BinaryField(blank=True, default=b"")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "mode", "key"],
                                    name="idempotent_request_once"),
        ]

    def __str__(self) -> str:
        return f"{self.mode} {self.key}"
