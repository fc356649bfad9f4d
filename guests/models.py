import uuid

from django.db import models

from accounts.models import Account
from common.models import TimeStampedModel


class Event(TimeStampedModel):
    """The occasion guests attend (a concert, a conference day)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="events")
    name = models.CharField(max_length=200)
    venue = models.CharField(max_length=200, blank=True)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class Attendee(TimeStampedModel):
    """A guest of an event. ``id`` is the caller's GUID and the idempotency key of spec 000."""

    id = models.UUIDField(primary_key=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="attendees")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="attendees")
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    email = models.EmailField(max_length=254)
    correlation_id = models.CharField(max_length=128, blank=True, null=True)

    class Meta:
        indexes = [models.Index(fields=["account", "email"])]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name} <{self.email}>".strip()
