"""Reads of contacts: find by any identifier, the account's list."""

from django.db.models import Prefetch, Q, QuerySet

from accounts.models import Account
from contacts.identifiers import identifier_candidates
from contacts.models import Contact, PushToken


def contacts_with_tokens(queryset: QuerySet) -> QuerySet:
    """Push tokens prefetched in the order they were added (the contact JSON's list)."""
    return queryset.prefetch_related(
        Prefetch("push_tokens", queryset=PushToken.objects.order_by("created_at", "id")))


def contact_find(*, account: Account, identifier: str) -> Contact | None:
    """The account's contact that ``identifier`` names: its uuid, email (any case), E.164
    phone, external id or Slack user id, tried in that order, in one query."""
    candidates = identifier_candidates(identifier) if isinstance(identifier, str) else []
    if not candidates:
        return None
    match = Q()
    for name, value in candidates:
        match |= Q(**{name: value})
    rows = list(Contact.objects.filter(match, account=account)[:len(candidates)])
    for name, value in candidates:  # an id beats an email beats a phone…
        for row in rows:
            if getattr(row, name) == value:
                return row
    return None


def contacts_list(*, account: Account, search: str = "") -> QuerySet:
    """Newest first (ties by id, so pages are stable); ``search`` is a case-insensitive
    substring of the email, name or phone."""
    contacts = Contact.objects.filter(account=account)
    if search:
        contacts = contacts.filter(Q(email__icontains=search) | Q(name__icontains=search)
                                   | Q(phone__icontains=search))
    return contacts.order_by("-created_at", "-id")
