"""Writes on message templates: every save compiles the template first."""

import uuid

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Account
from common.errors import Conflict, HeraldError
from comms.messages import Message
from comms.models import Delivery
from comms.services import message_queue
from templates.models import MessageTemplate, TemplateVersion
from templates.rendering import TemplateCompileError, template_check
from templates.samples import SAMPLE


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
                    id: uuid.UUID | None = None, actor: str = "") -> MessageTemplate:
    _check(subject, html_body, text_body)
    try:
        with transaction.atomic():
            template = MessageTemplate.objects.create(
                id=id or uuid.uuid4(), account=account, name=name, subject=subject,
                html_body=html_body, text_body=text_body, language=language,
            )
            version_record(template=template, actor=actor)
            return template
    except IntegrityError:
        raise Conflict("id_conflict", "A template with this id already exists.") from None


@transaction.atomic
def template_update(*, template: MessageTemplate, name: str, subject: str, html_body: str = "",
                    text_body: str = "", language: str = "en",
                    actor: str = "") -> MessageTemplate:
    """Replace the template's content and bump its version (renders cache on id + version).
    A notification event's template is checked as it renders: with ``{{name | Guest}}``."""
    _check(subject, html_body, text_body, fallback=template.event_id is not None)
    MessageTemplate.objects.filter(id=template.id).update(
        name=name, subject=subject, html_body=html_body, text_body=text_body,
        language=language, version=F("version") + 1, updated_at=timezone.now(),
    )
    template.refresh_from_db()
    version_record(template=template, actor=actor)
    return template


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


def template_send_test(*, template: MessageTemplate, to: str) -> Delivery:
    """Send the template, rendered with the admin preview's sample data, to ``to`` through
    the account's live email pipeline (a normal delivery, with its timeline)."""
    with transaction.atomic():
        return message_queue(Message(
            account_id=template.account_id, template_id=template.id, mode=Delivery.Mode.LIVE,
            recipient=to, context=dict(SAMPLE), correlation_id="admin-test-send"))
