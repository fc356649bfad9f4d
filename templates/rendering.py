"""Sandboxed rendering of message templates (jinja2's SandboxedEnvironment).

Unknown tokens render empty (``ChainableUndefined``, so ``{{event.missing.deeper}}`` too);
templates compile once per (id, version) and are cached per process.
"""

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, TemplateError, nodes
from jinja2.sandbox import SandboxedEnvironment, SecurityError

# Guards against templates that would eat a worker: `'a' * 10**9`, `2 ** 10**9`.
MAX_REPEAT = 100_000
MAX_POWER = 1_000


class _Sandbox(SandboxedEnvironment):
    """jinja2's sandbox (no attribute internals, no unsafe calls, bounded ``range``) that also
    bounds ``*`` and ``**``, whose results can otherwise grow without limit."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*" and _is_sequence(left, right) and _count(left, right) > MAX_REPEAT:
            raise SecurityError(f"repetition over {MAX_REPEAT} is not allowed")
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_POWER:
            raise SecurityError(f"exponents over {MAX_POWER} are not allowed")
        return super().call_binop(context, operator, left, right)


def _is_sequence(left: Any, right: Any) -> bool:
    return isinstance(left, str | list | tuple) or isinstance(right, str | list | tuple)


def _count(left: Any, right: Any) -> int:
    sequence, times = (left, right) if isinstance(left, str | list | tuple) else (right, left)
    return len(sequence) * (times if isinstance(times, int) else 0)


_html_env = _Sandbox(autoescape=True, undefined=ChainableUndefined)
_text_env = _Sandbox(autoescape=False, undefined=ChainableUndefined)
# Message templates stand alone: nothing may load another template.
_FORBIDDEN = (nodes.Include, nodes.Extends, nodes.Import, nodes.FromImport)


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
            tree = env.parse(source)
            env.compile(tree)  # unknown filters and tests fail here, not at send time
        except TemplateError as exc:
            line = getattr(exc, "lineno", None)
            raise TemplateCompileError(field, exc.message or str(exc), line) from exc
        for node in tree.find_all(_FORBIDDEN):
            raise TemplateCompileError(
                field, "templates cannot include, extend or import other templates", node.lineno)
        for node in tree.find_all((nodes.Filter, nodes.Test)):
            known = env.filters if isinstance(node, nodes.Filter) else env.tests
            if node.name not in known:
                kind = "filter" if isinstance(node, nodes.Filter) else "test"
                raise TemplateCompileError(field, f"no {kind} named {node.name!r}", node.lineno)


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
