"""Logging set-up: structlog key=value events, rendered as text or one JSON object per line.

`configure_logging` wires structlog (and the standard library's `logging`, so uvicorn's and
other libraries' records come out in the same format) to one stream. Every event gets an ISO
8601 UTC `timestamp`, its `level`, the context bound with `structlog.contextvars` (the daemon
binds `system_id` and `hostname` per action), and passes through `redact_secrets`, which
replaces the value of any key that looks secret (api_key, token, password, pass,
authorization, secret, credentials), at any depth, with "***". Every string value (nested
ones too) is capped at `safe_text.LOG_VALUE_LIMIT` characters with a visible "…(N more)"; the
text format also escapes control and bidirectional characters (`safe_text.escape`), in
values, the event and tracebacks alike, so nothing MAAS or a client sends can drive the
reader's terminal or forge a line (JSON escapes them itself). JSON tracebacks carry no local
variables: those may hold the API key. This module formats logs; it decides nothing about
what is logged.
"""

from __future__ import annotations

import io
import logging
import re
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, ExcInfo, FilteringBoundLogger, Processor, WrappedLogger

from maasflow.common.safe_text import cap, escape

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
FORMATS = ("text", "json")
REDACTED = "***"
_SECRET_WORDS = frozenset(
    {"apikey", "token", "password", "passwd", "pass", "authorization", "secret", "credentials"}
)
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
_MAX_DEPTH = 8
_HANDLER_MARK = "_maasflow_handler"
_QUIET_LIBRARIES = ("httpx", "httpcore", "transitions")
_SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
_TRACEBACK_LIMIT = 64 * 1024
# JSON tracebacks without locals: a frame's locals may hold the API key or a token.
_DICT_TRACEBACKS = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


def is_secret_key(key: object) -> bool:
    """True when a key names a secret: `api_key`, `power_pass`, `X-Auth-Token`, `secret`..."""
    if not isinstance(key, str):
        return False
    lowered = key.lower()
    if "api_key" in lowered or "apikey" in lowered:
        return True
    return any(word in _SECRET_WORDS for word in _WORD_SPLIT.split(lowered))


def _scrub(value: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return value
    if isinstance(value, dict):
        return {k: REDACTED if is_secret_key(k) else _scrub(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(item, depth + 1) for item in value)
    return value


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: replace secret-looking values with "***", nested dicts included."""
    for key in list(event_dict):
        if key == "event":
            continue
        if is_secret_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key], 1)
    return event_dict


def _capped(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return cap(value)
    if depth > _MAX_DEPTH:
        return value
    if isinstance(value, dict):
        return {k: _capped(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_capped(item, depth + 1) for item in value)
    return value


def cap_values(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: cut every string value (nested ones too) to a few KiB."""
    for key, value in event_dict.items():
        if key not in ("exc_info", "exception", "stack"):
            event_dict[key] = _capped(value, 1)
    return event_dict


def escape_values(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor for the text format: escape control and bidi characters.

    Only top-level strings: the renderer shows every other value with `repr`, which escapes
    the same characters itself.
    """
    for key, value in event_dict.items():
        if isinstance(value, str):
            keep = "\n" if key in ("exception", "stack") else ""
            event_dict[key] = escape(value, keep)
    return event_dict


def escaped_traceback(sio: TextIO, exc_info: ExcInfo) -> None:
    """A plain traceback (no locals: they may hold the API key), escaped and capped."""
    plain = io.StringIO()
    structlog.dev.plain_traceback(plain, exc_info)
    sio.write(escape(cap(plain.getvalue(), _TRACEBACK_LIMIT), keep="\n"))


def _level_number(level: str) -> int:
    try:
        return LEVELS[level.lower()]
    except KeyError:
        raise ValueError(f"log level {level!r}: use one of {', '.join(LEVELS)}") from None


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
        cap_values,
    ]


def _renderer(fmt: str, stream: TextIO) -> Processor:
    if fmt == "json":
        return structlog.processors.JSONRenderer(sort_keys=False)
    if fmt == "text":
        colors = bool(getattr(stream, "isatty", lambda: False)())
        # plain tracebacks: a rich one would print local variables, the API key among them
        return structlog.dev.ConsoleRenderer(
            colors=colors,
            pad_event_to=0,
            sort_keys=False,
            exception_formatter=escaped_traceback,
        )
    raise ValueError(f"log format {fmt!r}: use one of {', '.join(FORMATS)}")


def _exception_processors(fmt: str) -> list[Processor]:
    """What runs between the shared processors and the renderer."""
    if fmt == "json":
        return [_DICT_TRACEBACKS]
    return [escape_values]


def _route_stdlib(level: int, fmt: str, renderer: Processor, stream: TextIO) -> None:
    """Send standard-library log records through the same processors and stream."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(handler)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *_shared_processors()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *_exception_processors(fmt),
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _QUIET_LIBRARIES:  # chatty at INFO (every request, every state change)
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    for name in _SERVER_LOGGERS:  # undo any uvicorn dictConfig: one handler, one format
        server = logging.getLogger(name)
        server.handlers.clear()
        server.propagate, server.disabled = True, False
        server.setLevel(logging.NOTSET)


def configure_logging(level: str = "info", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Configure structlog and stdlib logging; `fmt` is "text" or "json". Safe to call again.

    Raises ValueError for an unknown level or format (settings validated them already).
    """
    out = sys.stderr if stream is None else stream
    number = _level_number(level)
    renderer = _renderer(fmt, out)
    structlog.configure(
        processors=[*_shared_processors(), *_exception_processors(fmt), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(number),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    _route_stdlib(number, fmt, renderer, out)


def get_logger(name: str | None = None, **initial: Any) -> FilteringBoundLogger:
    """A structlog logger; `initial` key/values are bound to every event it logs."""
    logger: FilteringBoundLogger = structlog.get_logger(name, **initial)
    return logger
