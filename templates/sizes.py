"""How large a result would be, computed before the operation runs (``templates.rendering``
refuses it past the limit).

A string method, a filter, ``%``/``str.format`` or printing a list is one step in C that no guard
point can interrupt: ``('\\t' * 100000).expandtabs(10000)`` asks for a gigabyte in one go, and
``[s] * 100000`` (100,000 references to one string) prints as ten gigabytes. So each step's
result is bounded first, from the sizes of its inputs, and refused when the bound passes the
limit. The bounds are upper bounds (never below the real size) and cheap: counting in C
(``str.count``), or walking a container once, memoised per object and stopped at the limit.
"""

import re
from collections.abc import Callable, Mapping
from datetime import date, time, timedelta
from decimal import Decimal
from typing import Any

from jinja2.runtime import Undefined
from jinja2.utils import Namespace
from markupsafe import Markup

# Called every 4,096 items a walk visits: ``rendering`` makes it a guard point, so that a walk
# over a long list stops with the render's time budget.
on_items: Callable[[], None] = lambda: None  # noqa: E731
ESCAPE_GROWTH = 5  # ``&`` → ``&amp;``: what HTML escaping makes of one character, at most
_VIEWS = (type({}.keys()), type({}.values()), type({}.items()))


class Exceeded(Exception):
    """A measure passed its limit (internal: the walk stops there)."""


class _Walk:
    """len(str(value)) (or of its JSON), at most; with the number of nodes and the depth,
    which pretty-printing and indented JSON add per line."""

    __slots__ = ("depth", "json", "left", "memo", "nodes")

    def __init__(self, limit: int, json: bool) -> None:
        self.left, self.json, self.memo = limit, json, {}
        self.nodes = self.depth = 0

    def add(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise Exceeded

    def top(self, value: Any) -> None:
        if isinstance(value, str) and not self.json:
            self.add(len(value))
        else:
            self.item(value, 0)

    def item(self, value: Any, depth: int) -> None:
        self.nodes += 1
        if not self.nodes & 4095:
            on_items()
        if depth > self.depth:
            self.depth = depth
        if isinstance(value, str):
            self.add(_quoted(value, self.json) + (8 if isinstance(value, Markup) else 0))
        elif isinstance(value, bool) or value is None:
            self.add(5)
        elif isinstance(value, int):
            self.add(value.bit_length() * 10 // 33 + 2)  # log10(2) < 10/33
        elif isinstance(value, float | Decimal | date | time | timedelta):
            self.add(len(str(value)) + 2 if isinstance(value, Decimal) else 40)
        elif isinstance(value, (list, tuple, dict, Namespace, *_VIEWS)):
            self.container(value, depth)
        elif isinstance(value, Undefined):
            self.add(9)
        else:  # functions, macros, loops, ranges, iterators: a short "<… at 0x…>"
            self.add(100)

    def container(self, value: Any, depth: int) -> None:
        key = id(value)
        known = self.memo.get(key)
        if known is not None:  # the same object again (``[s] * 100000``): its size once known
            self.add(known)
            return
        before = self.left
        self.memo[key] = 16  # while it is walked: a cycle reads as ``[...]``
        if isinstance(value, Namespace):
            value = value._Namespace__attrs  # its repr is its attributes'
            self.add(12)
        if isinstance(value, dict):
            self.add(2)
            for key, item in value.items():
                self.item(key, depth + 1)
                self.item(item, depth + 1)
                self.add(4)
        else:
            self.add(16)  # brackets, and a view's name
            for item in value:
                self.item(item, depth + 1)
                self.add(2)
        self.memo[key] = before - self.left


def _quoted(text: str, json: bool) -> int:
    """The length of ``repr(text)`` (or its JSON, HTML-safe as jinja2's ``tojson``), at most."""
    if json:
        if not text.isascii():
            return 12 * len(text) + 2  # \\uXXXX, twice for characters past the BMP
        if not text.isprintable():
            return 6 * len(text) + 2
        specials = sum(text.count(c) for c in "<>&'")
        return len(text) + 2 + 5 * specials + text.count('"') + text.count("\\")
    if text.isprintable():
        return len(text) + 2 + text.count("\\") + text.count("'")
    return 10 * len(text) + 2  # \\U0001xxxx


def text_size(value: Any, limit: int, *, json: bool = False) -> int:
    """len(str(value)) (``json``: of jinja2's ``tojson``), at most; ``limit + 1`` once past."""
    if isinstance(value, str) and not json:
        return len(value)
    walk = _Walk(limit, json)
    try:
        walk.top(value)
    except Exceeded:
        return limit + 1
    except RecursionError:
        return limit + 1  # nested deeper than repr itself could go
    return limit - walk.left


def shape(value: Any, limit: int, *, json: bool = False) -> tuple[int, int, int]:
    """(size as ``text_size``, nodes, depth): pretty-printed, each node may start a line
    indented by its depth."""
    walk = _Walk(limit, json)
    try:
        walk.top(value)
    except (Exceeded, RecursionError):
        return limit + 1, 0, 0
    return limit - walk.left, walk.nodes, walk.depth


def escaped_size(text: str) -> int:
    """len(escape(text)), at most (escaped already, a Markup stays as it is)."""
    if isinstance(text, Markup):
        return len(text)
    return len(text) + 4 * sum(text.count(c) for c in "<>&'\"")


# --- str methods ----------------------------------------------------------------------------

def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _length(value: Any, escaped: bool) -> int:
    if not isinstance(value, str):
        return 0  # the method raises TypeError
    return escaped_size(value) if escaped else len(value)


def replace_size(text: str, old: Any, new: Any, count: Any, escaped: bool = False) -> int:
    if not (isinstance(old, str) and isinstance(new, str)):
        return len(text)
    times = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        times = min(times, count)
    return len(text) + times * max(_length(new, escaped) - len(old), 0)


def _expandtabs(s: str, args: tuple, kwargs: dict, escaped: bool) -> int:
    size = _arg(args, kwargs, 0, "tabsize", 8)
    return len(s) + s.count("\t") * max(size if isinstance(size, int) else 0, 0)


def _replace(s: str, args: tuple, kwargs: dict, escaped: bool) -> int:
    return replace_size(s, _arg(args, kwargs, 0, "old", None), _arg(args, kwargs, 1, "new", None),
                        _arg(args, kwargs, 2, "count", -1), escaped)


def _padded(s: str, args: tuple, kwargs: dict, escaped: bool) -> int:
    width = _arg(args, kwargs, 0, "width", 0)
    return max(len(s), width if isinstance(width, int) else 0)


def _translate(s: str, args: tuple, kwargs: dict, escaped: bool) -> int:
    table = _arg(args, kwargs, 0, "table", None)
    longest = 1
    if isinstance(table, Mapping):
        longest = max([len(v) for v in table.values() if isinstance(v, str)] + [1])
    return len(s) * longest


# A piece of a split is a string object of its own (~50 bytes beside its text): counted as
# this many characters, so that splitting a long text into a million one-letter words (60 MB)
# is refused, as a text of the same weight would be.
PIECE = 16
# What str.split() splits at: every piece but the last ends at one of them.
_BLANKS = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
_UNICODE_BLANKS = "\x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(
    chr(c) for c in range(0x2000, 0x200B))


def pieces_size(text: str, separator: Any = None) -> int:
    """What ``text.split(separator)`` (or ``list(text)``) may make: its text and its pieces."""
    if isinstance(separator, str) and separator:
        pieces = text.count(separator) + 1
    elif separator is None:  # at blanks
        blanks = _BLANKS if text.isascii() else _BLANKS + _UNICODE_BLANKS
        pieces = sum(text.count(c) for c in blanks) + 1
    else:  # each character
        pieces = len(text)
    return len(text) + PIECE * pieces


def striptags_size(text: str) -> int:
    """What markupsafe's ``striptags`` may make: the text between tags (a piece per ``<``),
    joined, split at blanks (a piece each), joined again and unescaped."""
    return 3 * len(text) + pieces_size(text) + PIECE * (text.count("<") + 1)


def words_size(text: str) -> int:
    """What jinja2's ``wordcount`` makes: a list of the words (``\\w+``), at most one per
    two characters."""
    return len(text) + PIECE * (len(text) // 2 + 1)


def title_size(text: str) -> int:
    """What jinja2's ``title`` filter makes: the text split at blanks and ``-({[<`` (the
    separators are pieces too), each piece cased and made again (upper first letter, lower
    rest, joined), then joined."""
    separators = pieces_size(text) - len(text) + PIECE * sum(text.count(c) for c in "-({[<")
    return 3 * len(text) + 6 * separators


def _stripped(s: str, args: tuple, kwargs: dict, escaped: bool) -> int:
    return striptags_size(s)


def _split(s: str, args: tuple, kwargs: dict, escaped: bool) -> int:
    return pieces_size(s, _arg(args, kwargs, 0, "sep", None))


def _lines(s: str, args: tuple, kwargs: dict, escaped: bool) -> int:
    return len(s) + PIECE * (s.count("\n") + s.count("\r") + 1)


def _same(s: str, args: tuple, kwargs: dict, escaped: bool) -> int:
    return len(s)


def _cased(s: str, args: tuple, kwargs: dict, escaped: bool) -> int:
    return 3 * len(s)  # Unicode's special casing makes at most three characters of one


def _encoded(s: str, args: tuple, kwargs: dict, escaped: bool) -> int:
    return 4 * len(s)


# The string methods a template may call, each with the bound of its result. ``join``,
# ``format`` and ``format_map`` are sized where they run (``rendering``); any other method
# (``maketrans``…) is refused, so that a new one in a Python release is refused too.
STR_METHODS: dict[str, Callable[[str, tuple, dict, bool], int]] = {
    "expandtabs": _expandtabs, "replace": _replace, "translate": _translate,
    "center": _padded, "ljust": _padded, "rjust": _padded, "zfill": _padded,
    "lower": _cased, "upper": _cased, "title": _cased, "capitalize": _cased,
    "casefold": _cased, "swapcase": _cased, "encode": _encoded,
    "split": _split, "rsplit": _split, "splitlines": _lines,
    **dict.fromkeys((
        "count", "endswith", "find", "index", "isalnum", "isalpha", "isascii", "isdecimal",
        "isdigit", "isidentifier", "islower", "isnumeric", "isprintable", "isspace",
        "istitle", "isupper", "lstrip", "partition", "removeprefix", "removesuffix", "rfind",
        "rindex", "rpartition", "rstrip", "startswith",
        "strip", "join", "format", "format_map", "unescape"), _same),
    "striptags": _stripped,  # Markup's
}


# --- % formatting ---------------------------------------------------------------------------

_CONVERSION = re.compile(r"%(?:\(([^)]*)\))?[-+ #0]*(\*|\d*)(?:\.(\*|\d*))?[hlL]?(.?)", re.S)


def percent_size(pattern: str, values: Any, limit: int) -> int:
    """len(pattern % values), at most: the pattern, and per conversion its width, precision
    and value. A ``*`` width or precision takes its number from the values: refused by the
    caller (``None``)."""
    size = len(pattern)
    positional = values if isinstance(values, tuple) else (values,)
    index = 0
    for key, width, precision, kind in _CONVERSION.findall(pattern):
        if kind == "%":
            continue
        if "*" in (width, precision):
            return limit + 1
        size += int(width or 0) + int(precision or 0)
        if key and isinstance(values, Mapping):
            value = values.get(key)
        else:
            value = positional[index] if index < len(positional) else None
            index += 1
        size += 400 if kind in "eEfFgG" else text_size(value, limit) * (10 if kind in "ra" else 1)
        if size > limit:
            return size
    return size


def format_field_size(value: Any, spec: str, limit: int) -> int:
    """len(format(value, spec)), at most: its text and the numbers (width, precision) of the
    spec."""
    numbers = sum(int(n) for n in re.findall(r"\d+", spec)) if spec else 0
    kind = 400 if isinstance(value, float | Decimal) else 0
    return text_size(value, limit) + numbers + kind
