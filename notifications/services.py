"""Spec 004's send: ``POST /v1/send/{event}[/{channel}]`` → one queued Delivery per recipient
and channel, rendered by the worker with the event's template in the recipient's language.

Recipients given as an email, a phone or an object are upserted as contacts; a UUID or an
external id must name an existing contact (an unknown external id is created too). A test
key writes no contact: it rehearses with existing ones as they are, and with a transient
recipient (no row, no contact quota) for one that does not exist. A
recipient that lacks the identifier a channel needs, or a channel without an integration,
is reported in ``errors`` and sends nothing on that channel; the rest is sent.

A partial send is a success (``success`` says whether anything was queued, never whether
everything was): ``deliveries`` lists what was queued, ``errors`` each refused part with its
channel and recipient, so a caller sends only those parts again once it has fixed them, and
a retry of the whole request with its idempotency key replays the answer instead of sending.
"""

import re
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction

from accounts.models import ApiKey
from api.ratelimit import delivery_quota_check, delivery_quota_take
from common.errors import HeraldError
from common.headers import ONE_LINE, header_problem
from comms.channels import integration_chain
from comms.messages import Message
from comms.models import Delivery
from comms.services import messages_queue
from contacts.identifiers import contact_input_parse, email_normalize
from contacts.models import IDENTIFIERS, Contact, PushToken
from domains.names import email_domain
from templates.events import event_find, event_template
from templates.models import NotificationEvent

MAX_RECIPIENTS = 1000
# Where each channel's address lives on a contact (push: its tokens).
ADDRESS = {"email": "email", "sms": "phone", "whatsapp": "phone", "slack": "slack",
           "telegram": "telegram", "discord": "discord"}
OVERRIDE_KEYS = {"email": {"subject", "reply_to"}, "sms": {"sender_id"},
                 "push": {"title", "data"}, "slack": set(), "telegram": set(),
                 "whatsapp": set(), "discord": set()}


@dataclass(frozen=True)
class Refusal:
    """A part of a send that was not queued: every recipient on ``channel`` (``recipient``
    None), or one recipient on it. None of today's refusals can pass on an unchanged retry
    (an integration, a template or an address is missing): ``retryable`` is False."""

    code: str
    message: str
    channel: str
    recipient: str | None = None
    retryable: bool = False


@dataclass
class SendOutcome:
    deliveries: list[tuple[str, uuid.UUID]] = field(default_factory=list)
    errors: list[Refusal] = field(default_factory=list)


def _error(code: str, message: str, status: int = 400) -> HeraldError:
    return HeraldError(code, message, status=status)


@transaction.atomic  # a refused send (quota, bad recipient) leaves no upserted contact behind
def notification_send(*, key: ApiKey, event_identifier: str, to: Any,
                      payload: dict[str, Any] | None = None, language: str | None = None,
                      sender: str | None = None, channel: str | None = None,
                      overrides: dict[str, dict[str, Any]] | None = None,
                      send_at: datetime | None = None) -> SendOutcome:
    """``send_at``: a time still ahead makes every delivery ``scheduled`` until then."""
    account = key.account
    event = event_find(account=account, identifier=event_identifier, with_templates=True)
    if event is None:
        raise _error("EVENT_NOT_FOUND", f"Event '{event_identifier}' not found", 404)
    channels = _channels(event, channel)
    _check_overrides(overrides or {})
    shown = _sender_shown(account, _sender(account.id, sender) if sender else None)
    test_mode = key.mode == ApiKey.Mode.TEST
    entries = _entries(to)
    outcome = SendOutcome()
    usable: list[str] = []
    for name in channels:
        if name != "email" and not test_mode and not integration_chain(
                account_id=account.id, channel=name):
            outcome.errors.append(Refusal("INTEGRATION_MISSING",
                                          f"No {name} integration configured", name))
        else:
            usable.append(name)
    # Once per send, not per recipient: the templates and every recipient's push tokens.
    templates = {name: event_template(event=event, channel=name, language=language)
                 for name in usable}
    for name in [n for n in usable if templates[n] is None]:  # an event saved around checks
        usable.remove(name)
        outcome.errors.append(Refusal(
            "TEMPLATE_MISSING", f"Event '{event.identifier}' has no {name} template for "
            f"{language or 'its default'} language", name))
    if usable:  # before any write: a send over quota upserts no contact and locks nothing
        delivery_quota_check(api_key=key, count=_deliveries_at_least(entries, usable))
    recipients = _recipients(account, to, entries, test_mode=test_mode)
    tokens: dict[Any, list[str]] = defaultdict(list)
    if "push" in usable:
        stored = [c for c in recipients if not c._state.adding]
        for contact_id, token in PushToken.objects.filter(
                contact__in=stored).order_by("created_at").values_list("contact_id", "token"):
            tokens[contact_id].append(token)
        for contact in recipients:
            if contact._state.adding:  # a test key's transient recipient
                tokens[contact.id] = list(getattr(contact, "rehearsal_push_tokens", []))
    messages: list[Message] = []
    for contact in recipients:
        context = _context(account, contact, payload or {}, shown)  # once, for every channel
        owner = None if contact._state.adding else contact  # transient: none
        for name in usable:
            addresses = (tokens[contact.id] if name == "push"
                         else [a for a in [getattr(contact, ADDRESS[name])] if a])
            if not addresses:
                who = contact.email or contact.phone or contact.external_id or str(contact.id)
                outcome.errors.append(Refusal(
                    "MISSING_IDENTIFIER",
                    f"Contact {who} has no {ADDRESS.get(name, 'push token')} for {name}",
                    name, recipient=who if contact._state.adding else str(contact.id)))
                continue
            for address in addresses:
                messages.append(Message(
                    account_id=account.id, channel=name, recipient=address,
                    mode=Delivery.Mode.TEST if test_mode else Delivery.Mode.LIVE,
                    template_id=templates[name].id, event_name=event.identifier,
                    context=context, options=(overrides or {}).get(name) or None,
                    # Sent from it, under the name templates show.
                    sender=shown if name == "email" and sender else None,
                    owner=owner, refs={"contactId": str(owner.id)} if owner else None,
                    send_at=send_at))
    ids: list[uuid.UUID] = []
    if messages:
        delivery_quota_take(api_key=key, count=len(messages))
        ids = messages_queue(messages)
    outcome.deliveries = [(m.channel, i) for m, i in zip(messages, ids, strict=True)]
    return outcome


def _channels(event: NotificationEvent, forced: str | None) -> list[str]:
    if forced is None:
        return list(event.channels)
    if forced not in event.channels:
        raise _error("VALIDATION_ERROR",
                     f"channel: event '{event.identifier}' has no {forced} channel "
                     f"(it has {', '.join(event.channels)}).")
    return [forced]


def _check_overrides(overrides: dict[str, Any]) -> None:
    for name, values in overrides.items():
        if name not in OVERRIDE_KEYS or not isinstance(values, dict):
            raise _error("VALIDATION_ERROR", f"overrides.{name}: not a channel's overrides.")
        unknown = set(values) - OVERRIDE_KEYS[name]
        if unknown:
            raise _error("VALIDATION_ERROR",
                         f"overrides.{name}: unknown {', '.join(sorted(unknown))}.")
        for k, v in values.items():
            if k == "data":
                if not isinstance(v, dict):
                    raise _error("VALIDATION_ERROR", f"overrides.{name}.data: an object.")
            elif not (isinstance(v, str) and 0 < len(v) <= 998):
                raise _error("VALIDATION_ERROR", f"overrides.{name}.{k}: a short string.")
            elif k == "reply_to":
                values[k] = email_normalize(v)
            elif k == "subject" and header_problem(v):  # "Hello\nBcc: …" would add a header
                raise _error("VALIDATION_ERROR", f"overrides.{name}.subject: {ONE_LINE}")
            elif k == "sender_id" and not re.fullmatch(r"[A-Za-z0-9 ]{1,11}", v):
                raise _error("VALIDATION_ERROR", f"overrides.{name}.sender_id: 1-11 letters, "
                             "digits or spaces (an SMS sender id).")


def _sender(account_id: Any, sender: str) -> str:
    """``from`` must be at the account's verified and enabled sender domain."""
    from domains.models import SenderDomain

    address = email_normalize(sender)
    verified = SenderDomain.objects.filter(account_id=account_id, verified=True,
                                           enabled=True).values_list("domain", flat=True)
    if email_domain(address) not in set(verified):
        raise _error("UNVERIFIED_SENDER", f"Sender {address} is not verified", 403)
    return address


def _sender_shown(account, from_email: str | None) -> dict[str, str]:
    """Spec 004's ``sender``: the address an email of this send goes from and its display name.

    Without ``from``, the account's default brand at its verified domain, else the platform's
    sender (as the pipeline chooses). With ``from`` (already checked to be at the verified
    domain), the name of the account's brand that sends from that address, else of its default
    brand there, else the account's name; the email goes out under the same name.
    """
    from domains.models import Brand
    from domains.selectors import sender_for

    brand = sender_for(account_id=account.id)
    if from_email is None:
        email, name = brand or (settings.HERALD_DEFAULT_FROM_EMAIL,
                                settings.HERALD_DEFAULT_FROM_NAME)
        return {"name": name, "email": email}
    named = (Brand.objects.filter(account_id=account.id, from_email__iexact=from_email)
             .exclude(from_name="").order_by("-is_default", "name")
             .values_list("from_name", flat=True).first())
    return {"name": named or (brand[1] if brand and brand[1] else account.name),
            "email": from_email}


def _entries(to: Any) -> list[Any]:
    entries = to if isinstance(to, list) else [to]
    if not entries or len(entries) > MAX_RECIPIENTS:
        raise _error("VALIDATION_ERROR", f"to: between 1 and {MAX_RECIPIENTS} recipients.")
    return entries


def _deliveries_at_least(entries: list[Any], usable: list[str]) -> int:
    """The fewest deliveries this send can make, known without a query: with email among its
    channels, one per distinct address that names a contact by itself (a string, or an object
    whose only identifier is its email), since only an object giving an email beside another
    identifier, or clearing one, could move or take a contact's address (then: one)."""
    if "email" not in usable:
        return 1
    addresses = set()
    for entry in entries:
        try:
            if isinstance(entry, str) and "@" in entry:
                addresses.add(email_normalize(entry.strip()))
            elif isinstance(entry, dict):
                given = contact_input_parse(entry)
                if "email" in given.fields and set(given.identifiers) != {"email"}:
                    return 1
                if "email" in given.identifiers:
                    addresses.add(given.identifiers["email"])
        except HeraldError:
            continue  # refused with its own error once the recipients are read
    return max(1, len(addresses))


def _recipients(account, to: Any, entries: list[Any], *, test_mode: bool) -> list[Contact]:
    """Each ``to`` entry as a contact (upserted where the spec says so), in order, once. A
    test key's send writes no contact: an existing one is used as it is, an unknown
    recipient is a transient, unsaved contact (``contact_rehearsal``)."""
    from contacts.selectors import contact_find
    from contacts.services import contact_rehearsal, contact_upsert

    def resolve(*, account, data: dict[str, Any]) -> tuple[Contact, bool]:
        if test_mode:
            return contact_rehearsal(account=account, data=data), False
        return contact_upsert(account=account, data=data)

    contacts: dict[Any, Contact] = {}
    for index, entry in enumerate(entries):
        where = f"to[{index}]" if isinstance(to, list) else "to"
        if isinstance(entry, dict):
            contact, _ = resolve(account=account, data=entry)
        elif isinstance(entry, str) and entry.strip():
            contact = _by_string(account, entry.strip(), contact_find, resolve)
        else:
            raise _error("VALIDATION_ERROR",
                         f"{where}: an email, a phone, a contact id or an object.")
        contacts.setdefault(_recipient_key(contact), contact)
    return list(contacts.values())


def _recipient_key(contact: Contact) -> Any:
    """A stored contact by its id; a transient one (never saved) by its identifiers, so the
    same unknown address given twice is one recipient."""
    if not contact._state.adding:
        return contact.id
    return ("transient", *(getattr(contact, name) for name in IDENTIFIERS))


def _by_string(account, value: str, find, upsert) -> Contact:
    if "@" in value:
        return upsert(account=account, data={"email": value})[0]
    if value.startswith("+"):
        return upsert(account=account, data={"phone": value})[0]
    try:
        uuid.UUID(value)
    except ValueError:
        contact = find(account=account, identifier=value)
        return contact or upsert(account=account, data={"externalId": value})[0]
    contact = find(account=account, identifier=value)
    if contact is None:
        raise _error("NOT_FOUND", f"Contact {value} not found", 404)
    return contact


def _context(account, contact: Contact, payload: dict[str, Any],
             sender: dict[str, str]) -> dict[str, Any]:
    """What templates see: spec 004's ``contact``, ``payload``, ``app``, ``sender``, and the
    contact's ``name``/``email``/``phone`` at the top for ``{{name | Guest}}``."""
    person = {"uuid": "" if contact._state.adding else str(contact.id),  # transient: none
              "name": contact.name, "email": contact.email or "",
              "phone": contact.phone or "", "externalId": contact.external_id or "",
              "username": contact.username, "avatar": contact.avatar,
              "meta": contact.meta or {}}
    return {
        "contact": person, "payload": payload, "app": {"name": account.name},
        "sender": dict(sender),
        "name": contact.name, "email": contact.email or "", "phone": contact.phone or "",
    }
