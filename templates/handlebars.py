"""Spec 004's event templates are Handlebars: this module compiles their Handlebars to the
Jinja that ``templates.rendering``'s hardened sandbox runs, with the same guards and budgets.
No second template engine ever runs: a Handlebars construct becomes Jinja statements and
sandbox filters/tests (``hb_text``, ``hb_each``, ``hb_truthy``, ``hb_nonempty``, defined in
``rendering``), and everything else is refused at save naming the construct.

Supported, as Handlebars 4 renders them:
- ``{{path}}`` (escaped in HTML bodies), ``{{{path}}}`` and ``{{& path}}`` (unescaped in HTML
  bodies; subject and text parts are never escaped); values print as Handlebars prints them
  (null and undefined as nothing, ``true``, ``1,2`` for a list, ``[object Object]``);
- paths ``a.b``, ``a.[literal segment]``, ``this``, ``./a``, ``this.a``, ``../a``,
  ``@root.a``; data ``@index``, ``@key``, ``@first``, ``@last`` (and ``@../index``);
- ``#if`` / ``#unless`` (``{{else}}``, ``{{else if x}}``, ``includeZero=true``), ``#each``
  over lists and objects (``{{else}}`` when empty, ``as |item key|``), ``#with``
  (``as |x|``), with Handlebars' truthiness (false, null, undefined, "", 0 and [] are falsy;
  {} is truthy);
- comments ``{{! }}`` and ``{{!-- --}}``, ``\\{{escaped}}``, whitespace control ``{{~ ~}}``,
  and standalone block and comment lines removed with their line, as Handlebars does;
- spec 004's ``{{name | Guest}}`` fallback, inside blocks too.

Refused (400 at save): partials, partial blocks, decorators, raw blocks, any helper besides
the four (custom ones, ``lookup``, ``log``), subexpressions, hash arguments, mustache
sections ``{{#path}}`` / ``{{^path}}``, ``{{#each}}`` of the whole context.

Where the output differs from handlebars.js's, it is jinja2's doing, as for every template
here: HTML escaping writes ``&#34;``/``&#39;`` for ``&quot;``/``&#x27;`` and leaves `` ` ``
and ``=`` alone (markupsafe), newlines are written ``\n``, and one newline ending the
template is dropped. Null items of an ``#each`` are not made ``{}`` inside nested blocks.

Event templates saved before they were Handlebars were Jinja: Jinja tags ``{% … %}``,
comments ``{# … #}`` and expressions that are not Handlebars (``{{ a|upper }}``,
``{{ a ~ b }}``, ``{{- name | Guest -}}``) still compile as Jinja outside ``#each``/``#with``
(whose names they could not see), so those templates keep rendering as before; a template
valid in both renders the same, but for how non-text values print (above).
"""

import json
import re
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from typing import Any

MAX_DEPTH = 64  # nested Handlebars blocks (Jinja's compiler stops near 100 levels anyway)
HELPERS = ("if", "unless", "each", "with")
_DATA = ("index", "key", "first", "last")
_JINJA_WORDS = frozenset({"and", "or", "not", "in", "is", "if", "else", "true", "false",
                          "none", "True", "False", "None", "recursive"})
_ROOT = "{}"  # the top context as a value: {{this}} there prints [object Object]
_RESERVED = re.compile(r"_hb")  # the names this module gives its loop variables

# Where a token starts: Jinja's tags and comments (left to Jinja), Handlebars' escaped
# mustaches and mustaches. Each is then closed by ``_Finder`` (never a regex spanning the
# text, which an unclosed opener repeated would make quadratic).
_OPENER = re.compile(r"\\\{\{|\{\{|\{%|\{#")
_JINJA_RAW = re.compile(r"\{%[-+]?\s*raw\s*[-+]?%\}")
_JINJA_ENDRAW = re.compile(r"\{%[-+]?\s*endraw\s*[-+]?%\}")
_LONG_COMMENT_END = re.compile(r"--~?\}\}")
_SEGMENT = r"(?:\[[^\]\n]*\]|\w+)"
_SEGMENTS = re.compile(rf"{_SEGMENT}(?:\.{_SEGMENT})*")
_ONE_SEGMENT = re.compile(_SEGMENT)
_LITERAL = re.compile(r"""^(?:"[^"]*"|'[^']*'|-?\d+(?:\.\d+)?|true|false|null|undefined)$""")
_NAME = re.compile(r"[^\W\d]\w*")
# ``path | some text``: spec 004's fallback (the text as in ``rendering.fallbacks``).
_TEXT = r"[\w .,!?@#&+\-:/]"
_FALLBACK = re.compile(r"^(\S+)\s*\|\s*(\"" + _TEXT + r"*\"|'" + _TEXT + r"*'|" + _TEXT
                       + r"+?)$")
_HELPER_PARAM = re.compile(r"""^(?:"[^"]*"|'[^']*'|[\w.@/\[\]-]+=?\S*|\(.*)$""")
_JINJA_TAG = re.compile(r"\{%[-+]?\s*(\w*)(.*?)[-+]?%\}", re.S)
_JINJA_OPENERS = frozenset({"if", "for", "macro", "call", "filter", "with", "autoescape",
                            "block"})
_BLOCK_KINDS = ("open", "close", "else", "comment")  # what can stand alone on its line


class HandlebarsError(ValueError):
    def __init__(self, message: str, line: int | None = None) -> None:
        self.message, self.line = message, line
        super().__init__(message)


@dataclass
class _Tag:
    kind: str  # open, close, else, comment, output, raw, jinja, literal
    body: str
    line: int
    strip_left: bool = False
    strip_right: bool = False
    pad: int = 0  # newlines removed around it, kept inside its Jinja for line numbers


@dataclass
class _Frame:
    helper: str  # if, unless, each, with; or "jinja:<keyword>"
    line: int
    this: str | None = None  # the block's context (#each, #with), a Jinja expression
    data: dict[str, str] | None = None  # #each's @index, @key, @first, @last
    params: dict[str, str] = field(default_factory=dict)  # as |a b|
    inverse: bool = False  # past {{else}}: the outer context again
    chained: bool = False  # had an {{else}}: no {{else if}} after it


@dataclass
class _Path:
    data: bool
    ups: int
    this: bool
    segments: list[str]


def to_jinja(source: str, *, filters: Container[str],
             jinja: Callable[[str], str] = lambda s: s) -> str:
    """The Jinja of a Handlebars template, or ``HandlebarsError`` naming what cannot be.
    ``filters``: the sandbox's filter names (``{{name | upper}}`` stays a filter, as before);
    ``jinja``: applied to each expression left to Jinja (``rendering.fallbacks``)."""
    if "{{" not in source and "{%" not in source:
        return source
    tokens = _whitespace(_tokens(source))
    return _Translator(filters, jinja).run(tokens)


class _Finder:
    """``source.find`` of each closer, remembered: once a closer is known to be at ``r``,
    every search from before ``r`` finds it there without scanning again (and none after the
    last), so that tokenizing stays linear however many openers go unclosed."""

    def __init__(self, source: str) -> None:
        self.source, self.known = source, {}

    def find(self, closer: Any, start: int) -> tuple[int, int]:
        """(start, end) of the next ``closer`` (a string or a pattern) from ``start``, or
        (-1, -1)."""
        known = self.known.get(closer)
        if known is not None and known[2] <= start and (known[0] == -1 or start <= known[0]):
            return known[0], known[1]
        if isinstance(closer, str):
            at = self.source.find(closer, start)
            found = (at, at + len(closer)) if at >= 0 else (-1, -1)
        else:
            match = closer.search(self.source, start)
            found = match.span() if match else (-1, -1)
        self.known[closer] = (*found, start)
        return found


def _tokens(source: str) -> list[str | _Tag]:
    """Text and tags, alternating (a text first and last, maybe empty)."""
    out: list[str | _Tag] = []
    finder, at, line, counted = _Finder(source), 0, 1, 0
    search = 0
    while True:
        opener = _OPENER.search(source, search)
        if opener is None:
            break
        start = opener.start()
        end, tag_of = _closed(source, finder, opener.group(0), start)
        if end < 0:  # not closed: text (Jinja says what is wrong with it, if anything)
            search = start + 1
            continue
        line += source.count("\n", counted, start)
        counted = start
        out.append(source[at:start])
        out.append(tag_of(source[start:end], line))
        at = search = end
    out.append(source[at:])
    return out


def _closed(source: str, finder: _Finder, opener: str, start: int) -> tuple[int, Any]:
    """Where the token opened at ``start`` ends, and how it becomes a ``_Tag``."""
    if opener == "{%":
        raw = _JINJA_RAW.match(source, start)
        if raw:
            return finder.find(_JINJA_ENDRAW, raw.end())[1], _literal_tag
        return finder.find("%}", start + 2)[1], lambda text, line: _Tag("jinja", text, line)
    if opener == "{#":
        return finder.find("#}", start + 2)[1], _literal_tag
    if opener.startswith("\\"):
        return finder.find("}}", start + 3)[1], lambda text, line: _Tag("escaped", text[1:],
                                                                        line)
    if source.startswith("{{{{", start):
        return start + 4, _raw_block
    body = start + 3 if source.startswith("{{~", start) else start + 2
    if source.startswith("!--", body):
        end = finder.find(_LONG_COMMENT_END, body + 3)[1]
        if end >= 0:
            return end, _comment
    if source.startswith("!", body):
        return finder.find("}}", body)[1], _comment
    if source.startswith("{{{", start):
        return finder.find("}}}", start + 3)[1], _triple
    return finder.find("}}", start + 2)[1], _mustache


def _literal_tag(text: str, line: int) -> _Tag:
    return _Tag("literal", text, line)


def _raw_block(text: str, line: int) -> _Tag:
    raise HandlebarsError("raw blocks ({{{{…}}}}) are not supported", line)


def _comment(text: str, line: int) -> _Tag:
    return _Tag("comment", text, line, text.startswith("{{~"), text.endswith("~}}"))


def _triple(text: str, line: int) -> _Tag:
    body = text[3:-3]
    left, right = body.startswith("~"), body.endswith("~")
    return _Tag("raw", body[left:len(body) - right].strip(), line, left, right)


def _mustache(text: str, line: int) -> _Tag:
    body = text[2:-2]
    left = body.startswith("~")
    right = body.endswith("~") and len(body) > left
    body = body[left:len(body) - right].strip()
    tag = _Tag("output", body, line, left, right)
    if body.startswith("&"):
        tag.kind, tag.body = "raw", body[1:].strip()
    elif body.startswith(("#", "/")) and not body.startswith(("#>", "#*")):
        tag.kind, tag.body = ("open" if body[0] == "#" else "close"), body[1:].strip()
    elif body == "^" or body == "else" or re.match(r"else\s", body):
        tag.kind = "else"
    return tag


def _whitespace(tokens: list[str | _Tag]) -> list[str | _Tag]:
    """Handlebars' whitespace rules on the text beside each tag: ``~`` strips all of it;
    a block tag or comment alone on its line takes the line with it. The newlines removed
    are kept as the tag's ``pad`` (so that Jinja's line numbers stay the source's)."""
    last = len(tokens) - 1
    standalone = {}
    for i in range(1, last, 2):
        tag = tokens[i]
        assert isinstance(tag, _Tag)
        if tag.kind in _BLOCK_KINDS:
            before, after = tokens[i - 1], tokens[i + 1]
            assert isinstance(before, str) and isinstance(after, str)
            starts = re.search(r"\n[ \t]*$", before) or (i == 1 and not before.strip(" \t"))
            ends = re.match(r"[ \t]*\r?\n", after) or (i + 1 == last
                                                         and not after.strip(" \t"))
            standalone[i] = bool(starts and ends)
    for i in range(1, last, 2):
        tag = tokens[i]
        assert isinstance(tag, _Tag)
        before, after = tokens[i - 1], tokens[i + 1]
        assert isinstance(before, str) and isinstance(after, str)
        if tag.strip_left:
            kept = before.rstrip()
        elif standalone.get(i):
            kept = before.rstrip(" \t")
        else:
            kept = before
        if tag.strip_right:
            rest = after.lstrip()
        elif standalone.get(i):
            rest = re.sub(r"^[ \t]*\r?\n?", "", after, count=1)
        else:
            rest = after
        tag.pad += before.count("\n", len(kept)) + after[:len(after) - len(rest)].count("\n")
        tokens[i - 1], tokens[i + 1] = kept, rest
    return tokens


class _Translator:
    def __init__(self, filters: Container[str], jinja: Callable[[str], str]) -> None:
        self.filters, self.jinja = filters, jinja
        self.stack: list[_Frame] = []
        self.out: list[str] = []
        self.count = 0

    def run(self, tokens: list[str | _Tag]) -> str:
        for token in tokens:
            if isinstance(token, str):
                self.out.append(token)
            else:
                self.out.append(self.tag(token))
        for frame in reversed(self.stack):
            if not frame.helper.startswith("jinja:"):
                raise HandlebarsError(f"{{{{#{frame.helper}}}}} (line {frame.line}) is never "
                                      "closed", frame.line)
        return "".join(self.out)

    # --- tags -------------------------------------------------------------------------------
    def tag(self, tag: _Tag) -> str:
        pad = "\n" * tag.pad
        if tag.kind == "literal":
            return tag.body
        if tag.kind == "comment":
            newlines = tag.body.count("\n") + tag.pad
            return "{#" + "\n" * newlines + "#}" if newlines else ""
        if tag.kind == "escaped":
            if "endraw" in tag.body:
                raise HandlebarsError("an escaped mustache cannot hold 'endraw'", tag.line)
            return "{% raw %}" + tag.body + "{% endraw " + pad + "%}"
        if tag.kind == "jinja":
            return self.jinja_tag(tag)
        if tag.kind in ("open", "close", "else"):
            jinja = {"open": self.open, "close": self.close, "else": self.orelse}[tag.kind](tag)
            return jinja[:-2] + pad + jinja[-2:]  # inside its last tag: no text
        return self.output(tag, raw=tag.kind == "raw")

    def jinja_tag(self, tag: _Tag) -> str:
        self.plain_jinja(tag, "{% … %}")
        match = _JINJA_TAG.match(tag.body)
        word, rest = (match[1], match[2]) if match else ("", "")
        if word in _JINJA_OPENERS or (word == "set" and "=" not in rest):
            self.stack.append(_Frame(f"jinja:{word}", tag.line))
        elif word.startswith("end") or word in ("else", "elif"):
            top = self.stack[-1] if self.stack else None
            if top is not None and not top.helper.startswith("jinja:"):
                raise HandlebarsError(f"{{% {word} %}} is inside {{{{#{top.helper}}}}} (line "
                                      f"{top.line}): close the Handlebars block first",
                                      tag.line)
            if top is not None and word.startswith("end"):
                self.stack.pop()
        return tag.body

    def plain_jinja(self, tag: _Tag, what: str) -> None:
        for frame in self.stack:
            if frame.this and not frame.inverse:
                raise HandlebarsError(
                    f"Jinja syntax ({what}) cannot be used inside {{{{#{frame.helper}}}}} "
                    f"(line {frame.line}): its names would not be the block's; use "
                    "Handlebars there", tag.line)

    def open(self, tag: _Tag) -> str:
        helper, rest = [*tag.body.split(None, 1), ""][:2]
        if helper not in HELPERS:
            raise HandlebarsError(f"the block helper {{{{#{helper}}}}} is not supported: "
                                  "the block helpers are #if, #unless, #each and #with "
                                  f"(for a section, write {{{{#with {helper}}}}} or "
                                  f"{{{{#each {helper}}}}})", tag.line)
        if len(self.stack) >= MAX_DEPTH:
            raise HandlebarsError("the template is nested too deeply (over "
                                  f"{MAX_DEPTH} blocks): use fewer levels of blocks",
                                  tag.line)
        rest, params = _block_params(rest, helper, tag.line)
        arg, include_zero = self.argument(helper, rest, tag.line)
        self.count += 1
        n, frame = self.count, _Frame(helper, tag.line)
        if helper in ("if", "unless"):
            self.stack.append(frame)
            return "{% if " + _condition(arg, helper, include_zero) + " %}"
        if arg == _ROOT and helper == "each":
            raise HandlebarsError("{{#each}} of the whole context is not supported: name the "
                                  "list or object, e.g. {{#each payload.items}}", tag.line)
        # Handlebars adds a level (what ../ climbs) only when the context changes: #with of
        # the context itself (this, @root at the top) is no level.
        here = self.contexts()[-1]
        if helper == "each" or not (arg == here or (arg == _ROOT and here == "")):
            frame.this = "" if arg == _ROOT else f"_hb{n}"
        frame.params = dict(zip(params, (f"_hb{n}", f"_hbk{n}"), strict=False))
        self.stack.append(frame)
        if helper == "with":
            return (f"{{% with _hb{n} = {arg} %}}{{% if _hb{n} is hb_nonempty %}}")
        frame.data = {"index": f"_hbi{n}", "key": f"_hbk{n}", "first": f"(_hbi{n} == 0)",
                      "last": f"_hbl{n}"}
        return f"{{% for _hbi{n}, _hbk{n}, _hbl{n}, _hb{n} in ({arg})|hb_each %}}"

    def argument(self, helper: str, rest: str, line: int) -> tuple[str, bool]:
        words = rest.split()
        include_zero = False
        if words and words[-1] in ("includeZero=true", "includeZero=false") and helper in (
                "if", "unless"):
            include_zero = words.pop() == "includeZero=true"
        if any(w.startswith("(") for w in words):
            raise HandlebarsError("subexpressions ((helper …)) are not supported", line)
        for word in words:
            if "=" in word:
                raise HandlebarsError(f"hash arguments ({word}) are not supported "
                                      "(#if and #unless take includeZero=true)", line)
        if len(words) != 1:
            raise HandlebarsError(f"{{{{#{helper}}}}} takes one path or value", line)
        word = words[0]
        if _LITERAL.match(word):
            return _literal(word), include_zero
        return self.path(word, line), include_zero

    def close(self, tag: _Tag) -> str:
        name = tag.body
        if not self.stack or self.stack[-1].helper.startswith("jinja:"):
            inside = self.stack[-1].helper[6:] if self.stack else ""
            raise HandlebarsError(f"{{{{/{name}}}}} closes nothing" + (
                f": a {{% {inside} %}} is still open" if inside else ""), tag.line)
        frame = self.stack.pop()
        if name != frame.helper:
            raise HandlebarsError(f"{{{{/{name}}}}} closes {{{{#{frame.helper}}}}} (line "
                                  f"{frame.line})", tag.line)
        return {"if": "{% endif %}", "unless": "{% endif %}", "each": "{% endfor %}",
                "with": "{% endif %}{% endwith %}"}[name]

    def orelse(self, tag: _Tag) -> str:
        if not self.stack or self.stack[-1].helper.startswith("jinja:"):
            raise HandlebarsError("{{else}} outside a block", tag.line)
        frame = self.stack[-1]
        chain = tag.body[4:].strip() if tag.body.startswith("else") else ""
        if frame.chained:
            raise HandlebarsError(f"a second {{{{else}}}} in {{{{#{frame.helper}}}}} (line "
                                  f"{frame.line})", tag.line)
        frame.inverse = True
        if not chain:
            frame.chained = True
            return "{% else %}"
        helper, rest = [*chain.split(None, 1), ""][:2]
        if frame.helper not in ("if", "unless") or helper not in ("if", "unless"):
            raise HandlebarsError(f"{{{{else {helper}}}}} is supported in #if and #unless "
                                  "blocks only", tag.line)
        arg, include_zero = self.argument(helper, rest.strip(), tag.line)
        return "{% elif " + _condition(arg, helper, include_zero) + " %}"

    def output(self, tag: _Tag, raw: bool) -> str:
        body, line = tag.body, tag.line
        printed = self.expression(body, line)
        if printed is None:  # not Handlebars: Jinja, as event templates were before
            if raw:
                raise HandlebarsError(f"{{{{{{{body}}}}}}} is not a Handlebars path", line)
            self.plain_jinja(tag, "{{ " + body + " }}")
            return self.jinja("{{" + body + "\n" * tag.pad + "}}")
        end = "|safe" if raw else ""
        return "{{ " + printed + end + "\n" * tag.pad + " }}"

    def expression(self, body: str, line: int) -> str | None:
        """The Jinja that prints ``body`` as Handlebars would, or None for one to leave to
        Jinja; a Handlebars construct that is not supported raises."""
        if body.startswith(">"):
            raise HandlebarsError(f"partials ({{{{{body}}}}}) are not supported: a template "
                                  "stands alone", line)
        if body.startswith(("#>", "#*", "*")):
            what = "partial blocks" if body.startswith("#>") else "decorators"
            raise HandlebarsError(f"{what} ({{{{{body}}}}}) are not supported", line)
        if body.startswith("^"):
            raise HandlebarsError(f"inverse sections ({{{{{body}}}}}) are not supported: "
                                  f"use {{{{#unless {body[1:].strip()}}}}}", line)
        path = _parse_path(body)
        if path is not None and not (_LITERAL.match(body) or body in _JINJA_WORDS):
            return f"{self.resolve(path, line)}|hb_text"  # a name and subscripts: no ()
        fallback = _FALLBACK.match(body)
        if fallback and _parse_path(fallback[1]) is not None:
            text = fallback[2].strip()
            if not (_NAME.fullmatch(text) and text in self.filters):
                if text[:1] in "\"'" and text[-1:] == text[:1]:
                    text = text[1:-1]
                resolved = self.resolve(_parse_path(fallback[1]), line)  # type: ignore[arg-type]
                return f"(({resolved}) or {json.dumps(text)})|hb_text"
        words = body.split()
        if (len(words) > 1 and _NAME.fullmatch(words[0]) and words[0] not in _JINJA_WORDS
                and not _JINJA_WORDS.intersection(words)
                and all(_HELPER_PARAM.match(w) for w in words[1:])):
            if any(w.startswith("(") for w in words[1:]):
                raise HandlebarsError("subexpressions ((helper …)) are not supported", line)
            raise HandlebarsError(f"the helper '{words[0]}' is not supported: the helpers "
                                  "are the block helpers #if, #unless, #each and #with", line)
        return None

    def contexts(self) -> list[str]:
        """The Jinja expression of each context level, the top ("") first."""
        return [""] + [f.this for f in self.stack if f.this is not None and not f.inverse]

    # --- paths ------------------------------------------------------------------------------
    def path(self, text: str, line: int) -> str:
        path = _parse_path(text)
        if path is None:
            raise HandlebarsError(f"'{text}' is not a Handlebars path", line)
        return self.resolve(path, line)

    def resolve(self, path: _Path, line: int) -> str:
        frames = [f for f in self.stack if not f.inverse]
        segments = list(path.segments)
        if path.data:
            name = segments.pop(0)
            if name == "root":
                base: str | None = ""
            elif name in _DATA:
                datas = [f.data for f in frames if f.data]
                base = datas[-1 - path.ups][name] if path.ups < len(datas) else None
            else:
                raise HandlebarsError(f"@{name} is not a Handlebars data variable (@index, "
                                      "@key, @first, @last, @root)", line)
        else:
            params = {} if path.this or path.ups else {
                k: v for f in frames for k, v in f.params.items()}
            if segments and segments[0] in params:
                base = params[segments.pop(0)]
            else:
                contexts = self.contexts()
                base = contexts[-1 - path.ups] if path.ups < len(contexts) else None
        if base is None:  # above the top, or @index outside #each: undefined
            return "none"
        if base == "":  # the top: its first name is a variable of the template
            if not segments:
                return _ROOT  # the whole context: an object (prints as one, is truthy)
            first = segments.pop(0)
            if not _NAME.fullmatch(first) or first in _JINJA_WORDS:
                raise HandlebarsError(f"'{first}' cannot be named at the top of the "
                                      "context: use a name made of letters, digits and _",
                                      line)
            if _RESERVED.match(first):
                raise HandlebarsError(f"names starting with '_hb' are reserved: '{first}'",
                                      line)
            base = first
        for segment in segments:
            base += f"[{segment}]" if segment.isdigit() else f"[{json.dumps(segment)}]"
        return base


def _parse_path(text: str) -> _Path | None:
    data = text.startswith("@")
    rest = text[1:] if data else text
    ups = 0
    while rest.startswith("../"):
        ups, rest = ups + 1, rest[3:]
    this = False
    if not data and rest in ("this", "."):
        this, rest = True, ""
    elif not data and rest.startswith(("this.", "./")):
        this, rest = True, rest[5:] if rest.startswith("this.") else rest[2:]
    if rest and not _SEGMENTS.fullmatch(rest):
        return None
    if not rest and not this:
        return None
    segments = [s[1:-1] if s.startswith("[") else s for s in _ONE_SEGMENT.findall(rest)]
    if data and (not segments or not re.fullmatch(r"\w+", segments[0])):
        return None
    return _Path(data, ups, this, segments)


def _block_params(rest: str, helper: str, line: int) -> tuple[str, list[str]]:
    match = re.search(r"\s+as\s+\|([^|]*)\|\s*$", rest)
    if not match:
        return rest, []
    names = match[1].split()
    most = 2 if helper == "each" else 1 if helper == "with" else 0
    if not names or len(names) > most or not all(_NAME.fullmatch(n) for n in names):
        raise HandlebarsError(f"block parameters 'as |…|' of #{helper}: "
                              + ("up to two names" if most == 2 else "one name" if most
                                 else "not supported"), line)
    return rest[:match.start()], names


def _literal(word: str) -> str:
    if word in ("null", "undefined"):
        return "none"
    if word[0] in "\"'":
        return json.dumps(word[1:-1])
    return word  # a number, true or false: the same in Jinja


def _condition(arg: str, helper: str, include_zero: bool) -> str:
    test = "hb_truthy(true)" if include_zero else "hb_truthy"
    truthy = f"({arg}) is {test}"
    return f"not ({truthy})" if helper == "unless" else truthy
