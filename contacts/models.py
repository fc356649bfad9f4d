"""Contacts of spec 004: the people an account notifies, found by any of their identifiers."""

from django.db import models

from accounts.models import Account
from common.models import TimeStampedModel, UUIDModel

# The identifiers a contact can be found by (besides its uuid), each unique per account.
IDENTIFIERS = ("email", "phone", "external_id", "slack", "telegram", "discord")


class Contact(UUIDModel):
    """A recipient. ``id`` is the spec's ``uuid``; identifiers are unique per account; the
    fields the spec does not name live in ``meta`` (camelCased keys)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="contacts")
    email = models.CharField(max_length=254, null=True, blank=True, help_text="Lower-cased.")
    phone = models.CharField(max_length=16, null=True, blank=True, help_text="E.164.")
    external_id = models.CharField(max_length=255, null=True, blank=True)
    name = models.CharField(max_length=255, blank=True)
    avatar = models.URLField(max_length=2048, blank=True)
    username = models.CharField(max_length=255, blank=True)
    slack = models.CharField(max_length=64, null=True, blank=True)
    telegram = models.CharField(max_length=64, null=True, blank=True)
    discord = models.CharField(max_length=64, null=True, blank=True)
    meta = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", name], name=f"contact_{name}_once",
                                    condition=models.Q(**{f"{name}__isnull": False}))
            for name in IDENTIFIERS
        ]
        indexes = [models.Index(fields=["account", "-created_at"], name="contact_recent")]

    def __str__(self) -> str:
        return self.name or self.email or self.phone or self.external_id or str(self.id)


class PushToken(TimeStampedModel):
    """A device of a contact. Removed when the push service says the token is dead."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="push_tokens")
    token = models.CharField(max_length=512)
    provider = models.CharField("push service", max_length=16,
                                help_text="Expo or FCM, from the token's shape.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["contact", "token"], name="push_token_once"),
        ]

    def __str__(self) -> str:
        return self.token[:32]
