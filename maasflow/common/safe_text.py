r"""Text a person will read, made inert: control and bidi characters escaped, length capped.

Strings from MAAS (hostnames, status messages, error descriptions), from HTTP clients and
from children's output end up in logs, tables and previews. Printed raw, an ESC sequence
moves the cursor, clears the screen or sets the terminal's title; NUL and U+2028 split or
hide a log line; a bidirectional override (U+202E) shows a name backwards. So every human
output passes its text through `escape`, and log values also through `cap`:

    escape("evil" + "\x1b[2J")   ->  evil\x1b[2J          (the four characters \ x 1 b)
    escape("a" + "\u202e" + "b") ->  a\u202eb
    cap("x" * 5000, 4096)        ->  4096 x's, then "…(904 more)"

`escape` writes every character Python does not call printable (`str.isprintable`: the C0
and C1 controls, DEL, format characters such as the bidi controls and zero-width ones,
line and paragraph separators, lone surrogates, unassigned code points, spaces other than
" ") as a Python-style escape (\n, \x1b, \u2028, \U000e0001), as `repr` does, so a value reads
the same in every output. `keep` names characters let through (a traceback keeps its
newlines). This module decides nothing about where text goes.
"""

from __future__ import annotations

LOG_VALUE_LIMIT = 4096  # characters of one logged value; a 1 MB status_message is not useful
MORE = "…({} more)"
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(text: str, keep: str = "") -> str:
    """`text` with every non-printable character (bar those in `keep`) written as an escape."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch in keep else _escaped(ch) for ch in text)


def _escaped(ch: str) -> str:
    if ch in _SHORT:
        return _SHORT[ch]
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def cap(text: str, limit: int = LOG_VALUE_LIMIT) -> str:
    """`text` cut to `limit` characters plus a visible "…(N more)" when it is longer."""
    if len(text) <= limit:
        return text
    return text[:limit] + MORE.format(len(text) - limit)


def shown(text: str, limit: int = LOG_VALUE_LIMIT) -> str:
    """Escaped and capped: what a table cell or a log value may show of `text`."""
    return escape(cap(text, limit))
