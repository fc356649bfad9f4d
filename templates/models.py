import uuid

from django.db import models

from accounts.models import Account
from common.models import TimeStampedModel


class Channel(models.TextChoices):
    EMAIL = "email"  # the ticket / notification email


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
    # Bumped on every change, so caches of compiled templates key on (id, version).
    version = models.PositiveIntegerField(default=1)

    def __str__(self) -> str:
        return self.name
