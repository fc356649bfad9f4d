"""Sandboxed rendering of message templates.

jinja2's immutable sandbox (no internals, no unsafe calls, no mutating lists or dicts,
bounded ``range``), hardened so that no template can leak, hang or exhaust a worker:

- unknown tokens render empty (``ChainableUndefined``: ``{{event.missing.deeper}}`` too), but
  reaching for internals (``{{ ''.__class__ }}``) is an error, refused at save when visible;
- functions, classes and modules render as nothing (``{{ range }}`` shows no address);
- every step that can make a large value has its result's size bounded *before* it runs
  (``templates.sizes``), and is refused past ``HERALD_MAX_RENDERED_CHARS``: ``*``, ``**``,
  ``%``, ``~``, ``+``, integer sizes; the string methods, each with its bound
  (``sizes.STR_METHODS``: ``expandtabs``, ``replace``, ``join``, ``translate``, widths…);
  ``str.format`` field by field; printing or ``~`` of a list or dict (``[s] * 100000`` is one
  string a hundred thousand times); the filters that make text (``indent``, ``wordwrap``,
  ``replace``, ``join``, ``format``, ``urlize``, ``tojson``, ``pprint``, ``string``…) or copy
  their input's text (``sort``, ``groupby``, ``dictsort``); ``sum(start=[])``; the output of
  macros, call blocks, ``{% set %}`` and filter blocks;
- only listed callables can be called (``_call_size``): the string methods above, read-only
  methods of lists, dicts, numbers and dates, jinja2's macros, blocks and loops, and the
  globals ``range``, ``dict`` and ``namespace``: anything else (``str.maketrans``, a method a
  Python release adds) is refused;
- the output is produced as a stream and stops at ``HERALD_MAX_RENDERED_CHARS``;
- a render that runs longer than ``HERALD_RENDER_SECONDS`` or grows the process by
  ``HERALD_RENDER_MAX_MB`` (32 MB; measured from the render's own start, and right after
  any step that may have made over 256 K characters) stops with ``RenderLimitError``;
- saving a template renders it once with the preview's sample data (``template_check``): one
  that goes past a limit with them is refused at save (400), not at each send.

The time and memory budget is checked at guard points the compiled code cannot avoid (see
``_text_env.compile(source, raw=True)``): each one costs a counter; a light one (``_tick``:
a loop's iteration, ``getattr``/``getitem``) reads the clock every ``_WINDOW`` units, a heavy
one (``_heavy``: everything else below) reads it every time (``time.monotonic``, ~50 ns), so a
run of slow calls cannot outlast the limit by more than one call; ``/proc/self/statm`` is read
every ``_WINDOW`` units, at most once a millisecond (and at the next guard point after a large
step); escaping a long text for HTML weighs a unit per KB.

- Loops: the only loop a template compiles to is a Python ``for`` per ``{% for %}``; its
  iterable is wrapped in ``environment.guard_iter`` (for ``recursive`` loops the ``reciter``
  of the generated ``loop`` function, so every level is guarded), so each iteration ticks,
  even with an empty body.
- Recursion: macros, ``caller``, blocks (``self.x()``, ``super()``) and the ``loop(...)`` of
  recursive loops are plain Python functions reached only through ``environment.call``
  (the sandbox compiles every call to it), which ticks: each level of recursion does.
- Everything else is straight-line code, bounded by the template's size; its steps that
  cost more than O(1) tick too: every call, binary operator (all are intercepted, so
  ``call_binop``), filter and test (each wrapped), ``getattr``/``getitem``, comparisons
  (``in``, ``==``…) and slices (``environment.tick`` in the generated code), ``~``.
  Filters loop in Python over their input, whose size is bounded by the context and by
  the bounded operations above; those that consume an iterable or return an iterator
  (``_ITEMWISE_IN``/``_ITEMWISE_OUT``: ``sum``, ``batch``, ``map``…, and ``join``, whose
  items are also made text as they pass) get it wrapped so that each item is a heavy guard
  point: ``l|batch(1)|sum(start=[])`` (quadratic) stops in time. Nothing inside one item,
  one other filter call or one C-level step (a sort, a ``pprint``) can be interrupted, as
  before.

No construct was found that needs the old line-level trace hook, so there is none; should a
jinja2 upgrade generate another loop, compiling fails (``_Sandbox._compile``) rather than
run it unguarded.
Templates compile once per (id, version) and are cached per process.

A notification event's templates (spec 004; ``fallback=True`` wherever a template is checked
or rendered, i.e. ``event_id`` is set) are Handlebars: ``templates.handlebars`` compiles them
to Jinja for two environments of their own (``_hb_html_env``, ``_hb_text_env``: these
sandboxes plus the ``hb_*`` filters and tests that give Handlebars' printing, truthiness and
``#each``), so every guard, limit and budget above applies to them unchanged.
"""

import json
import math
import os
import re
import threading
import time
import zoneinfo
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from decimal import Decimal
from functools import lru_cache, update_wrapper
from types import CodeType
from typing import Any

from jinja2 import ChainableUndefined, TemplateError, meta, nodes, pass_context
from jinja2.compiler import CodeGenerator
from jinja2.filters import make_attrgetter
from jinja2.runtime import BlockReference, LoopContext, Macro, Undefined
from jinja2.sandbox import (
    ImmutableSandboxedEnvironment,
    SandboxedEscapeFormatter,
    SandboxedFormatter,
    SecurityError,
    safe_range,
)
from jinja2.utils import Namespace
from markupsafe import Markup

from common import metrics
from common.headers import ONE_LINE, header_problem
from templates import sizes
from templates.handlebars import HandlebarsError, to_jinja
from templates.samples import SAMPLE

MAX_REPEAT = 100_000  # characters (or items) one `*` may produce
MAX_POWER = 1_000
MAX_INT_BITS = 100_000  # integers `*` and `**` may produce
MAX_WIDTH = 10_000  # widths and counts passed to filters and string methods
_BIG_WIDTH = re.compile(r"(%[-+ #0]*(\d{5,}|\*))|(\{[^}]*:[^}]*\d{5,}[^}]*\})")
_DEFAULTS = {"HERALD_MAX_RENDERED_CHARS": 1_000_000, "HERALD_RENDER_SECONDS": 1.0,
             "HERALD_RENDER_MAX_MB": 32}
_BIG = 256 * 1024  # characters: after a step that may make this much, the memory is read
# Compiling is outside the render's budget (one step of jinja2 and Python's compiler, ~50 µs
# and ~3 KB per token, 1.5 KB of which a compiled template keeps): a template's parts together
# may hold this many tokens (names, values, operators, tag words, runs of text), counted by
# jinja2's lexer before anything is parsed. A large ticket (60 KB of HTML, 40 conditional
# blocks and a loop of order lines) holds ~3,300.
MAX_TEMPLATE_TOKENS = 10_000
_CACHE_BYTES = 64 * 1024 * 1024  # what the compiled templates of a process may keep, at most
_TOKEN_BYTES = 1_500  # what a compiled template keeps per token (besides its text)
_SAVE_TRIAL_SECONDS = 0.25  # a template's trial render at save (all of one request's saves)
_LOOP = re.compile(r"\s*(async +)?(for|while)\b")  # a loop in jinja2's generated code
_LIGHT, _HEAVY, _WINDOW = 1, 16, 256  # guard-point costs; the budget is checked per window
# Filters whose iterable input (the value), or iterator output, is guarded item by item
# (``join``'s input too, by ``_guarded_join``).
_ITEMWISE_IN = frozenset({"batch", "slice", "map", "select", "selectattr", "reject", "rejectattr",
                          "groupby", "unique", "sum", "list", "sort", "min", "max", "first"})
_ITEMWISE_OUT = frozenset({"batch", "slice", "map", "select", "selectattr", "reject",
                           "rejectattr", "unique", "items"})


class RenderLimitError(SecurityError):
    """A render went past one of the limits above."""


def _limit(name: str) -> Any:
    """A limit from Django's settings, or its default where Django is not configured."""
    try:
        from django.conf import settings
        from django.utils.functional import empty

        # The settings object itself: LazySettings' __getattr__ is slow for a missing name.
        source = settings if settings._wrapped is empty else settings._wrapped
        return getattr(source, name, _DEFAULTS[name])
    except Exception:
        return _DEFAULTS[name]


class _GuardedCodeGenerator(CodeGenerator):
    """Compiles ``a ~ b`` to a length-checked join, so ``~`` cannot build a giant string, and
    adds the guard points of the module's docstring: loops' iterables, comparisons, slices."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.iterables: set[int] = set()  # ids of the ``{% for %}`` iterables to guard

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

    def visit_For(self, node: nodes.For, frame: Any) -> None:
        if not node.recursive:  # a recursive loop iterates ``reciter``: guarded in ``write``
            self.iterables.add(id(node.iter))
        super().visit_For(node, frame)

    def visit(self, node: nodes.Node, *args: Any, **kwargs: Any) -> Any:
        if id(node) not in self.iterables:
            return super().visit(node, *args, **kwargs)
        self.iterables.discard(id(node))
        self.write("environment.guard_iter(")
        super().visit(node, *args, **kwargs)
        self.write(")")
        return None

    def write(self, x: str) -> None:
        # jinja2's visit_For writes the recursive loop function's iterable as this one token.
        super().write("environment.guard_iter(reciter)" if x == "reciter" else x)

    def visit_Compare(self, node: nodes.Compare, frame: Any) -> None:
        self._ticked(super().visit_Compare, node, frame)

    def visit_Getitem(self, node: nodes.Getitem, frame: Any) -> None:
        if isinstance(node.arg, nodes.Slice):  # slices bypass environment.getitem
            self._ticked(super().visit_Getitem, node, frame)
        else:
            super().visit_Getitem(node, frame)

    def _ticked(self, visit: Any, node: nodes.Node, frame: Any) -> None:
        self.write("environment.tick(")
        visit(node, frame)
        self.write(")")


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    code_generator_class = _GuardedCodeGenerator

    def __init__(self, **options: Any) -> None:
        finalize = _finalize_html if options.get("autoescape") else _finalize
        super().__init__(undefined=ChainableUndefined, finalize=finalize, **options)
        self.concat = _sized_concat  # macros, call blocks, {% set %} blocks, filter blocks
        for name in ("lipsum", "cycler", "joiner"):  # not for messages; lipsum is a CPU bomb
            self.globals.pop(name, None)
        for name in ("center", "indent", "wordwrap", "truncate", "batch", "slice", "format",
                     "filesizeformat", "round", "random", "urlize"):
            if name in self.filters:
                self.filters[name] = _bounded(self.filters[name])
        for name in _ITEMWISE_IN | _ITEMWISE_OUT:
            if name in self.filters:
                self.filters[name] = _itemwise(self.filters[name], name in _ITEMWISE_IN,
                                               name in _ITEMWISE_OUT)
        self.filters["join"] = _guarded_join(self.filters["join"])
        for name, rule in _FILTER_SIZES.items():  # the result bounded before the filter runs
            self.filters[name] = _sized_filter(name, self.filters[name], rule)
        for table in (self.filters, self.tests):  # every filter and test is a guard point
            for name, function in table.items():
                table[name] = _guarded(function)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _heavy()
        if operator == "*" and _is_sequence(left, right) and _count(left, right) > MAX_REPEAT:
            raise SecurityError(f"repetition over {MAX_REPEAT} is not allowed")
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_POWER:
            raise SecurityError(f"exponents over {MAX_POWER} are not allowed")
        if operator in ("*", "**") and _int_bits(operator, left, right) > MAX_INT_BITS:
            raise SecurityError(f"numbers over {MAX_INT_BITS} bits are not allowed")
        if operator == "%" and isinstance(left, str):
            _check_format(left)
            _fits(_percent_size(left, right), "the formatted text")
        if operator == "+" and isinstance(left, str | list | tuple) and isinstance(
                right, str | list | tuple):
            _check_length(len(left) + len(right))
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Only what ``_call_size`` lists can be called, its result bounded first."""
        _heavy()
        _check_args(args, kwargs)
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str) and getattr(__obj, "__name__", "") == "join" and args:
            args = (_joined(owner, args[0]), *args[1:])
        _fits(_call_size(__obj, owner, args, kwargs), "the result")
        return super().call(__context, __obj, *args, **kwargs)

    def _compile(self, source: str, filename: str) -> CodeType:
        """Fails closed should a jinja2 release compile a loop this module does not guard."""
        for line in source.splitlines():
            if _LOOP.match(line) and "guard_iter(" not in line and not line.endswith(" fiter:"):
                raise SecurityError(f"unguarded loop in the compiled template: {line.strip()}")
        return super()._compile(source, filename)

    def getattr(self, obj: Any, attribute: str) -> Any:
        _tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        return super().getitem(obj, argument)

    def wrap_str_format(self, value: Any) -> Any:
        """``'{:>999999999}'.format(x)``: the pattern is checked before anything is built, and
        each field's text is counted before it is made (``_SizedFormatter``)."""
        if super().wrap_str_format(value) is None:
            return None
        pattern: str = value.__self__
        _check_format(pattern)
        is_map = value.__name__ == "format_map"

        def sized(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                args, kwargs = (), args[0]
            formatter = (_SizedEscapeFormatter(self, escape=pattern.escape)
                         if isinstance(pattern, Markup) else _SizedFormatter(self))
            formatter.total = len(pattern)
            return type(pattern)(formatter.vformat(pattern, args, kwargs))

        sized.herald_sized = True  # type: ignore[attr-defined]  # call() lets it through
        return update_wrapper(sized, value)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(f"access to {attribute!r} is not allowed in message templates")

    @staticmethod
    def guarded_concat(join: Any, parts: tuple) -> Any:
        """``a ~ b``: refuse before joining when the result would pass the output limit."""
        _heavy()
        limit = _current.budget.max_chars
        size = sum(len(p) if isinstance(p, str) else sizes.text_size(p, limit) for p in parts)
        _check_length(size)
        _fits(size, "the concatenated text")
        return join(parts)

    @staticmethod
    def tick(value: Any) -> Any:
        _heavy()
        return value

    @staticmethod
    def guard_iter(iterable: Any) -> Any:
        """A ``{% for %}`` iterable: each iteration is a light guard point."""
        return _guard_items(iterable, heavy=False)


_PRINTABLE = (str, int, float, Decimal, date, list, tuple, dict, type(None))


def _finalize(value: Any) -> Any:
    """Only data prints: functions, classes, modules, template internals render as nothing.
    A list or dict prints only if its text fits what is left of the output (``[s] * 100000``
    holds one string but prints it 100,000 times)."""
    if type(value) is str:
        return value
    budget = _current.budget
    if isinstance(value, list | tuple | dict) and budget.max_chars < math.inf:
        _fits(sizes.text_size(value, budget.chars_left), "the printed value",
              limit=budget.chars_left)
    return value if isinstance(value, _PRINTABLE) and not callable(value) else ""


def _finalize_html(value: Any) -> Any:
    """As ``_finalize``; and escaping copies the text it prints (``{{ s }}`` in a loop of a
    macro keeps a copy per iteration): a long one is a guard point weighing its size."""
    if type(value) is str:
        if len(value) > 4096:
            budget = _current.budget
            budget.left -= len(value) >> 10  # a unit per KB
            if len(value) > _BIG:
                budget.memory_due()
            if budget.left < 0:
                budget.check()
        return value
    return _finalize(value)


def _is_sequence(left: Any, right: Any) -> bool:
    return isinstance(left, str | list | tuple) or isinstance(right, str | list | tuple)


def _count(left: Any, right: Any) -> int:
    sequence, times = (left, right) if isinstance(left, str | list | tuple) else (right, left)
    return len(sequence) * (times if isinstance(times, int) else 0)


def _check_length(length: int) -> None:
    """``~`` and ``+`` of strings or lists: the result is refused past the output limit."""
    if length > _limit("HERALD_MAX_RENDERED_CHARS"):
        raise RenderLimitError("the concatenated text is too large")


def _int_bits(operator: str, left: Any, right: Any) -> int:
    """The size the integer result of ``*`` or ``**`` would have (0 for anything else)."""
    if not (isinstance(left, int) and isinstance(right, int)):
        return 0
    if operator == "*":
        return left.bit_length() + right.bit_length()
    return left.bit_length() * max(right, 0)


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

    return update_wrapper(bounded, filter_function)  # keeps jinja_pass_arg


def _guarded(function: Any) -> Any:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _heavy()
        return function(*args, **kwargs)

    return update_wrapper(guarded, function)


def _itemwise(function: Any, inputs: bool, outputs: bool) -> Any:
    """The filter's value (when it is a non-empty iterable: empty ones and undefined values
    behave as before) and/or its iterator result are guarded item by item."""
    at = 1 if getattr(function, "jinja_pass_arg", None) else 0  # the value follows env/context

    def itemwise(*args: Any, **kwargs: Any) -> Any:
        if inputs and len(args) > at and hasattr(args[at], "__iter__") and args[at]:
            args = (*args[:at], _guard_items(args[at]), *args[at + 1:])
        result = function(*args, **kwargs)
        return _guard_items(result) if outputs and isinstance(result, Iterator) else result

    return update_wrapper(itemwise, function)  # keeps jinja_pass_arg


def _guarded_join(join: Any) -> Any:
    """``join`` with autoescape lists its input before turning each item into text, out of
    the guard's reach: here each item is made text (as ``join`` would) as it is guarded, and
    the joined text is refused before it is made when it would pass the limit."""
    def guarded_join(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> Any:
        if hasattr(value, "__iter__") and value:
            if attribute is not None:
                value = map(make_attrgetter(eval_ctx.environment, attribute), value)
            items = list(_guard_items(map(_text, value)))
            size = sizes.escaped_size if eval_ctx.autoescape else len
            _fits(_total(items, size, len(str(d)) * len(items)), "the joined text")
            return join(eval_ctx, items, d)
        return join(eval_ctx, value, d, attribute)

    return update_wrapper(guarded_join, join)  # keeps jinja_pass_arg (eval_context)


def _text(item: Any) -> Any:
    if isinstance(item, str) or hasattr(item, "__html__"):
        return item
    if _current.budget.max_chars < math.inf:
        _fits(sizes.text_size(item, _current.budget.max_chars), "an item's text")
    return str(item)


def _guard_items(iterable: Any, heavy: bool = True) -> Any:
    """Each item a guard point (``_heavy``, or ``_tick`` when not ``heavy``; inlined: this
    runs once per loop iteration)."""
    budget, cost = _current.budget, _HEAVY if heavy else _LIGHT
    for item in iterable:
        budget.left -= cost
        if budget.left < 0:
            budget.check()
        elif heavy and time.monotonic() > budget.deadline:
            raise RenderLimitError("the template took too long to render")
        yield item


def _fits(size: float, what: str, limit: float | None = None) -> None:
    """A step is refused when what it would make passes the render's limit (a million
    characters, ``HERALD_MAX_RENDERED_CHARS``); a large one has the memory read next."""
    budget = _current.budget
    limit = budget.max_chars if limit is None else limit
    if size > limit:
        raise RenderLimitError(f"{what} would be too large (over {limit:,.0f} characters)")
    if size > _BIG:
        budget.memory_due()


def _sized_concat(parts: Any) -> str:
    """A macro's, block's or ``{% set %}`` block's output, joined once its size is known."""
    parts = list(parts)
    _fits(sum(map(len, parts)), "the block's output")
    return "".join(parts)


def _joined(separator: str, iterable: Any) -> list:
    """``sep.join(items)``'s items, listed (each a guard point), once the result's size is
    known to fit."""
    items = list(_guard_items(iterable)) if hasattr(iterable, "__iter__") else iterable
    if isinstance(items, list):
        size = sizes.escaped_size if isinstance(separator, Markup) else len
        strings = [i for i in items if isinstance(i, str)]
        _fits(_total(strings, size, len(separator) * len(items)), "the joined text")
    return items


def _total(items: list, size: Any, start: int) -> float:
    """``start`` plus the items' sizes, counted until it passes the limit (the same long
    string 10,000 times is not measured 10,000 times)."""
    total, limit = start, _current.budget.max_chars
    for item in items:
        total += size(item)
        if total > limit:
            break
    return total


# What may be called besides the string methods of ``sizes.STR_METHODS``: jinja2's own
# callables (macros and ``caller``, blocks and ``super()``, recursive ``loop()``,
# ``loop.cycle``), the globals left (``range``, ``dict``, ``namespace``), and the read-only
# methods of data. Anything else (a method a Python release adds too) is refused.
_RUNTIME = (Macro, BlockReference, LoopContext, Undefined)
_GLOBALS = (safe_range, dict, Namespace)
_CONTAINER_METHODS = frozenset({"count", "index", "get", "keys", "values", "items", "copy"})
_SCALARS = (int, float, Decimal, date, dt_time, timedelta)


def _call_size(obj: Any, owner: Any, args: tuple, kwargs: dict) -> int:
    """What calling ``obj`` may make (characters or items), or ``SecurityError`` when it is
    not on the lists above."""
    name = getattr(obj, "__name__", "")
    if isinstance(owner, str):
        rule = sizes.STR_METHODS.get(name)
        if rule is None:
            raise SecurityError(f"the string method {name!r} is not available in templates")
        return rule(owner, args, kwargs, isinstance(owner, Markup))
    if (getattr(obj, "herald_sized", False) or isinstance(obj, _RUNTIME)
            or isinstance(owner, _RUNTIME) or any(obj is g for g in _GLOBALS)):
        return 0
    if isinstance(owner, list | tuple | dict) and name in _CONTAINER_METHODS:
        return len(owner) if name == "copy" else 0
    if isinstance(owner, _SCALARS) and not isinstance(owner, bool) and name[:1] != "_":
        if name == "strftime" and args and isinstance(args[0], str):
            return 16 * len(args[0])  # "%c" makes 24 characters of 2
        return 0
    raise SecurityError(f"{name or type(obj).__name__!r} cannot be called in templates")


def _percent_size(pattern: str, values: Any) -> int:
    size = sizes.percent_size(pattern, values, _current.budget.max_chars)
    if isinstance(pattern, Markup):  # the values are escaped
        size = len(pattern) + sizes.ESCAPE_GROWTH * (size - len(pattern))
    return size


class _SizedFormatter(SandboxedFormatter):
    """``str.format``: each field's text is counted before it is made."""

    total = 0
    growth = 1

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion:  # !r, !s, !a: the text is made here
            limit = _current.budget.max_chars
            _fits(self.total + 10 * sizes.text_size(value, limit), "the formatted text")
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        field = sizes.format_field_size(value, format_spec, _current.budget.max_chars)
        self.total += field * self.growth
        _fits(self.total, "the formatted text")
        return super().format_field(value, format_spec)


class _SizedEscapeFormatter(_SizedFormatter, SandboxedEscapeFormatter):
    growth = sizes.ESCAPE_GROWTH


def _as_text(value: Any) -> str:
    """``value`` as the text a filter makes of it, once that text is known to fit."""
    if isinstance(value, str):
        return value
    _fits(sizes.text_size(value, _current.budget.max_chars), "the value's text")
    return str(value)


def _plain(value: Any, args: tuple, kwargs: dict) -> int:
    return len(_as_text(value))


def _cased(value: Any, args: tuple, kwargs: dict) -> int:
    return 3 * len(_as_text(value))


def _stripped(value: Any, args: tuple, kwargs: dict) -> int:
    return sizes.striptags_size(_as_text(value))


def _counted(value: Any, args: tuple, kwargs: dict) -> int:
    return sizes.words_size(_as_text(value))


def _titled(value: Any, args: tuple, kwargs: dict) -> int:
    return sizes.title_size(_as_text(value))


def _escaped(value: Any, args: tuple, kwargs: dict) -> int:
    return sizes.escaped_size(_as_text(value))


def _keyed(value: Any, args: tuple, kwargs: dict) -> int:
    """``sort``, ``groupby``, ``dictsort``: Python's sort makes every key before it sorts
    (lower-cased copies of the text, by default): the input's text, three times at most."""
    return 3 * sizes.text_size(value, _current.budget.max_chars)


def _indent(value: Any, args: tuple, kwargs: dict) -> int:
    text = _as_text(value)
    width = args[0] if args else kwargs.get("width", 4)
    prefix = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    return len(text) + (text.count("\n") + 1) * max(prefix, 0)


_MAX_WRAPPED_LINES = 50_000  # textwrap takes ~4 s for a million one-character lines


def _wordwrap(value: Any, args: tuple, kwargs: dict) -> int:
    text = _as_text(value)
    width = args[0] if args else kwargs.get("width", 79)
    wrap = args[2] if len(args) > 2 else kwargs.get("wrapstring") or "\n"
    # A line and the next one hold more than ``width`` characters together.
    lines = min(len(text), 2 * len(text) // max(width if isinstance(width, int) else 1, 1)
                ) + text.count("\n") + 1
    if lines > _MAX_WRAPPED_LINES:
        raise RenderLimitError(f"wordwrap would make over {_MAX_WRAPPED_LINES:,} lines")
    return len(text) + lines * len(wrap if isinstance(wrap, str) else "")


def _replace(value: Any, args: tuple, kwargs: dict) -> int:
    text = _as_text(value)
    old, new = [*args[:2], None, None][:2]
    count = args[2] if len(args) > 2 else kwargs.get("count")
    return sizes.replace_size(text, kwargs.get("old", old), kwargs.get("new", new), count,
                              escaped=isinstance(text, Markup))


def _format(value: Any, args: tuple, kwargs: dict) -> int:
    return _percent_size(_as_text(value), kwargs or args)


def _urlize(value: Any, args: tuple, kwargs: dict) -> int:
    text = _as_text(value)
    extra = sum(len(v) for v in (*args[2:4], kwargs.get("target"), kwargs.get("rel"))
                if isinstance(v, str))
    return 10 * len(text) + (len(text) // 2 + 1) * (60 + sizes.ESCAPE_GROWTH * extra)


def _pretty(value: Any, args: tuple, kwargs: dict) -> int:
    size, nodes, depth = sizes.shape(value, _current.budget.max_chars)
    return size + nodes * (depth + 2)


def _tojson(value: Any, args: tuple, kwargs: dict) -> int:
    size, nodes, depth = sizes.shape(value, _current.budget.max_chars, json=True)
    indent = args[0] if args else kwargs.get("indent")
    return size + nodes * (depth * indent + 2 if isinstance(indent, int) else 0)


def _urlencode(value: Any, args: tuple, kwargs: dict) -> int:
    if isinstance(value, str) and value.isascii():
        return 3 * len(value)
    return 12 * sizes.text_size(value, _current.budget.max_chars)


def _listed(value: Any, args: tuple, kwargs: dict) -> int:
    """``list`` of a text: a string per character."""
    return sizes.pieces_size(value, "") if isinstance(value, str) else 0


def _summed(value: Any, args: tuple, kwargs: dict) -> int:
    """``sum(start=[])`` of lists: the items of the result."""
    if isinstance(value, list | tuple) and isinstance(kwargs.get("start", args[1:2] or 0),
                                                      list | tuple):
        return sum(len(v) for v in value if isinstance(v, list | tuple))
    return 0


# Filters whose result (or whose input's text) can be large, with its bound.
_FILTER_SIZES = {
    **dict.fromkeys(("string", "safe", "trim", "truncate", "center"), _plain),
    **dict.fromkeys(("lower", "upper", "capitalize"), _cased),
    "striptags": _stripped, "wordcount": _counted, "title": _titled,
    **dict.fromkeys(("e", "escape", "forceescape", "xmlattr"), _escaped),
    **dict.fromkeys(("sort", "groupby", "dictsort", "unique", "min", "max"), _keyed),
    "indent": _indent, "wordwrap": _wordwrap, "replace": _replace, "format": _format,
    "urlize": _urlize, "pprint": _pretty, "tojson": _tojson, "urlencode": _urlencode,
    "sum": _summed, "list": _listed,
}


def _sized_filter(name: str, function: Any, rule: Any) -> Any:
    """The filter's result bounded (``rule``) before it runs. An input that is an iterator is
    listed first (each item a guard point), so that it can be measured."""
    at = 1 if getattr(function, "jinja_pass_arg", None) else 0
    listed = rule in (_keyed, _summed)

    def sized(*args: Any, **kwargs: Any) -> Any:
        if len(args) > at and _current.budget.max_chars < math.inf:
            value = args[at]
            if listed and isinstance(value, Iterator):
                value = list(_guard_items(value))
                args = (*args[:at], value, *args[at + 1:])
            if not (isinstance(value, str) and rule is _plain) and not (
                    rule is _listed and not isinstance(value, str)):
                _fits(rule(value, args[at + 1:], kwargs), f"the {name} filter's result")
        return function(*args, **kwargs)

    return update_wrapper(sized, function)  # keeps jinja_pass_arg


# --- Dates and times, in the event's time zone ------------------------------------------------
# A guest's context holds its event's times as text (``2027-04-17 19:00:00+00:00``, JSON-safe,
# stored with the delivery) beside the event's ``timeZone``. Before a guest template renders
# (``in_event_zone``) they become ``EventTime``s: text that prints as "Saturday 17 April 2027,
# 19:00" in the event's zone, and that the ``date``, ``time`` and ``datetime`` filters read.
# Words in English whatever the server's locale (``strftime``'s names depend on it).
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_MAX_DATE_FORMAT = 64  # characters of a strftime pattern given to a date filter
DATE_FILTERS = ("date", "time", "datetime")


class EventTime(str):
    """A moment of the event, as the text a template prints by default; ``moment``: the
    moment itself, in the event's zone."""

    moment: datetime


def _zone(name: Any) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name) if isinstance(name, str) and name else _default_zone()
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return _default_zone()


def _default_zone() -> zoneinfo.ZoneInfo:
    try:
        from django.conf import settings

        return zoneinfo.ZoneInfo(settings.TIME_ZONE)
    except Exception:
        return zoneinfo.ZoneInfo("UTC")


def _day(moment: date) -> str:
    return f"{_DAYS[moment.weekday()]} {moment.day} {_MONTHS[moment.month - 1]} {moment.year}"


def _clock(moment: datetime) -> str:
    return f"{moment.hour:02d}:{moment.minute:02d}"


def _moment(value: Any, zone: zoneinfo.ZoneInfo) -> date | None:
    """``value`` (an ``EventTime``, a datetime, a date or ISO text) as a moment in ``zone``
    (a date stays a date); None when it is no date (nothing, undefined, other text)."""
    if isinstance(value, EventTime):
        return value.moment
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if isinstance(value, datetime):
        if value.tzinfo is None:  # a time without a zone is UTC, as the APIs store them
            value = value.replace(tzinfo=zoneinfo.ZoneInfo("UTC"))
        try:
            return value.astimezone(zone)
        except OverflowError:  # 9999-12-31T23:00Z east of UTC: past the last datetime
            return value
    return value if isinstance(value, date) else None


@lru_cache(maxsize=1024)  # a bulk send renders the same event's times for every guest
def event_time(value: str | None, zone_name: str | None) -> str:
    """The context's text of a moment as an ``EventTime`` in the zone; nothing (not "None")
    when there is none; other text as it is."""
    if value is None or value == "":
        return ""
    moment = _moment(value, _zone(zone_name))
    if not isinstance(moment, datetime):
        return value
    shown = EventTime(f"{_day(moment)}, {_clock(moment)}")
    shown.moment = moment
    return shown


def in_event_zone(context: dict[str, Any]) -> dict[str, Any]:
    """The context with its event's ``startsAt`` and ``endsAt`` as ``EventTime``s in the
    event's ``timeZone`` (the context itself when it has no such times)."""
    event = context.get("event")
    if not isinstance(event, dict) or not ("startsAt" in event or "endsAt" in event):
        return context
    zone = event.get("timeZone") if isinstance(event.get("timeZone"), str) else None
    times = {key: event_time(event[key], zone) for key in ("startsAt", "endsAt")
             if key in event and (event[key] is None or isinstance(event[key], str))}
    return {**context, "event": {**event, **times}}


def _date_filter(show: Any) -> Any:
    """A filter printing a moment with ``show(moment)``, or with a strftime ``format``;
    nothing for no date (not "None"); other values as they are."""

    @pass_context
    def date_filter(context: Any, value: Any, format: Any = None) -> Any:
        if value is None or isinstance(value, Undefined) or value == "":
            return ""
        event = context.get("event")
        zone = _zone(event.get("timeZone") if isinstance(event, dict) else None)
        moment = _moment(value, zone)
        if moment is None:
            return value
        if format is None:
            return show(moment)
        if not isinstance(format, str) or len(format) > _MAX_DATE_FORMAT:
            raise SecurityError(f"a date format is text of at most {_MAX_DATE_FORMAT} "
                                "characters")
        return moment.strftime(format)

    return date_filter


def _date_text(moment: date) -> str:
    return _day(moment)


def _time_text(moment: date) -> str:
    return _clock(moment) if isinstance(moment, datetime) else ""


def _datetime_text(moment: date) -> str:
    return f"{_day(moment)}, {_clock(moment)}" if isinstance(moment, datetime) else _day(moment)


def _add_date_filters(env: "_Sandbox") -> "_Sandbox":
    for name, show in zip(DATE_FILTERS, (_date_text, _time_text, _datetime_text), strict=True):
        env.filters[name] = _guarded(_date_filter(show))
    return env


_html_env = _add_date_filters(_Sandbox(autoescape=True))
_text_env = _add_date_filters(_Sandbox(autoescape=False))


# --- Handlebars (``templates.handlebars`` compiles event templates to these) ---------------
_MAX_SAFE_FLOAT = 1e21  # JavaScript prints integral numbers below this without a fraction


def _hb_text(value: Any, depth: int = 0) -> str:
    """A value as Handlebars prints it: null and undefined as nothing, ``true``/``false``,
    ``1`` for 1.0, a list's items joined with ``,`` (each a guard point, the text bounded as
    it grows), ``[object Object]`` for an object; functions and internals as nothing."""
    if type(value) is str:
        return value
    if value is None or isinstance(value, Undefined):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return str(int(value)) if value.is_integer() and abs(value) < _MAX_SAFE_FLOAT else (
            repr(value))
    if isinstance(value, dict):
        return "[object Object]"
    if isinstance(value, list | tuple):
        if depth > 100:
            raise SecurityError("the list is nested too deeply to print")
        parts, size = [], 0
        for item in _guard_items(value):
            text = _hb_text(item, depth + 1)
            size += len(text) + 1
            _fits(size, "the printed list")
            parts.append(text)
        return ",".join(parts)
    if isinstance(value, str):  # Markup, a str subclass
        return value
    if isinstance(value, _PRINTABLE) and not callable(value):
        return str(value)
    return ""


def _hb_each(value: Any) -> Iterator[tuple[int, Any, bool, Any]]:
    """``{{#each}}``'s items: (index, key, last, item) of a list (the key is the index) or of
    an object; nothing for anything else (a text, a number, undefined)."""
    if isinstance(value, dict):
        last = len(value) - 1
        return ((i, key, i == last, item) for i, (key, item) in enumerate(value.items()))
    if isinstance(value, list | tuple):
        last = len(value) - 1
        return ((i, i, i == last, item) for i, item in enumerate(value))
    return iter(())


def _hb_truthy(value: Any, include_zero: bool = False) -> bool:
    """Handlebars' ``#if``: false, null, undefined, "", 0 (unless ``includeZero``), NaN and
    [] are falsy; {} is truthy; a function or internal is nothing, so falsy."""
    if value is None or value is False or isinstance(value, Undefined) or callable(value):
        return False
    if isinstance(value, dict):
        return True
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return value == value and (include_zero or value != 0)
    return bool(value)


def _hb_nonempty(value: Any) -> bool:
    """Handlebars' ``#with``: as ``#if`` but 0 is a value."""
    return _hb_truthy(value, include_zero=True)


def _handlebars_env(autoescape: bool) -> _Sandbox:
    env = _Sandbox(autoescape=autoescape)
    env.filters.update(hb_text=_guarded(_hb_text), hb_each=_guarded(_hb_each))
    env.tests.update(hb_truthy=_guarded(_hb_truthy), hb_nonempty=_guarded(_hb_nonempty))
    return env


_hb_html_env = _handlebars_env(autoescape=True)
_hb_text_env = _handlebars_env(autoescape=False)
# Message templates stand alone: nothing may load another template.
_FORBIDDEN = (nodes.Include, nodes.Extends, nodes.Import, nodes.FromImport)


class TemplateCompileError(ValueError):
    def __init__(self, field: str, message: str, line: int | None) -> None:
        self.field = field
        self.message = message
        self.line = line
        super().__init__(f"{field}: {self.where}{message}")

    @property
    def where(self) -> str:
        """``line 3: `` where the line is known, else nothing."""
        return f"line {self.line}: " if self.line else ""


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
        if (re.fullmatch(r"[A-Za-z_]\w*", text) and text in _text_env.filters
                and text not in DATE_FILTERS):  # Handlebars templates have no date filters
            return match.group(0)
        if text[:1] in "\"'" and text[-1:] == text[:1]:
            text = text[1:-1]
        return "{{" + f"{left} ({name}) or {json.dumps(text)} {right}" + "}}"

    parts = _UNTOUCHED.split(source)
    return "".join(part if index % 2 else _FALLBACK.sub(rewrite, part)
                   for index, part in enumerate(parts))


def _parts(subject: str, html: str, text: str, handlebars: bool) -> tuple:
    """(field, Jinja source, environment) of a template's three parts: a notification
    event's are Handlebars, compiled to Jinja here (``HandlebarsError`` becomes the part's
    ``TemplateCompileError``, at save and, for one stored before, at render)."""
    if not handlebars:
        return (("subject", subject, _text_env), ("htmlBody", html, _html_env),
                ("textBody", text, _text_env))
    parts = []
    for field, source, env in (("subject", subject, _hb_text_env),
                               ("htmlBody", html, _hb_html_env),
                               ("textBody", text, _hb_text_env)):
        try:
            parts.append((field, to_jinja(source, filters=env.filters, jinja=fallbacks), env))
        except HandlebarsError as exc:
            raise TemplateCompileError(field, exc.message, exc.line) from None
    return tuple(parts)


def template_check(*, subject: str, html_body: str, text_body: str,
                   fallback: bool = False, until: float | None = None) -> None:
    """Raise ``TemplateCompileError`` naming the part and line that cannot work.
    ``fallback``: a notification event's template (spec 004): Handlebars, compiled to this
    sandbox (``templates.handlebars``), with spec 004's ``{{name | Guest}}`` (in the others
    an unknown filter stays an error, as it is most likely a typo).

    Each part is also rendered once with the preview's sample data (``_trial``): a template
    that passes the render's limits with them (``('\t' * 100000).expandtabs(10000)``) is
    refused at save, not at every send. ``until``: a ``time.monotonic()`` by which all of
    one request's trial renders end (an event saves up to 200 templates)."""
    if header_problem(subject):  # a subject is a header: "Hi\nBcc: …" would add one
        raise TemplateCompileError("subject", f"the subject {ONE_LINE}", None)
    parts = _parts(subject, html_body, text_body, fallback)
    try:
        complexity_check(parts)
    except TemplateError as exc:
        raise TemplateCompileError(exc.name or "", exc.message or str(exc),
                                   getattr(exc, "lineno", None)) from exc
    for field, source, env in parts:
        if until is not None and time.monotonic() > until:
            raise TemplateCompileError(field, "the request's templates take too long to check "
                                       "together: save fewer or smaller templates at once",
                                       None)
        try:
            tree = env.parse(source)
            code = env.compile(tree)  # unknown filters fail here, not at send time
            problem = _static_problem(tree, env)
        except TemplateError as exc:
            line = getattr(exc, "lineno", None)
            raise TemplateCompileError(field, exc.message or str(exc), line) from exc
        except (RecursionError, SyntaxError) as exc:
            # Deeper than jinja2's parser or Python's compiler go (about 100 levels of
            # brackets, operators or blocks; 20 nested loops): refused like a syntax error.
            why = exc.msg if isinstance(exc, SyntaxError) else "too many levels"
            raise TemplateCompileError(field, f"the template is nested too deeply ({why}): "
                                       "use fewer levels of blocks, brackets or operators",
                                       None) from None
        if problem:
            raise TemplateCompileError(field, problem[0], problem[1])
        _trial(env.template_class.from_code(env, code, env.make_globals(None)), field, until)


def unknown_names(source: str, *, html: bool, top: frozenset,
                  event_keys: frozenset) -> list[str]:
    """The names ``source`` (a guest's template part) reads that the context does not hold:
    top-level names not in ``top`` (nor set or looped over in the template, nor a global) and
    ``event.x`` / ``event["x"]`` with ``x`` not in ``event_keys``; in the order written. Nothing
    for a part that does not parse."""
    env = _html_env if html else _text_env
    try:
        tree = env.parse(source)
    except (TemplateError, RecursionError):
        return []
    undeclared = meta.find_undeclared_variables(tree)
    unknown = {name for name in undeclared if name not in top and name not in env.globals}
    names: list[tuple[int, int, str]] = []
    for node in tree.find_all((nodes.Name, nodes.Getattr, nodes.Getitem)):
        name = _read_name(node, unknown, event_keys if "event" in undeclared else None)
        if name:
            names.append((node.lineno, len(names), name))
    return list(dict.fromkeys(name for _, _, name in sorted(names)))


def _read_name(node: nodes.Node, unknown: set[str], event_keys: frozenset | None) -> str | None:
    if isinstance(node, nodes.Name):
        return node.name if node.ctx == "load" and node.name in unknown else None
    if event_keys is None or not (isinstance(node.node, nodes.Name)
                                  and node.node.name == "event"):
        return None
    key = node.attr if isinstance(node, nodes.Getattr) else (
        node.arg.value if isinstance(node.arg, nodes.Const) else None)
    return f"event.{key}" if isinstance(key, str) and key not in event_keys else None


def trial_deadline() -> float:
    """The ``until`` of ``template_check`` for one request that saves many templates."""
    return time.monotonic() + _limit("HERALD_RENDER_SECONDS")


def _trial(template: Any, field: str, until: float | None) -> None:
    """Render with the sample data: going past a limit (``SecurityError``) is the
    template's doing; any other error depends on the data a send will have."""
    seconds = min(_limit("HERALD_RENDER_SECONDS"), _SAVE_TRIAL_SECONDS)
    if until is not None:
        seconds = max(min(seconds, until - time.monotonic()), 0.0)
    budget = _Budget(_limit("HERALD_MAX_RENDERED_CHARS"), seconds)
    previous, _current.budget = _current.budget, budget
    try:
        budget.stream(template, in_event_zone(dict(SAMPLE)))
    except SecurityError as exc:
        raise TemplateCompileError(
            field, f"the template goes past the render limits with sample data: {exc}",
            None) from None
    except Exception:  # an error that the data of a send decides
        pass
    finally:
        _current.budget = previous


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


def complexity_check(parts: Any) -> int:
    """The tokens of a template's ``parts`` ((field, source, environment)…) together, counted
    by jinja2's lexer (whitespace aside) before anything is parsed or compiled: past
    ``MAX_TEMPLATE_TOKENS``, ``TemplateCompileError`` naming the part where the count passed
    it (the lexer stops there). A lexing error is jinja2's ``TemplateSyntaxError``, its
    ``name`` the part's field."""
    total = 0
    for field, source, env in parts:
        for _, kind, _ in env.lexer.tokeniter(source, field):
            if kind != "whitespace":
                total += 1
                if total > MAX_TEMPLATE_TOKENS:
                    raise TemplateCompileError(
                        field, f"Template too complex: over {MAX_TEMPLATE_TOKENS:,} "
                        "expressions, names, values, operators and tags (limit "
                        f"{MAX_TEMPLATE_TOKENS:,} for the subject and bodies together): "
                        "simplify it or split it", None)
    return total


class _CompiledCache:
    """The compiled templates of this process, per (id, version), least recently used
    dropped first: at most ``entries``, and at most ``_CACHE_BYTES`` by their weight (their
    text, and ``_TOKEN_BYTES`` per token), so that a few large templates cannot keep
    hundreds of MB."""

    def __init__(self, entries: int = 512, weight: int = _CACHE_BYTES) -> None:
        self.entries, self.weight, self.total = entries, weight, 0
        self.items: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self.lock:
            found = self.items.get(key)
            if found is not None:
                self.items.move_to_end(key)
                return found[0]
        return None

    def put(self, key: Any, value: Any, weight: int) -> None:
        with self.lock:
            if key in self.items:
                self.total -= self.items.pop(key)[1]
            self.items[key] = (value, weight)
            self.total += weight
            while len(self.items) > self.entries or (self.total > self.weight
                                                      and len(self.items) > 1):
                self.total -= self.items.popitem(last=False)[1][1]

    def clear(self) -> None:
        with self.lock:
            self.items.clear()
            self.total = 0


_cache = _CompiledCache()


def _compiled(key: tuple[str, int], subject: str, html: str, text: str, fallback: bool):
    """The three parts compiled (cached per ``key``: the template's id and version). A
    template stored before the complexity limit is refused (``TemplateCompileError``) before
    it is compiled."""
    full_key = (key, subject, html, text, fallback)
    found = _cache.get(full_key)
    if found is not None:
        return found
    parts = _parts(subject, html, text, fallback)
    tokens = complexity_check(parts)
    compiled = tuple(_flat_globals(env.from_string(source)) for _, source, env in parts)
    _cache.put(full_key, compiled,
               tokens * _TOKEN_BYTES + sum(len(source) for _, source, _ in parts))
    return compiled


def _flat_globals(template: Any) -> Any:
    """jinja2 gives a template its globals as a ``ChainMap`` over the environment's, which
    every render copies into its context key by key (a third of a ticket's render time); the
    environments' globals never change once built, so a plain dict is the same names."""
    template.globals = dict(template.globals)
    return template


def render(*, cache_key: tuple[str, int], subject: str, html_body: str, text_body: str,
           context: dict[str, Any], fallback: bool = False) -> Rendered:
    subject_t, html_t, text_t = _compiled(cache_key, subject, html_body, text_body, fallback)
    if not fallback:  # spec 004's Handlebars templates print their payload as it is
        context = in_event_zone(context)
    budget = _Budget(_limit("HERALD_MAX_RENDERED_CHARS"), _limit("HERALD_RENDER_SECONDS"))
    previous, _current.budget = _current.budget, budget
    started = time.perf_counter()
    try:
        subject_out = budget.stream(subject_t, context)
        html_out = budget.stream(html_t, context)
        text_out = budget.stream(text_t, context)
    finally:
        _current.budget = previous
        metrics.render_time(time.perf_counter() - started)
    # A header cannot hold a newline: collapse whitespace in the subject.
    return Rendered(subject=storable(" ".join(subject_out.split())), html=storable(html_out),
                    text=storable(text_out))


def storable(text: str) -> str:
    """``text`` with what PostgreSQL's text cannot hold (NUL, lone surrogates: ``{{ "\\x00" }}``
    renders one) replaced by U+FFFD. The content is stored with the ``sent`` status after
    the provider accepted it, and a refused write there would send the batch again."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


class _Budget:
    """Output, time and memory limits of one render (all three parts together)."""

    __slots__ = ("chars_left", "deadline", "left", "max_chars", "memory_at", "rss_before")

    def __init__(self, chars: float, seconds: float) -> None:
        now = time.monotonic()
        self.chars_left, self.deadline, self.left = chars, now + seconds, _WINDOW
        self.max_chars = chars  # what one step may make (``_fits``)
        limited = seconds < math.inf
        self.memory_at = now if limited else math.inf  # the first check reads the memory
        # This render's own baseline (a pread, ~4 µs): what grew before it is not its own.
        self.rss_before = _rss_mb() if limited else 0.0

    def memory_due(self) -> None:
        """After a step that may have made a large value: the next guard point reads the
        memory, so growth is caught one step after it happens, not a millisecond later."""
        if self.memory_at < math.inf:
            self.memory_at = self.left = 0

    def stream(self, template: Any, context: dict[str, Any]) -> str:
        parts = []
        for chunk in template.generate(context):
            self.chars_left -= len(chunk)
            if self.chars_left < 0:
                raise RenderLimitError("the rendered message is too large")
            parts.append(chunk)
        return "".join(parts)

    def check(self) -> None:
        """Every ``_WINDOW``: the clock, and the memory at most once a millisecond."""
        self.left = _WINDOW
        now = time.monotonic()
        if now > self.deadline:
            raise RenderLimitError("the template took too long to render")
        if now >= self.memory_at:
            self.memory_at = now + 0.001
            if _rss_mb() > self.rss_before + _limit("HERALD_RENDER_MAX_MB"):
                raise RenderLimitError("the template used too much memory")


class _Current(threading.local):
    budget = _Budget(math.inf, math.inf)  # outside render(): no limits


_current = _Current()


def _tick() -> None:
    """A light guard point: the budget is checked once a window."""
    budget = _current.budget
    budget.left -= _LIGHT
    if budget.left < 0:
        budget.check()


def _heavy() -> None:
    """A heavy guard point: the clock is read every time, the memory once a window."""
    budget = _current.budget
    budget.left -= _HEAVY
    if budget.left < 0:
        budget.check()
    elif time.monotonic() > budget.deadline:
        raise RenderLimitError("the template took too long to render")


_statm: list[int] = [-1, -1]  # (pid, fd) of /proc/self/statm, opened once per process


def _rss_mb() -> float:
    """The process's resident memory in MB (0 where /proc is not there). The file is kept
    open (a pread instead of an open, a read and a close), and opened again after a fork:
    /proc/self names the process that opened it."""
    try:
        pid = os.getpid()
        if _statm[0] != pid:
            _statm[:] = [pid, os.open("/proc/self/statm", os.O_RDONLY)]
        return int(os.pread(_statm[1], 64, 0).split()[1]) * 4096 / 1_048_576
    except OSError:
        return 0.0


sizes.on_items = _heavy  # a walk over a long list is a run of guard points
