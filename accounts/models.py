from django.conf import settings
from django.db import models

from common.models import TimeStampedModel, UUIDModel


class Account(UUIDModel):
    """A tenant: every event, guest, template and delivery belongs to exactly one."""

    name = models.CharField(max_length=200)
    # Spec 000's "your account is verified for sending": set by createaccount, toggled in admin.
    verified_for_sending = models.BooleanField(default=False)
    subscription_key_hash = models.CharField(max_length=64, unique=True, null=True, blank=True)

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
