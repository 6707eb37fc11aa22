"""Option values every maasflow program reads the same way: durations and the state directory.

**Durations** use Go's syntax, as maas-flow's flags did: a sequence of decimal numbers, each
with a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), optionally signed: `15s`, `1m30s`,
`500ms`, `2h45m`, `1.5h`. A bare number is a number of seconds (`20`, `2.5`), so the flags
that always took seconds (`maasflow serve --job-timeout 3600`) keep working. Exponents, `inf`,
`nan`, spaces inside and units Go does not know (`1d`, `15S`) are refused, as is anything
beyond Go's `time.Duration` range (about 292 years). `parse_duration` serves the daemon's
flags and variables; `duration_type` is the same parser as an argparse `type=`.

**The state directory** (`state_directory`) is where a program keeps what must outlive it:
systemd's `$STATE_DIRECTORY` (the first, when `StateDirectory=` lists several), else
`$XDG_STATE_HOME/maasflow`, else `~/.local/state/maasflow`.

This module parses text and reads an environment mapping; it opens no file and names no
flag of its own: callers pass the flag or variable an error must name.
"""

from __future__ import annotations

import argparse
import enum
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from maasflow.common.errors import ConfigError

STATE_DIRECTORY = "STATE_DIRECTORY"
_MAX_SECONDS = 9_223_372_036.854775807  # Go's time.Duration maximum
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION = re.compile(rf"[-+]?(?:{_PART.pattern})+")
_PLAIN_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)")
_HINT = "use a Go duration such as 15s, 1m30s, 500ms or 2h45m (a bare number is seconds)"


class Bound(enum.Enum):
    """Which durations an option accepts."""

    ANY = "any"
    NON_NEGATIVE = "non-negative"  # 0 allowed: "do not wait"
    POSITIVE = "positive"  # a period or a timeout: 0 would spin or fail at once


def duration_seconds(text: str, bound: Bound = Bound.ANY) -> float:
    """Seconds in `text`; ValueError with the reason (never naming an option) otherwise."""
    value = text.strip()
    if _PLAIN_NUMBER.fullmatch(value):
        seconds = float(value)
    elif _DURATION.fullmatch(value):
        sign = -1.0 if value.startswith("-") else 1.0
        seconds = sign * sum(float(num) * _UNITS[unit] for num, unit in _PART.findall(value))
    else:
        raise ValueError(f"{value[:40]!r} is not a duration; {_HINT}")
    if not math.isfinite(seconds) or abs(seconds) > _MAX_SECONDS:
        raise ValueError(f"duration {value[:40]!r} is too long")
    if bound is Bound.POSITIVE and seconds <= 0:
        raise ValueError(f"duration {value!r} must be greater than 0")
    if bound is Bound.NON_NEGATIVE and seconds < 0:
        raise ValueError(f"duration {value!r} must not be negative")
    return seconds


def parse_duration(text: str, origin: str, bound: Bound = Bound.ANY) -> float:
    """Seconds in `text`, or a one-line ConfigError that starts with `origin`."""
    try:
        return duration_seconds(text, bound)
    except ValueError as exc:
        raise ConfigError(f"{origin}: {exc}") from None


def duration_type(bound: Bound = Bound.ANY) -> Callable[[str], float]:
    """An argparse `type=`: seconds, or an error argparse words as `argument --flag: reason`."""

    def seconds(text: str) -> float:
        try:
            return duration_seconds(text, bound)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    seconds.__name__ = "duration"  # what argparse calls the type in its messages
    return seconds


def first_state_directory(value: str) -> str:
    """The first of the paths systemd joins with ":" when `StateDirectory=` lists several."""
    return value.split(":")[0]


def state_directory(environ: Mapping[str, str]) -> Path:
    """`$STATE_DIRECTORY`, else `$XDG_STATE_HOME/maasflow`, else `~/.local/state/maasflow`."""
    given = first_state_directory(environ.get(STATE_DIRECTORY, ""))
    if given:
        return Path(given)
    home = Path(environ.get("HOME") or Path.home())
    return Path(environ.get("XDG_STATE_HOME") or home / ".local" / "state") / "maasflow"
