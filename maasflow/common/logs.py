"""Logging set-up for all three programs: structlog events as logfmt or one JSON object a line.

`configure_logging` wires structlog (and the standard library's `logging`, so uvicorn's and
other libraries' records come out in the same format) to one stream. Every event gets an ISO
8601 UTC `timestamp`, its `level`, the context bound with `structlog.contextvars` (the daemon
binds `system_id` and `hostname` per action), and passes through `redact_secrets`, which
replaces the value of any key that looks secret (api_key, token, password, pass,
authorization, secret, credentials), at any depth, with "***". Every string value (nested
ones too) is capped at `safe_text.LOG_VALUE_LIMIT` characters with a visible "…(N more)".
The text format is logfmt (`common.logfmt`: `key=value`, quoted where needed, control and
bidirectional characters escaped, in values, the event and tracebacks alike, so nothing MAAS
or a client sends can drive the reader's terminal or forge a line); JSON escapes them
itself. Tracebacks carry no local variables: those may hold the API key.

When the stream is systemd's journal (`JOURNAL_STREAM` names its device and inode, as
systemd sets it for a unit's stdout/stderr), every line starts with its syslog priority as
sd-daemon(3) prefixes it (`<7>` debug, `<6>` info, `<4>` warning, `<3>` error, `<2>`
critical), so `journalctl -p warning` shows maasflow's warnings and errors.

`logging_options` resolves a program's level and format: a flag, else `LOG_LEVEL` /
`LOG_FORMAT` (`AUTOMATION_` first, as the daemon reads them), else info and text. This
module formats logs; it decides nothing about what is logged.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

from maasflow.common.errors import ConfigError
from maasflow.common.logfmt import LogfmtRenderer
from maasflow.common.safe_text import cap

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
FORMATS = ("text", "json")
LEVEL_VARIABLES = ("AUTOMATION_LOG_LEVEL", "LOG_LEVEL")
FORMAT_VARIABLES = ("AUTOMATION_LOG_FORMAT", "LOG_FORMAT")
# sd-daemon(3) priority prefixes; "exception" and "warn" are mapped by add_log_level already
SYSLOG_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}
REDACTED = "***"
_SECRET_WORDS = frozenset(
    {"apikey", "token", "password", "passwd", "pass", "authorization", "secret", "credentials"}
)
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
_MAX_DEPTH = 8
_HANDLER_MARK = "_maasflow_handler"
_QUIET_LIBRARIES = ("httpx", "httpcore", "transitions")
_SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
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


def _renderer(fmt: str, journal: bool) -> Processor:
    renderer: Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    elif fmt == "text":
        renderer = LogfmtRenderer()
    else:
        raise ValueError(f"log format {fmt!r}: use one of {', '.join(FORMATS)}")
    return JournalPrefix(renderer) if journal else renderer


def _exception_processors(fmt: str) -> list[Processor]:
    """What runs between the shared processors and the renderer: tracebacks, never locals."""
    if fmt == "json":
        return [_DICT_TRACEBACKS]
    return [structlog.processors.format_exc_info]  # plain text; logfmt escapes it


class JournalPrefix:
    """Wraps a renderer: each line of its output starts with the event's `<priority>`."""

    def __init__(self, renderer: Processor) -> None:
        self.renderer = renderer

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> str:
        prefix = f"<{SYSLOG_PRIORITY.get(str(event_dict.get('level')), 6)}>"
        text = str(self.renderer(logger, method, event_dict))
        return "\n".join(prefix + line for line in text.split("\n"))


def is_journal(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """True when `stream` is the journal's: `JOURNAL_STREAM` holds its `device:inode`.

    systemd sets the variable for a unit's output; a child that inherits it but writes
    elsewhere (a file, a pipe) must not prefix, hence the comparison.
    """
    wanted = environ.get("JOURNAL_STREAM", "")
    if not wanted:
        return False
    try:
        found = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return False
    return wanted == f"{found.st_dev}:{found.st_ino}"


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


def configure_logging(
    level: str = "info",
    fmt: str = "text",
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Configure structlog and stdlib logging; `fmt` is "text" or "json". Safe to call again.

    `environ` (default `os.environ`) says whether `stream` is the journal's. Raises
    ValueError for an unknown level or format (`logging_options` checked them already).
    """
    out = sys.stderr if stream is None else stream
    number = _level_number(level)
    renderer = _renderer(fmt, is_journal(out, os.environ if environ is None else environ))
    structlog.configure(
        processors=[*_shared_processors(), *_exception_processors(fmt), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(number),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    _route_stdlib(number, fmt, renderer, out)


def level_named(text: str, origin: str) -> str:
    """A log level as the user wrote it (any case, `warn` too), or ConfigError naming `origin`."""
    value = text.strip().lower()
    value = "warning" if value == "warn" else value
    if value not in LEVELS:
        raise ConfigError(f"{origin}: log level {text[:20]!r}; use one of {', '.join(LEVELS)}")
    return value


def format_named(text: str, origin: str) -> str:
    """A log format (`text` or `json`, any case), or ConfigError naming `origin`."""
    value = text.strip().lower()
    if value not in FORMATS:
        raise ConfigError(f"{origin}: log format {text[:20]!r}; use text or json")
    return value


def add_logging_arguments(parser: argparse.ArgumentParser) -> None:
    """`--log-level` and `--log-format`, for a sub-command that `logging_options` resolves."""
    levels, formats = ", ".join(LEVELS), " or ".join(FORMATS)
    parser.add_argument("--log-level", metavar="LEVEL", help=f"{levels} (else LOG_LEVEL, info)")
    parser.add_argument("--log-format", metavar="FORMAT", help=f"{formats} (else LOG_FORMAT, text)")


def logging_options(
    level: str | None, fmt: str | None, environ: Mapping[str, str]
) -> tuple[str, str]:
    """(level, format) from flags (`None`: not given), else the environment, else info/text."""
    return (
        _option(level, "--log-level", LEVEL_VARIABLES, environ, level_named, "info"),
        _option(fmt, "--log-format", FORMAT_VARIABLES, environ, format_named, "text"),
    )


def _option(
    flag: str | None,
    flag_name: str,
    variables: tuple[str, ...],
    environ: Mapping[str, str],
    parse: Any,
    default: str,
) -> str:
    if flag is not None:
        return str(parse(flag, flag_name))
    for name in variables:
        if environ.get(name):
            return str(parse(environ[name], name))
    return default


def get_logger(name: str | None = None, **initial: Any) -> FilteringBoundLogger:
    """A structlog logger; `initial` key/values are bound to every event it logs."""
    logger: FilteringBoundLogger = structlog.get_logger(name, **initial)
    return logger
