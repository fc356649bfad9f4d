"""One-click unsubscribe (RFC 8058) and the preferences page, for emails whose template has
a topic (``MessageTemplate.category`` other than transactional).

A link's token names one recipient of one account, in one key mode, and the topic of the
email it came in: ``<payload>.<timestamp>.<signature>``, signed with the server's key (salted
for this use), so it is the only key to the page (no login, nothing to enumerate) and a token
altered in any part, or older than ``HERALD_UNSUBSCRIBE_LINK_DAYS``, is refused. Unsubscribes
are topic-scoped ``Suppression`` rows (``Suppression.ALL_TOPICS`` for every topic), which the
pipeline reads (``comms.selectors.suppression_topics``): they never stop a transactional
message. The same rows take a provider's unsubscribes (``comms.lifecycle``)."""

import base64
import binascii
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core import signing
from django.db import connection, transaction
from django.utils import timezone

from comms.models import Delivery, Status, Suppression
from templates.categories import topics_of
from templates.models import TRANSACTIONAL
from webhooks.services import webhooks_emit_account_event

_SIGNER = signing.TimestampSigner(salt="herald.unsubscribe.v1", sep=".")
_MODES = {"l": Delivery.Mode.LIVE, "t": Delivery.Mode.TEST}
MAX_TOKEN_LENGTH = 1000
ONE_CLICK = "List-Unsubscribe=One-Click"


@dataclass(frozen=True)
class Recipient:
    """Whom a link speaks for: an address of an account in a key mode, and the topic of the
    email the link came in ("" for a transactional email's link: preferences only)."""

    account_id: uuid.UUID
    mode: str
    address: str
    topic: str = ""


class LinkRefused(Exception):
    """A token that is not one of ours (forged, altered, cut): nothing is changed."""

    status = 404
    message = ("This link is not valid. Use the unsubscribe link of a recent email from the "
               "sender, as it came.")


class LinkExpired(LinkRefused):
    """One of ours, older than ``HERALD_UNSUBSCRIBE_LINK_DAYS``."""

    status = 400
    message = ("This link has expired. Use the unsubscribe link of a more recent email from "
               "the sender.")


# --- tokens and links -----------------------------------------------------------------------

def token_make(recipient: Recipient) -> str:
    """The recipient's token: its account (16 bytes), mode, topic and address, base64url."""
    account = _b64(recipient.account_id.bytes)
    mode = recipient.mode[0]
    payload = "|".join([account, mode, recipient.topic, recipient.address.strip().lower()])
    return _SIGNER.sign(_b64(payload.encode()))


def token_read(token: Any) -> Recipient:
    """The recipient a token names; ``LinkRefused`` / ``LinkExpired`` otherwise. The
    signature is checked before anything of the payload is read."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise LinkRefused
    try:
        value = _SIGNER.unsign(token, max_age=timedelta(
            days=settings.HERALD_UNSUBSCRIBE_LINK_DAYS))
    except signing.SignatureExpired:
        raise LinkExpired from None
    except signing.BadSignature:
        raise LinkRefused from None
    try:
        account, mode, topic, address = _unb64(value).decode().split("|", 3)
        return Recipient(uuid.UUID(bytes=_unb64(account)), _MODES[mode], address, topic)
    except (ValueError, KeyError, binascii.Error):
        raise LinkRefused from None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def link(token: str) -> str:
    """The page's address on ``HERALD_PUBLIC_BASE_URL``: GET the preferences, POST one-click."""
    return f"{settings.HERALD_PUBLIC_BASE_URL}/u/{token}"


def topic_of(delivery: Delivery) -> str:
    """The delivery's topic: its template's category; "" when transactional or untemplated."""
    category = delivery.template.category if delivery.template_id else TRANSACTIONAL
    return "" if category == TRANSACTIONAL else category


def recipient_of(delivery: Delivery) -> Recipient:
    return Recipient(delivery.account_id, delivery.mode, delivery.recipient, topic_of(delivery))


# --- what a message carries -----------------------------------------------------------------

def render_tokens(delivery: Delivery) -> dict[str, Any]:
    """The tokens an email's template may use: ``unsubscribe_url`` (a topic email's; empty on
    a transactional one, which cannot be unsubscribed from) and ``preferences_url`` (every
    email's: the same page, at its choices). Empty on other channels (a link unsubscribes an
    email address)."""
    if delivery.channel != "email":
        return {"unsubscribe_url": "", "preferences_url": ""}
    recipient = recipient_of(delivery)
    url = link(token_make(recipient))
    return {"unsubscribe_url": url if recipient.topic else "",
            "preferences_url": f"{url}#preferences"}


def email_headers(delivery: Delivery) -> tuple[tuple[str, str], ...]:
    """``List-Unsubscribe`` and ``List-Unsubscribe-Post`` (RFC 8058) for a topic email; none
    for a transactional one. The mailto: is there when ``HERALD_UNSUBSCRIBE_MAILTO`` names a
    mailbox the operator reads (Herald reads no inbound mail)."""
    recipient = recipient_of(delivery)
    if delivery.channel != "email" or not recipient.topic:
        return ()
    token = token_make(recipient)
    targets = [f"<{link(token)}>"]
    if settings.HERALD_UNSUBSCRIBE_MAILTO:
        subject = quote(f"unsubscribe {token}")
        targets.append(f"<mailto:{settings.HERALD_UNSUBSCRIBE_MAILTO}?subject={subject}>")
    return (("List-Unsubscribe", ", ".join(targets)),
            ("List-Unsubscribe-Post", ONE_CLICK))


# --- unsubscribes and resubscribes ----------------------------------------------------------

@dataclass(frozen=True)
class Unsubscribe:
    """One unsubscribe to record: ``topic`` a topic, or ``Suppression.ALL_TOPICS``."""

    account_id: Any
    mode: str
    address: str
    topic: str
    detail: str = ""
    delivery_id: Any = None


_UNSUBSCRIBE_SQL = (
    "INSERT INTO {table} (account_id, mode, channel, address, topic, reason, detail,"
    " delivery_id, removed_reason, created_at, updated_at)"
    " SELECT a, m, 'email', lower(trim(e)), t, %s, d, v, '', now(), now()"
    " FROM json_to_recordset(%s::json) AS r(a uuid, m text, e text, t text, d text, v uuid)"
    " ON CONFLICT DO NOTHING RETURNING account_id, mode, address, topic"
)


def unsubscribes_record(items: Iterable[Unsubscribe]) -> int:
    """Record unsubscribes in one statement; one already in force is left as it is (so a
    replayed one-click changes nothing). Each new one goes to the account's webhook as
    ``recipient.unsubscribed`` {email, topic, mode}. Returns how many were new."""
    records = [{"a": str(i.account_id), "m": i.mode, "e": i.address, "t": i.topic,
                "d": i.detail[:2000], "v": str(i.delivery_id) if i.delivery_id else None}
               for i in items]
    if not records:
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_UNSUBSCRIBE_SQL.format(table=Suppression._meta.db_table),
                       [Status.UNSUBSCRIBED, json.dumps(records)])
        new = cursor.fetchall()
        for account_id, mode, address, topic in new:
            _emit(account_id, "recipient.unsubscribed", address, topic, mode)
    return len(new)


def resubscribes_record(*, account_id: Any, mode: str, address: str, topics: Iterable[str],
                        reason: str) -> int:
    """Lift the address's unsubscribes from ``topics`` (the rows stay, with ``reason``); each
    lifted one goes to the webhook as ``recipient.resubscribed``. A bounce's suppression
    (topic "") is not an unsubscribe and is never lifted here. Returns how many were lifted."""
    topics = [t for t in topics if t]
    with transaction.atomic():
        rows = list(Suppression.objects.select_for_update().filter(
            account_id=account_id, mode=mode, channel="email",
            address=address.strip().lower(), topic__in=topics, removed_at__isnull=True))
        Suppression.objects.filter(id__in=[r.id for r in rows]).update(
            removed_at=timezone.now(), removed_reason=reason, updated_at=timezone.now())
        for row in rows:
            _emit(account_id, "recipient.resubscribed", row.address, row.topic, mode)
    return len(rows)


def _emit(account_id: Any, event_type: str, address: str, topic: str, mode: str) -> None:
    webhooks_emit_account_event(account_id=account_id, event_type=event_type, mode=mode,
                                data={"email": address, "topic": topic, "mode": mode})


def one_click(recipient: Recipient) -> bool:
    """RFC 8058's POST: unsubscribe from the link's topic at once (a transactional email's
    link: from every topic). True if it was new; a replay is harmless."""
    return unsubscribes_record([Unsubscribe(
        recipient.account_id, recipient.mode, recipient.address,
        recipient.topic or Suppression.ALL_TOPICS, "One-click unsubscribe")]) > 0


# --- the preferences page -------------------------------------------------------------------

@dataclass(frozen=True)
class Preferences:
    """What the page shows: each topic and whether the address still gets it, and whether
    it stopped every topic."""

    topics: list[tuple[str, bool]]
    all_topics: bool


def preferences_of(recipient: Recipient) -> Preferences:
    """The account's topics (its templates', the link's, and any the address unsubscribed
    from, a provider's included) and the address's unsubscribes in the link's mode."""
    stopped = _unsubscribed(recipient)
    topics = set(topics_of(account_id=recipient.account_id)) | {recipient.topic} | stopped
    topics -= {"", Suppression.ALL_TOPICS}
    return Preferences([(t, t not in stopped) for t in sorted(topics)],
                       Suppression.ALL_TOPICS in stopped)


def preferences_save(*, recipient: Recipient, wanted: Iterable[str], all_topics: bool) -> None:
    """The page's form: the topics shown and not in ``wanted`` are unsubscribed, the others
    resubscribed; ``all_topics`` stops every topic (else lifts that)."""
    shown = {t for t, _ in preferences_of(recipient).topics}
    stop = (shown - set(wanted)) | ({Suppression.ALL_TOPICS} if all_topics else set())
    stopped = _unsubscribed(recipient)
    with transaction.atomic():
        unsubscribes_record([
            Unsubscribe(recipient.account_id, recipient.mode, recipient.address, topic,
                        "Preferences page") for topic in sorted(stop - stopped)])
        resubscribes_record(
            account_id=recipient.account_id, mode=recipient.mode, address=recipient.address,
            topics=(shown | {Suppression.ALL_TOPICS}) - stop,
            reason="Resubscribed on the preferences page")


def _unsubscribed(recipient: Recipient) -> set[str]:
    return set(Suppression.objects.filter(
        account_id=recipient.account_id, mode=recipient.mode, channel="email",
        address=recipient.address.strip().lower(), removed_at__isnull=True,
    ).exclude(topic="").values_list("topic", flat=True))


def topic_words(topic: str) -> str:
    """A suppression's scope in words, for the admin: "Every message" (a bounce),
    "Unsubscribed from every topic", "Unsubscribed from event-updates"."""
    if not topic:
        return "Every message"
    if topic == Suppression.ALL_TOPICS:
        return "Unsubscribed from every topic"
    return f"Unsubscribed from {topic}"
