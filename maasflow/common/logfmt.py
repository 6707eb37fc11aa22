r"""logfmt: one event as one line of `key=value` pairs, the text log format.

    timestamp=2026-11-30T23:50:01.123456Z level=info event=pass seen=12 statuses={"Ready":3}
    timestamp=... level=warning event="machine needs a human" hostname="evil\x1b[2J"

The rules are those of go-logfmt (what Loki, Grafana, `hl` and `lnav` read): a value is
written bare unless it is empty or holds a space, `=`, `"`, a backslash or a character that
is not printable; then it is quoted, with `\\` and `\"` for a backslash and a quote inside.
`None` is `null`, booleans are `true`/`false`, numbers as Python writes them, and lists and
dicts compact JSON. Characters a terminal would obey (controls, bidi overrides, U+2028) are
written as escapes by `safe_text.escape` (`\x1b`, `\u202e`), quoted, so no value can forge a
line or drive the reader's terminal. Keys keep letters, digits, `_`, `.`, `-` (others become
`_`). `timestamp`, `level` and `event` come first, then the event's keys in their order. A
traceback (`exception`, `stack`) follows the line, one line per line of it, escaped too.

This module only renders; which keys an event has is the logger's business.
"""

from __future__ import annotations

import json
import re
from typing import Any

from structlog.typing import EventDict, WrappedLogger

from maasflow.common.safe_text import cap, escape

FIRST = ("timestamp", "level", "event")
TRAILERS = ("exception", "stack")  # multi-line texts written after the line
TRAILER_LIMIT = 64 * 1024
_BARE_KEY = re.compile(r"[^A-Za-z0-9_.\-]")
_NEEDS_QUOTES = frozenset(' ="\\')


def key_text(key: object) -> str:
    """A key as logfmt allows it: never empty, no space, `=` or quote."""
    return _BARE_KEY.sub("_", str(key)) or "_"


def value_text(value: Any) -> str:
    """A value as logfmt writes it: bare when it can be, else quoted (module docstring)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = value if isinstance(value, str) else _json(value)
    if text and text.isprintable() and not _NEEDS_QUOTES.intersection(text):
        return text
    return '"' + escape(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


def _json(value: Any) -> str:
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return str(value)


def render_line(event_dict: EventDict) -> str:
    """The event as one logfmt line, its trailers (tracebacks) on the lines after it."""
    trailers = [event_dict.pop(name) for name in TRAILERS if name in event_dict]
    ordered = [name for name in FIRST if name in event_dict]
    ordered += [name for name in event_dict if name not in FIRST]
    line = " ".join(f"{key_text(k)}={value_text(event_dict[k])}" for k in ordered)
    for trailer in trailers:
        line += "\n" + escape(cap(str(trailer).rstrip("\n"), TRAILER_LIMIT), keep="\n")
    return line


class LogfmtRenderer:
    """structlog's last processor for the text format: the event as logfmt."""

    def __call__(self, _logger: WrappedLogger, _method: str, event_dict: EventDict) -> str:
        return render_line(event_dict)
