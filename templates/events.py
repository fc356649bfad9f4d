"""Spec 004's notification events: an identifier, its channels, a template per channel and
language. Saved whole (create or replace); every template compiles before anything is saved."""

import re
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from accounts.models import Account
from common.errors import Conflict, HeraldError
from templates.models import MessageTemplate, NotificationEvent
from templates.rendering import TemplateCompileError, template_check, trial_deadline
from templates.services import version_record

# The channels a notification event can use (spec 004's "Channels & Identifiers").
EVENT_CHANNELS = ("email", "sms", "push", "slack", "telegram", "whatsapp", "discord")
IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


@dataclass(frozen=True)
class TemplateIn:
    channel: str
    language: str
    subject: str
    body: str
    html: str


def _invalid(message: str) -> HeraldError:
    return HeraldError("VALIDATION_ERROR", message, status=400)


def _check(identifier: str, channels: list[str], default_language: str,
           templates: list[TemplateIn]) -> None:
    if not IDENTIFIER.match(identifier):
        raise _invalid("identifier: use letters, digits and . _ : - (at most 128), "
                       "e.g. order.confirmed.")
    if not LANGUAGE.match(default_language):
        raise _invalid("default_language: a language tag such as en or pt-BR.")
    unknown = [c for c in channels if c not in EVENT_CHANNELS]
    if not channels or unknown or len(set(channels)) != len(channels):
        raise _invalid(f"channels: one or more distinct of {', '.join(EVENT_CHANNELS)}.")
    seen: set[tuple[str, str]] = set()
    until = trial_deadline()  # the trial renders of all the templates together
    for index, t in enumerate(templates):
        where = f"templates[{index}]"
        if t.channel not in channels:
            raise _invalid(f"{where}.channel: {t.channel!r} is not one of the event's channels.")
        if not LANGUAGE.match(t.language):
            raise _invalid(f"{where}.language: a language tag such as en or pt-BR.")
        if (t.channel, t.language) in seen:
            raise _invalid(f"{where}: a second {t.channel} template in {t.language}.")
        seen.add((t.channel, t.language))
        if t.channel == "email" and not t.subject:
            raise _invalid(f"{where}.subject: an email template needs a subject.")
        if not (t.body or t.html):
            raise _invalid(f"{where}.body: the template has no body.")
        try:
            template_check(subject=t.subject, html_body=t.html, text_body=t.body,
                           fallback=True, until=until)
        except TemplateCompileError as exc:
            field = {"subject": "subject", "htmlBody": "html", "textBody": "body"}[exc.field]
            raise _invalid(f"{where}.{field}: {exc.where}{exc.message}") from exc
    missing = [c for c in channels if (c, default_language) not in seen]
    if missing:
        raise _invalid(f"templates: every channel needs a template in the default language "
                       f"({default_language}); missing: {', '.join(missing)}.")


@transaction.atomic
def event_save(*, account: Account, identifier: str, name: str, channels: list[str],
               templates: list[TemplateIn], default_language: str = "en",
               description: str = "", replace: NotificationEvent | None = None,
               actor: str = "") -> NotificationEvent:
    """Create an event, or replace ``replace`` whole. A template kept (same channel and
    language) is updated in place, its version bumped; one left out is detached from the
    event (its past deliveries still point at it)."""
    _check(identifier, channels, default_language, templates)
    event = replace or NotificationEvent(account=account)
    event.identifier, event.name, event.description = identifier, name or identifier, description
    event.channels, event.default_language = channels, default_language
    try:
        with transaction.atomic():
            event.save()
    except IntegrityError:
        raise Conflict("CONFLICT", f"An event {identifier!r} already exists.") from None
    existing = {(t.channel, t.language): t for t in event.templates.all()} if replace else {}
    for t in templates:
        current = existing.pop((t.channel, t.language), None)
        fields = {"subject": t.subject, "html_body": t.html, "text_body": t.body}
        if current is None:
            current = MessageTemplate.objects.create(
                account=account, event=event, channel=t.channel, language=t.language,
                name=f"{identifier} ({t.channel}, {t.language})", **fields)
        elif any(getattr(current, k) != v for k, v in fields.items()):
            MessageTemplate.objects.filter(id=current.id).update(
                version=F("version") + 1, updated_at=timezone.now(), **fields)
            current.refresh_from_db()
        version_record(template=current, actor=actor)
    if existing:
        MessageTemplate.objects.filter(id__in=[t.id for t in existing.values()]).update(
            event=None, updated_at=timezone.now())
    return event


def events_of(*, account: Account) -> QuerySet[NotificationEvent]:
    return NotificationEvent.objects.filter(account=account).order_by("identifier")


def event_find(*, account: Account, identifier: str,
               with_templates: bool = False) -> NotificationEvent | None:
    """``with_templates``: read them in the same go (one query, whatever the channels), for
    a send; an event about to be changed must not carry them."""
    events = events_of(account=account).filter(identifier=identifier)
    return (events.prefetch_related("templates") if with_templates else events).first()


def event_template(*, event: NotificationEvent, channel: str,
                   language: str | None) -> MessageTemplate | None:
    """The event's template for a channel in ``language``, else its base language
    (``pt`` for ``pt-BR``), else the event's default language."""
    wanted = [language, language.split("-")[0]] if language else []
    wanted.append(event.default_language)
    templates = {t.language: t for t in event.templates.all() if t.channel == channel}
    return next((templates[lang] for lang in wanted if lang in templates), None)


def event_json(event: NotificationEvent, *, detail: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"identifier": event.identifier, "name": event.name,
                           "channels": list(event.channels)}
    if detail:
        out.update({
            "description": event.description, "default_language": event.default_language,
            "templates": [
                {"channel": t.channel, "language": t.language, "subject": t.subject,
                 "body": t.text_body, "html": t.html_body, "version": t.version}
                for t in sorted(event.templates.all(), key=lambda t: (t.channel, t.language))
            ],
        })
    return out
