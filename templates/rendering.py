"""Sandboxed rendering of message templates.

jinja2's immutable sandbox (no internals, no unsafe calls, no mutating lists or dicts,
bounded ``range``), hardened so that no template can leak, hang or exhaust a worker:

- unknown tokens render empty (``ChainableUndefined``: ``{{event.missing.deeper}}`` too), but
  reaching for internals (``{{ ''.__class__ }}``) is an error, refused at save when visible;
- functions, classes and modules render as nothing (``{{ range }}`` shows no address);
- ``*``, ``**``, ``%``, ``~``, widths of ``center``/``format``/``str.format`` and friends are
  bounded *before* the result is built;
- the output is produced as a stream and stops at ``HERALD_MAX_RENDERED_CHARS``;
- a render that runs longer than ``HERALD_RENDER_SECONDS`` or grows the process by
  ``HERALD_RENDER_MAX_MB`` stops (a trace hook checks every few hundred steps).

Templates compile once per (id, version) and are cached per process.
"""

import json
import re
import sys
import time
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, TemplateError, nodes
from jinja2.compiler import CodeGenerator
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_REPEAT = 100_000  # characters (or items) one `*` may produce
MAX_POWER = 1_000
MAX_WIDTH = 10_000  # widths and counts passed to filters and string methods
_BIG_WIDTH = re.compile(r"(%[-+ #0]*(\d{5,}|\*))|(\{[^}]*:[^}]*\d{5,}[^}]*\})")
_DEFAULTS = {"HERALD_MAX_RENDERED_CHARS": 1_000_000, "HERALD_RENDER_SECONDS": 1.0,
             "HERALD_RENDER_MAX_MB": 150}


class RenderLimitError(SecurityError):
    """A render went past one of the limits above."""


def _limit(name: str) -> Any:
    """A limit from Django's settings, or its default where Django is not configured."""
    try:
        from django.conf import settings

        return getattr(settings, name, _DEFAULTS[name])
    except Exception:
        return _DEFAULTS[name]


class _GuardedCodeGenerator(CodeGenerator):
    """Compiles ``a ~ b`` to a length-checked join, so ``~`` cannot build a giant string."""

    def visit_Concat(self, node: nodes.Concat, frame: Any) -> None:
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write(f"environment.guarded_concat({join}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})
    code_generator_class = _GuardedCodeGenerator

    def __init__(self, **options: Any) -> None:
        super().__init__(undefined=ChainableUndefined, finalize=_finalize, **options)
        for name in ("lipsum", "cycler", "joiner"):  # not for messages; lipsum is a CPU bomb
            self.globals.pop(name, None)
        for name in ("center", "indent", "wordwrap", "truncate", "batch", "slice", "format",
                     "filesizeformat", "round", "random", "urlize"):
            if name in self.filters:
                self.filters[name] = _bounded(self.filters[name])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*" and _is_sequence(left, right) and _count(left, right) > MAX_REPEAT:
            raise SecurityError(f"repetition over {MAX_REPEAT} is not allowed")
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_POWER:
            raise SecurityError(f"exponents over {MAX_POWER} are not allowed")
        if operator == "%" and isinstance(left, str):
            _check_format(left)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _check_args(args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Any:
        """``'{:>999999999}'.format(x)``: the pattern is checked before anything is built."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None and isinstance(getattr(value, "__self__", None), str):
            _check_format(value.__self__)
        return wrapped

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(f"access to {attribute!r} is not allowed in message templates")

    @staticmethod
    def guarded_concat(join: Any, parts: tuple) -> Any:
        """``a ~ b``: refuse before joining when the result would pass the output limit."""
        if sum(len(p) if isinstance(p, str) else 32 for p in parts) > _limit(
                "HERALD_MAX_RENDERED_CHARS"):
            raise RenderLimitError("the concatenated text is too large")
        return join(parts)


_PRINTABLE = (str, int, float, Decimal, date, list, tuple, dict, type(None))


def _finalize(value: Any) -> Any:
    """Only data prints: functions, classes, modules, template internals render as nothing."""
    return value if isinstance(value, _PRINTABLE) and not callable(value) else ""


def _is_sequence(left: Any, right: Any) -> bool:
    return isinstance(left, str | list | tuple) or isinstance(right, str | list | tuple)


def _count(left: Any, right: Any) -> int:
    sequence, times = (left, right) if isinstance(left, str | list | tuple) else (right, left)
    return len(sequence) * (times if isinstance(times, int) else 0)


def _check_format(pattern: str) -> None:
    if _BIG_WIDTH.search(pattern):
        raise SecurityError(f"format widths over {MAX_WIDTH} are not allowed")


def _check_args(args: tuple, kwargs: dict) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_WIDTH:
            raise SecurityError(f"numbers over {MAX_WIDTH} are not allowed as arguments")


def _bounded(filter_function: Any) -> Any:
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _check_args(args[1:] if args else args, kwargs)
        if args and isinstance(args[0], str) and filter_function.__name__.startswith("do_format"):
            _check_format(args[0])
        return filter_function(*args, **kwargs)

    for attribute in ("jinja_pass_arg",):
        if hasattr(filter_function, attribute):
            setattr(bounded, attribute, getattr(filter_function, attribute))
    bounded.__name__ = filter_function.__name__
    return bounded


_html_env = _Sandbox(autoescape=True)
_text_env = _Sandbox(autoescape=False)
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


# Spec 004's fallback, ``{{name | Guest}}``: a "filter" that is no filter is a default text.
# The text is plain words and punctuation (optionally quoted): nothing Jinja would read as code.
_TEXT = r"[\w .,!?@#&+\-:/]"
_FALLBACK = re.compile(
    r"\{\{(-?)\s*([A-Za-z_][\w.]*)\s*\|\s*(\"" + _TEXT + r"*\"|'" + _TEXT + r"*'|"
    + _TEXT + r"+?)\s*(-?)\}\}")
# Tags, comments and raw blocks are left as they are: only output expressions are rewritten.
_UNTOUCHED = re.compile(r"(\{%-?\s*raw\s*-?%\}.*?\{%-?\s*endraw\s*-?%\}|\{#.*?#\}|\{%.*?%\})",
                        re.S)


def fallbacks(source: str) -> str:
    """``{{ a.b | Some text }}`` → ``{{ (a.b) or "Some text" }}`` where ``Some text`` is not
    one of our filters (those stay filters); quotes around the text are optional. Only in
    the template's own text: never inside tags, comments or raw blocks."""
    if "|" not in source:
        return source

    def rewrite(match: re.Match) -> str:
        left, name, text, right = match.groups()
        text = text.strip()
        if re.fullmatch(r"[A-Za-z_]\w*", text) and text in _text_env.filters:
            return match.group(0)
        if text[:1] in "\"'" and text[-1:] == text[:1]:
            text = text[1:-1]
        return "{{" + f"{left} ({name}) or {json.dumps(text)} {right}" + "}}"

    parts = _UNTOUCHED.split(source)
    return "".join(part if index % 2 else _FALLBACK.sub(rewrite, part)
                   for index, part in enumerate(parts))


def template_check(*, subject: str, html_body: str, text_body: str,
                   fallback: bool = False) -> None:
    """Raise ``TemplateCompileError`` naming the part and line that cannot work.
    ``fallback``: spec 004's ``{{name | Guest}}`` (notification-event templates only; in
    the others an unknown filter stays an error, as it is most likely a typo)."""
    prepare = fallbacks if fallback else str
    for field, source, env in (
        ("subject", prepare(subject), _text_env),
        ("htmlBody", prepare(html_body), _html_env),
        ("textBody", prepare(text_body), _text_env),
    ):
        try:
            tree = env.parse(source)
            env.compile(tree)  # unknown filters fail here, not at send time
        except TemplateError as exc:
            line = getattr(exc, "lineno", None)
            raise TemplateCompileError(field, exc.message or str(exc), line) from exc
        problem = _static_problem(tree, env)
        if problem:
            raise TemplateCompileError(field, problem[0], problem[1])


def _static_problem(tree: nodes.Template, env: _Sandbox) -> tuple[str, int] | None:
    for node in tree.find_all(_FORBIDDEN):
        return "templates cannot include, extend or import other templates", node.lineno
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        known = env.filters if isinstance(node, nodes.Filter) else env.tests
        if node.name not in known:
            kind = "filter" if isinstance(node, nodes.Filter) else "test"
            return f"no {kind} named {node.name!r}", node.lineno
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        name = node.attr if isinstance(node, nodes.Getattr) else (
            node.arg.value if isinstance(node.arg, nodes.Const) else None)
        if isinstance(name, str) and name.startswith("_"):
            return "names starting with '_' are not available", node.lineno
    for node in tree.find_all(nodes.Filter):
        if node.name == "attr":
            return "the 'attr' filter is not available", node.lineno
    return None


@lru_cache(maxsize=512)
def _compiled(key: tuple[str, int], subject: str, html: str, text: str, fallback: bool):
    prepare = fallbacks if fallback else str
    return (
        _text_env.from_string(prepare(subject)),
        _html_env.from_string(prepare(html)),
        _text_env.from_string(prepare(text)),
    )


def render(*, cache_key: tuple[str, int], subject: str, html_body: str, text_body: str,
           context: dict[str, Any], fallback: bool = False) -> Rendered:
    subject_t, html_t, text_t = _compiled(cache_key, subject, html_body, text_body, fallback)
    budget = _Budget()
    with budget.watch():
        subject_out = budget.stream(subject_t, context)
        html_out = budget.stream(html_t, context)
        text_out = budget.stream(text_t, context)
    # A header cannot hold a newline: collapse whitespace in the subject.
    return Rendered(subject=" ".join(subject_out.split()), html=html_out, text=text_out)


class _Budget:
    """Output, time and memory limits of one render (all three parts together)."""

    def __init__(self) -> None:
        self.chars_left = _limit("HERALD_MAX_RENDERED_CHARS")
        self.deadline = time.monotonic() + _limit("HERALD_RENDER_SECONDS")
        self.max_rss = _rss_mb() + _limit("HERALD_RENDER_MAX_MB")
        self.steps = 0

    def stream(self, template: Any, context: dict[str, Any]) -> str:
        parts = []
        for chunk in template.generate(context):
            self.chars_left -= len(chunk)
            if self.chars_left < 0:
                raise RenderLimitError("the rendered message is too large")
            parts.append(chunk)
        return "".join(parts)

    def watch(self) -> "_Watch":
        return _Watch(self)

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderLimitError("the template took too long to render")
        if _rss_mb() > self.max_rss:
            raise RenderLimitError("the template used too much memory")


class _Watch:
    """A trace hook, only while rendering: every 256 steps the budget is checked, so a loop
    that prints nothing still stops."""

    def __init__(self, budget: _Budget) -> None:
        self.budget = budget

    def _local(self, frame: Any, event: str, arg: Any) -> Any:
        self.budget.steps += 1
        if self.budget.steps & 255 == 0:
            self.budget.check()
        return self._local

    def _global(self, frame: Any, event: str, arg: Any) -> Any:
        return self._local

    def __enter__(self) -> None:
        self.previous = sys.gettrace()
        sys.settrace(self._global)

    def __exit__(self, *exc: object) -> None:
        sys.settrace(self.previous)


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * 4096 / 1_048_576
    except OSError:
        return 0.0
