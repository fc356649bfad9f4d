"""Sandboxed rendering of message templates (jinja2's SandboxedEnvironment).

Unknown tokens render empty (``ChainableUndefined``, so ``{{event.missing.deeper}}`` too);
templates compile once per (id, version) and are cached per process.
"""

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

_html_env = SandboxedEnvironment(autoescape=True, undefined=ChainableUndefined)
_text_env = SandboxedEnvironment(autoescape=False, undefined=ChainableUndefined)


class TemplateCompileError(ValueError):
    def __init__(self, field: str, message: str, line: int | None) -> None:
        super().__init__(f"{field}: line {line}: {message}")
        self.field = field
        self.message = message
        self.line = line


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


def template_check(*, subject: str, html_body: str, text_body: str) -> None:
    """Raise ``TemplateCompileError`` naming the part and line that does not compile."""
    for field, source, env in (
        ("subject", subject, _text_env),
        ("htmlBody", html_body, _html_env),
        ("textBody", text_body, _text_env),
    ):
        try:
            env.parse(source)
        except TemplateSyntaxError as exc:
            raise TemplateCompileError(field, exc.message or str(exc), exc.lineno) from exc


@lru_cache(maxsize=512)
def _compiled(key: tuple[str, int], subject: str, html: str, text: str):
    return (
        _text_env.from_string(subject),
        _html_env.from_string(html),
        _text_env.from_string(text),
    )


def render(*, cache_key: tuple[str, int], subject: str, html_body: str, text_body: str,
           context: dict[str, Any]) -> Rendered:
    subject_t, html_t, text_t = _compiled(cache_key, subject, html_body, text_body)
    return Rendered(
        # A header cannot hold a newline: collapse whitespace in the subject.
        subject=" ".join(subject_t.render(context).split()),
        html=html_t.render(context),
        text=text_t.render(context),
    )
