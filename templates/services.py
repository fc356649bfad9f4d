"""Writes on message templates: every save compiles the template first."""

import difflib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from accounts.models import Account
from api.ratelimit import counters
from common.errors import Conflict, HeraldError
from comms.messages import Message
from comms.models import Delivery
from comms.services import account_check_can_send, message_queue
from templates.models import MessageTemplate, TemplateVersion
from templates.rendering import TemplateCompileError, template_check, unknown_names
from templates.samples import EVENT_KEYS, GUEST_TOKENS, SAMPLE, TOP_TOKENS


def _check(subject: str, html_body: str, text_body: str, fallback: bool = False) -> None:
    try:
        template_check(subject=subject, html_body=html_body, text_body=text_body,
                       fallback=fallback)
    except TemplateCompileError as exc:
        raise HeraldError(
            "template_syntax_error",
            f"{exc.field} does not compile{f' at line {exc.line}' if exc.line else ''}: "
            f"{exc.message}", status=400, fields={exc.field: exc.where.capitalize() + exc.message},
        ) from exc


def version_record(*, template: MessageTemplate, actor: str = "") -> None:
    """Keep this version's content and who saved it (once per version)."""
    TemplateVersion.objects.get_or_create(
        template=template, version=template.version,
        defaults={"subject": template.subject, "html_body": template.html_body,
                  "text_body": template.text_body, "changed_by": actor[:200]})


def template_create(*, account: Account, name: str, subject: str, html_body: str = "",
                    text_body: str = "", language: str = "en",
                    id: uuid.UUID | None = None, actor: str = "",
                    **kind: Any) -> MessageTemplate:
    """``kind``: what the message is, beside its content (``KIND_FIELDS``: its category, the
    ticket's attachments), defaulting to a transactional message without attachments."""
    _check(subject, html_body, text_body)
    try:
        with transaction.atomic():
            template = MessageTemplate.objects.create(
                id=id or uuid.uuid4(), account=account, name=name, subject=subject,
                html_body=html_body, text_body=text_body, language=language,
                **_kind(kind),
            )
            version_record(template=template, actor=actor)
            return template
    except IntegrityError:
        raise Conflict("id_conflict", "A template with this id already exists.") from None


@transaction.atomic
def template_update(*, template: MessageTemplate, name: str, subject: str, html_body: str = "",
                    text_body: str = "", language: str = "en",
                    actor: str = "", **kind: Any) -> MessageTemplate:
    """Replace the template's content and bump its version (renders cache on id + version).
    A notification event's template is checked as it renders: with ``{{name | Guest}}``.
    ``kind`` (``KIND_FIELDS``) not given stays as it is."""
    _check(subject, html_body, text_body, fallback=template.event_id is not None)
    MessageTemplate.objects.filter(id=template.id).update(
        name=name, subject=subject, html_body=html_body, text_body=text_body,
        language=language, version=F("version") + 1, updated_at=timezone.now(),
        **_kind(kind),
    )
    template.refresh_from_db()
    version_record(template=template, actor=actor)
    return template


# What a template is beside its content: transactional or a topic (one-click unsubscribe),
# and the ticket's attachments.
KIND_FIELDS = frozenset({"category", "attach_qr", "attach_ics"})


def _kind(fields: dict[str, Any]) -> dict[str, Any]:
    if unknown := set(fields) - KIND_FIELDS:
        raise TypeError(f"not a template's field: {', '.join(sorted(unknown))}")
    return fields


CONTENT_FIELDS = ("subject", "html_body", "text_body")  # what a version pins


def template_save(*, template: MessageTemplate, actor: str = "") -> MessageTemplate:
    """Save a template edited in the admin (already checked by its form) and keep the version.

    The row is locked and its content compared with the edit's: a different content is the
    next version, numbered from the locked row, so two staff saving the same template at once
    (or an API update committing while a form is open) get a version each, and a version's
    number always names one content — workers cache compiled templates per (id, version)."""
    with transaction.atomic():
        if template._state.adding:
            template.save()
        else:
            current = MessageTemplate.objects.select_for_update().get(id=template.id)
            changed = any(getattr(current, name) != getattr(template, name)
                          for name in CONTENT_FIELDS)
            template.version = current.version + 1 if changed else current.version
            template.save(update_fields=[
                field.name for field in template._meta.concrete_fields
                if not field.primary_key and field.name != "created_at"])
        version_record(template=template, actor=actor)
    return template


# How a test send from the admin is marked: a live delivery (a real inbox, through the
# account's provider) that belongs to no guest, so no event's or guest's figures count it, and
# carries TEST_SEND_REF in its refs (which no API caller can set: a correlation id can be), by
# which account-wide live figures leave it out (``without_test_sends``).
TEST_SEND_CORRELATION = "admin-test-send"
TEST_SEND_REF = "adminTestSend"


def without_test_sends(deliveries: QuerySet[Delivery]) -> QuerySet[Delivery]:
    """``deliveries`` but the admin's test sends (rows without refs included)."""
    return deliveries.filter(Q(refs__isnull=True) | ~Q(refs__has_key=TEST_SEND_REF))
TEST_SENDS_PER_MINUTE = 10  # per admin user: a test form is not a way to mail many people


class TestSendRefused(ValueError):
    """A test send that is not made: the message says why, in words for staff."""


def template_send_test(*, template: MessageTemplate, to: str,
                       context: Mapping[str, Any] | None = None,
                       user_id: Any = None) -> Delivery:
    """Send the template to ``to`` through the account's live email pipeline (a normal
    delivery, with its timeline), rendered with ``context`` (a guest's, from the admin) or the
    preview's sample data. Marked as a test (``TEST_SEND_CORRELATION``, no owner), so it never
    counts as a guest's or an event's send. ``user_id``: the admin user, held to
    ``TEST_SENDS_PER_MINUTE`` (``TestSendRefused`` past it, or for an invalid address)."""
    to = (to or "").strip()
    try:
        validate_email(to)
    except ValidationError:
        raise TestSendRefused(f"“{to}” is not an email address.") from None
    if template.channel != "email":
        raise TestSendRefused("Only email templates can be sent as a test.")
    if user_id is not None and counters.incr(f"testsend:user:{user_id}",
                                             expiry=60) > TEST_SENDS_PER_MINUTE:
        raise TestSendRefused(f"At most {TEST_SENDS_PER_MINUTE} test sends a minute: wait a "
                              "minute and send again.")
    try:
        account_check_can_send(account=template.account)  # as every send path
    except HeraldError as exc:
        raise TestSendRefused(str(exc)) from None
    with transaction.atomic():
        return message_queue(Message(
            account_id=template.account_id, template_id=template.id, mode=Delivery.Mode.LIVE,
            recipient=to, context=dict(context if context is not None else SAMPLE),
            correlation_id=TEST_SEND_CORRELATION,
            refs={TEST_SEND_REF: str(user_id) if user_id is not None else "admin"}))


@dataclass(frozen=True)
class UnknownToken:
    """A token a guest's template uses that no send fills in: it renders as nothing."""

    token: str  # as written: "fristName", "event.nmae"
    field: str  # "subject", "html_body" or "text_body": where it is first used
    suggestion: str | None  # the known token it is most likely a typo of

    @property
    def typo(self) -> bool:
        return self.suggestion is not None

    def __str__(self) -> str:
        said = f"Unknown token {self.token}"
        return f"{said} — did you mean {self.suggestion}?" if self.suggestion else (
            f"{said}: no guest message fills it in, so it shows as nothing.")


KNOWN_TOKENS = tuple(sorted(TOP_TOKENS - {"event"})) + tuple(
    sorted(f"event.{key}" for key in EVENT_KEYS))
PICKER_TOKENS = GUEST_TOKENS  # the admin's token picker


def template_unknown_tokens(*, subject: str, html_body: str,
                            text_body: str) -> list[UnknownToken]:
    """The tokens of a guest's template that its sends do not fill in, each with the known
    token it is closest to (``firstname``, ``fristName`` → firstName; ``event.nmae`` →
    event.name), in the order of the fields. A part that does not compile is skipped (the
    form says why)."""
    found: dict[str, UnknownToken] = {}
    for field, source, html in (("subject", subject, False), ("text_body", text_body, False),
                                ("html_body", html_body, True)):
        for name in unknown_names(source, html=html, top=TOP_TOKENS, event_keys=EVENT_KEYS):
            if name not in found:
                found[name] = UnknownToken(name, field, _closest(name))
    return list(found.values())


def _closest(name: str) -> str | None:
    """The known token ``name`` is a typo of: the same but for case, or close in spelling."""
    lowered = {known.lower(): known for known in KNOWN_TOKENS}
    if name.lower() in lowered:
        return lowered[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.75)
    return lowered[close[0]] if close else None
