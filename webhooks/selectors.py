"""Reads of customer webhooks, always scoped to one account."""

from django.db.models import QuerySet

from accounts.models import Account
from webhooks.models import Attempt, Endpoint, Message


def endpoints_live(*, account: Account) -> QuerySet[Endpoint]:
    """The account's endpoints that are not deleted (spec 004: at most one)."""
    return Endpoint.objects.filter(account=account, deleted_at__isnull=True)


def endpoint_current(*, account: Account) -> Endpoint | None:
    return endpoints_live(account=account).order_by("-created_at").first()


def endpoint_messages(*, endpoint: Endpoint, status: str | None = None) -> QuerySet[Message]:
    messages = Message.objects.filter(endpoint=endpoint).order_by("-created_at", "-id")
    return messages.filter(status=status) if status else messages


def endpoint_attempts(*, endpoint: Endpoint, limit: int = 20) -> list[Attempt]:
    return list(Attempt.objects.filter(endpoint=endpoint).select_related("message")[:limit])
