"""Writes on message templates: every save compiles the template first."""

import uuid

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Account
from common.errors import Conflict, HeraldError
from templates.models import MessageTemplate
from templates.rendering import TemplateCompileError, template_check


def _check(subject: str, html_body: str, text_body: str) -> None:
    try:
        template_check(subject=subject, html_body=html_body, text_body=text_body)
    except TemplateCompileError as exc:
        raise HeraldError(
            "template_syntax_error",
            f"{exc.field} does not compile at line {exc.line}: {exc.message}",
            status=400, fields={exc.field: f"Line {exc.line}: {exc.message}"},
        ) from exc


def template_create(*, account: Account, name: str, subject: str, html_body: str = "",
                    text_body: str = "", language: str = "en",
                    id: uuid.UUID | None = None) -> MessageTemplate:
    _check(subject, html_body, text_body)
    try:
        with transaction.atomic():
            return MessageTemplate.objects.create(
                id=id or uuid.uuid4(), account=account, name=name, subject=subject,
                html_body=html_body, text_body=text_body, language=language,
            )
    except IntegrityError:
        raise Conflict("id_conflict", "A template with this id already exists.") from None


@transaction.atomic
def template_update(*, template: MessageTemplate, name: str, subject: str, html_body: str = "",
                    text_body: str = "", language: str = "en") -> MessageTemplate:
    """Replace the template's content and bump its version (renders cache on id + version)."""
    _check(subject, html_body, text_body)
    MessageTemplate.objects.filter(id=template.id).update(
        name=name, subject=subject, html_body=html_body, text_body=text_body,
        language=language, version=F("version") + 1, updated_at=timezone.now(),
    )
    template.refresh_from_db()
    return template
