"""Writes of contacts: upsert by any identifier (safe under concurrency), update, GDPR delete,
push tokens."""

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Replace
from django.utils import timezone

from accounts.models import Account
from common.errors import Conflict, HeraldError
from comms.models import Delivery, DeliveryEvent
from comms.services import owner_type_id
from contacts.identifiers import (
    ContactInput,
    contact_input_parse,
    meta_merge,
    push_token_provider,
)
from contacts.models import IDENTIFIERS, Contact, PushToken
from emails.models import Email
from webhooks.models import Message

UPSERT_TRIES = 3
ERASED = "erased"


def _need_identifier() -> HeraldError:
    return HeraldError("VALIDATION_ERROR", "At least one identifier is required: email, "
                       "phone, externalId, slack, telegram or discord.", status=400)


def _identifier_conflict() -> Conflict:
    return Conflict("CONFLICT", "These identifiers belong to different contacts.")


def _apply(contact: Contact, given: ContactInput) -> None:
    for name, value in given.fields.items():
        setattr(contact, name, value)
    if given.meta:
        contact.meta = meta_merge(contact.meta or {}, given.meta)
    if not any(getattr(contact, name) for name in IDENTIFIERS):
        raise _need_identifier()


def _push_token_ensure(contact: Contact, token: str | None) -> None:
    if token:
        PushToken.objects.get_or_create(contact=contact, token=token,
                                        defaults={"provider": push_token_provider(token)})


def _quota_check(account: Account) -> None:
    """Locks the account row first, so concurrent creates cannot overshoot the quota."""
    quota = Account.objects.select_for_update().values_list(
        "contact_quota", flat=True).get(pk=account.pk)
    if quota is not None and Contact.objects.filter(account_id=account.pk).count() >= quota:
        raise HeraldError("QUOTA_EXCEEDED", f"Contact quota reached ({quota} contacts).",
                          status=402)


def _named_by(given: ContactInput) -> Q:
    match = Q()
    for name, value in given.identifiers.items():
        match |= Q(**{name: value})
    return match


def _upsert_once(account: Account, given: ContactInput) -> tuple[Contact, bool]:
    found = list(Contact.objects.select_for_update().filter(
        _named_by(given), account=account)[:2])
    if len(found) > 1:
        raise _identifier_conflict()
    created = not found
    if created:
        _quota_check(account)
    contact = found[0] if found else Contact(account=account, meta={})
    _apply(contact, given)
    contact.save()
    _push_token_ensure(contact, given.push_token)
    return contact, created


def contact_upsert(*, account: Account, data: dict[str, Any]) -> tuple[Contact, bool]:
    """Create the contact, or update the one any given identifier already names (409 if they
    name two). ``data`` uses the API's names; unknown fields merge into ``meta``, camelCased.
    Live keys only: a test key writes no contact (``contact_rehearsal``).

    Two requests racing on a new identifier both miss it; the loser's insert hits the
    conditional unique constraint inside its savepoint and looks again, finding the winner.
    """
    given = contact_input_parse(data)
    if not given.identifiers:
        raise _need_identifier()
    for attempt in range(UPSERT_TRIES):
        try:
            with transaction.atomic():
                return _upsert_once(account, given)
        except IntegrityError:
            if attempt == UPSERT_TRIES - 1:
                raise _identifier_conflict() from None
    raise AssertionError("unreachable")


def contact_rehearsal(*, account: Account, data: dict[str, Any]) -> Contact:
    """A test key's recipient, written nowhere: the existing contact any given identifier
    names, read as it is (the entry's other fields and push token ignored; 409 if they name
    two), else a transient contact made of the entry, never saved — no row for a live send to
    find later, nothing counted against the contact quota. Its push token, if given, is in
    ``rehearsal_push_tokens``; ``_state.adding`` tells it from a stored one."""
    given = contact_input_parse(data)
    if not given.identifiers:
        raise _need_identifier()
    found = list(Contact.objects.filter(_named_by(given), account=account)[:2])
    if len(found) > 1:
        raise _identifier_conflict()
    if found:
        return found[0]
    contact = Contact(account=account, meta={})
    _apply(contact, given)
    contact.rehearsal_push_tokens = [given.push_token] if given.push_token else []
    return contact


def contact_update(*, contact: Contact, data: dict[str, Any]) -> Contact:
    """PATCH: only the given fields change (meta keys merge; a null removes one). An
    identifier another contact already has is a 409; a contact keeps at least one."""
    given = contact_input_parse(data)
    try:
        with transaction.atomic():
            locked = Contact.objects.select_for_update().get(pk=contact.pk)
            taken = Q()
            for name, value in given.identifiers.items():
                taken |= Q(**{name: value})
            if taken and Contact.objects.filter(taken, account_id=locked.account_id).exclude(
                    pk=locked.pk).exists():
                raise _identifier_conflict()
            _apply(locked, given)
            locked.save()
            _push_token_ensure(locked, given.push_token)
    except IntegrityError:
        raise _identifier_conflict() from None
    return locked


@transaction.atomic
def contact_delete(*, contact: Contact) -> None:
    """Hard delete (GDPR): the contact, its push tokens, and the personal data its deliveries
    hold. The deliveries stay, with their statuses and times, for the account's statistics.

    Suppressions are kept on purpose: an address that bounced or complained must stay
    unmailed even after its contact is gone (re-creating the contact must not re-enable it).
    """
    deliveries = _deliveries_of(contact.id)
    # Not yet sent: never sent now. A worker holding one loses its claim (every later write
    # of it is guarded by the claim token), so it cannot write the content back either.
    deliveries.filter(status__in=["queued", "sending"]).update(
        status="failed", claimed_at=None, failure_type="erased", failed_at=timezone.now(),
        failure_reason="Not sent: the contact was deleted (GDPR erasure).")
    _webhook_payloads_erase(deliveries)
    DeliveryEvent.objects.filter(delivery__in=deliveries).update(detail={}, correlation_id=None)
    Email.objects.filter(delivery__in=deliveries).update(address=ERASED)
    # Every right-hand side reads the row as it was, so the failure text loses the address.
    deliveries.update(failure_reason=Replace(F("failure_reason"), F("recipient"), Value(ERASED)),
                      recipient=ERASED, subject="", html_body="", text_body="", context=None,
                      correlation_id=None, owner_type=None, owner_id=None, refs=None)
    contact.delete()


def contact_deliveries_detach(*, contact_id: Any) -> int:
    """The deliveries of a contact deleted any other way than ``contact_delete`` (the admin's
    bulk delete, an account's cascade) stay, with their content, and point at nothing: as the
    former foreign key's ``SET NULL`` did. Connected to ``Contact``'s ``post_delete``
    (``contacts.apps``); after ``contact_delete`` it finds nothing left. Returns how many."""
    return _deliveries_of(contact_id).update(owner_type=None, owner_id=None, refs=None)


def _deliveries_of(contact_id: Any):
    """A contact's deliveries: owned by a contact (``owner_type``) with this id."""
    return Delivery.objects.filter(owner_type_id=owner_type_id(Contact), owner_id=contact_id)


def _webhook_payloads_erase(deliveries) -> None:
    """Webhook messages about these deliveries: the address (``comms.*``'s ``data.email``) and
    the caller's reference (``correlationId`` / ``request_id``) are erased; the rest stays,
    so a pending message still goes out and the attempt log still reads."""
    messages = Message.objects.filter(delivery_event__delivery__in=deliveries).only("payload")
    batch = []
    for message in messages.iterator(chunk_size=500):
        payload = message.payload if isinstance(message.payload, dict) else {}
        data = payload.get("data")
        if isinstance(data, dict):
            data.update({k: ERASED if k == "email" else None
                         for k in ("email", "correlationId") if k in data})
        if "request_id" in payload:
            payload["request_id"] = None
        batch.append(message)
    Message.objects.bulk_update(batch, ["payload"], batch_size=500)


def push_token_add(*, contact: Contact, token: str) -> PushToken:
    """Adds a device (once); the provider is told by the token's shape (400 otherwise)."""
    provider = push_token_provider(token)
    try:
        with transaction.atomic():
            row, _ = PushToken.objects.get_or_create(contact=contact, token=token,
                                                     defaults={"provider": provider})
    except IntegrityError:  # a concurrent add of the same token won
        row = PushToken.objects.get(contact=contact, token=token)
    return row


def push_token_remove(*, contact: Contact, token: str) -> bool:
    """Removes a device; removing a token the contact does not have is not an error."""
    return PushToken.objects.filter(contact=contact, token=token).delete()[0] > 0


def push_tokens_remove_dead(*, account_id: Any, token: str) -> int:
    """The push service says ``token`` is unregistered: it leaves every contact of the account."""
    _, per_model = PushToken.objects.filter(contact__account_id=account_id, token=token).delete()
    return per_model.get(PushToken._meta.label, 0)
