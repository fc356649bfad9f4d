"""Spec 003's emails: what was asked for (type, brand, token, group…) beside the Delivery that
carries the message through the pipeline and its lifecycle."""

from django.db import models

from accounts.models import Account
from common.models import TimeStampedModel
from comms.models import Delivery
from domains.models import Brand


class EmailType(models.TextChoices):
    TOKEN = "token"  # a purchase token and how many photos it gives
    GROUP = "group"  # directs the customer to a group
    TOKEN_AND_GROUP = "tokenAndGroup"  # both of the above
    PURCHASE = "purchase"  # an order confirmation (OrderId)


class Email(TimeStampedModel):
    """One message of ``POST /v1/Email/``. Its id is its Delivery's (the spec's MessageId);
    ``account`` and ``address`` are copies kept here for the history's indexes."""

    delivery = models.OneToOneField(Delivery, primary_key=True, on_delete=models.CASCADE,
                                    related_name="email")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    # RESTRICT: a brand with emails stays, unless its whole account is deleted.
    brand = models.ForeignKey(Brand, on_delete=models.RESTRICT, related_name="emails")
    type = models.CharField(max_length=16, choices=EmailType.choices)
    address = models.CharField(max_length=254, help_text="The recipient, lower-cased.")
    token = models.CharField(max_length=255, blank=True)
    group_id = models.CharField(max_length=255, blank=True)
    num_photos = models.IntegerField(null=True, blank=True, help_text="-1: unlimited.")
    order_id = models.UUIDField(null=True, blank=True)

    class Meta:
        # The history pages newest first on (created_at, delivery) with each filter's prefix.
        indexes = [
            models.Index(fields=["account", "-created_at", "-delivery"], name="email_history"),
            models.Index(fields=["account", "brand", "-created_at", "-delivery"],
                         name="email_history_brand"),
            models.Index(fields=["account", "address", "-created_at", "-delivery"],
                         name="email_history_address"),
        ]

    def __str__(self) -> str:
        return f"{self.type} email to {self.address}"
