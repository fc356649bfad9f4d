import uuid

from django.db import models

from accounts.models import Account
from common.models import TimeStampedModel


class SenderDomain(TimeStampedModel):
    """A domain an account authenticates at the email provider to send from (spec 001).

    One per account; a domain belongs to one account. The integer primary key stands in for
    the spec's ``id`` where the provider has no integer id of its own (SES, dev).
    """

    account = models.OneToOneField(Account, on_delete=models.CASCADE,
                                   related_name="sender_domain")
    domain = models.CharField(max_length=253, unique=True,
                              help_text="Lowercase ASCII; internationalized names as xn--…")
    provider = models.CharField(max_length=16)
    provider_id = models.CharField(max_length=255, help_text="The provider's id for it.")
    # [{type, host, data, valid}] as the provider gave them; valid is the provider's view.
    dns_records = models.JSONField(default=list, blank=True)
    # [{host, type, found, seen, error}]: Herald's own lookups, per record.
    dns_checks = models.JSONField(default=list, blank=True)
    dns_checked_at = models.DateTimeField(null=True, blank=True)
    verified = models.BooleanField(default=False)
    enabled = models.BooleanField(default=False, help_text="Sends use this domain when set.")
    verified_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_result = models.TextField(blank=True)
    # Polling: due at next_check_at (null: not polled), backing off per attempt, until give_up_at.
    next_check_at = models.DateTimeField(null=True, blank=True, db_index=True)
    check_attempts = models.PositiveIntegerField(default=0)
    give_up_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["domain"]

    def __str__(self) -> str:
        return self.domain

    @property
    def public_id(self) -> int:
        """The spec's ``id``: the provider's integer id, else ours."""
        return int(self.provider_id) if self.provider_id.isdigit() else self.pk


class SenderDomainEvent(models.Model):
    """One change of a sender domain (created, verified, enabled, disabled, gave up…)."""

    class Name(models.TextChoices):
        CREATED = "created"  # authenticated at the provider, records to publish
        CHECKED = "checked"  # a validation found records still missing
        VERIFIED = "verified"  # the provider validated every record (first time)
        ENABLED = "enabled"  # sends route through the domain
        DISABLED = "disabled"  # sends use the platform sender again
        GAVE_UP = "gave_up"  # polling stopped; "Validate now" restarts it

    sender_domain = models.ForeignKey(SenderDomain, on_delete=models.CASCADE,
                                      related_name="events")
    name = models.CharField(max_length=16, choices=Name.choices)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.name} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class Brand(TimeStampedModel):
    """A sender identity of an account: the From name and address of its mail.

    Used only while its address is at the account's verified and enabled domain; the
    platform default sender otherwise. ``templates`` maps spec 003's email types to
    MessageTemplate ids (``{"token": "<template id>"}``); a missing type uses Herald's default.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="brands")
    # The public id: spec 003's ``BrandId`` (the integer pk stays internal).
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100)
    from_name = models.CharField(max_length=200, blank=True)
    from_email = models.EmailField(max_length=254)
    is_default = models.BooleanField(default=False)
    templates = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["account", "name"]
        constraints = [
            models.UniqueConstraint(fields=["account"], condition=models.Q(is_default=True),
                                    name="brand_one_default_per_account"),
            models.UniqueConstraint(fields=["account", "name"], name="brand_name_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} <{self.from_email}>"
