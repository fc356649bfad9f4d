"""Text that becomes an email header (a subject, a sender's or recipient's name) is one line.

A line break in a header value ends that header and starts another (``Hello\\nBcc:
v@evil.example``). Every API family refuses such a value at intake (``header_problem``, as
addresses are refused by their validator), and the message layer folds whatever still carries
one (a row stored before the rule, a rendered subject) onto one line (``header_fold``).
"""

import re

# CR, LF and NUL, and what Python's str.splitlines also ends a line at (VT, FF, the file,
# group and record separators, NEL, the Unicode line and paragraph separators).
_BREAKS = "\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_BREAK = re.compile(f"[{_BREAKS}]")
_FOLD = re.compile(f"[ \t]*[{_BREAKS}]+[ \t{_BREAKS}]*")
ONE_LINE = "must be a single line: no line breaks (CR, LF) or NUL characters."


def header_problem(value: str) -> str | None:
    """Why ``value`` cannot go into a header (``ONE_LINE``), or None when it can."""
    return ONE_LINE if _BREAK.search(value) else None


def header_fold(value: str) -> str:
    """``value`` on one line: each line break, with the blanks around it, becomes a space."""
    return _FOLD.sub(" ", value).strip() if _BREAK.search(value) else value
