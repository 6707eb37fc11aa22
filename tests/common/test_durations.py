"""The one duration parser (`maasflow.common.options`): Go's syntax, bare seconds, bounds, errors.

The daemon's flags and variables, `maasflow serve --job-timeout` and the simulator's fault
flags all go through it, so these cases are the contract for every duration maasflow reads.
"""

from __future__ import annotations

import argparse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maasflow.common.command_parser import CommandParser
from maasflow.common.errors import ConfigError
from maasflow.common.options import Bound, duration_type, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15s", 15.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1h", 3600.0),
        ("2h45m", 9900.0),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("1h0m0.5s", 3600.5),
        ("250us", 0.00025),
        ("250µs", 0.00025),
        ("1000000ns", 0.001),
        ("20", 20.0),
        ("2.5", 2.5),
        (" 15s ", 15.0),
        ("+15s", 15.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    """Go durations and plain numbers of seconds parse to seconds."""
    assert parse_duration(text, "-period") == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "15 s", "1d", "15S", "1m-30s", "inf", "nan", "1e3"])
def test_bad_durations(text: str) -> None:
    """Anything Go's time.ParseDuration would refuse (bar plain numbers) is a ConfigError."""
    with pytest.raises(ConfigError, match=r"^PROVISION_TTL: "):
        parse_duration(text, "PROVISION_TTL")


@given(st.integers(0, 99), st.integers(0, 59), st.integers(0, 59), st.integers(0, 999))
def test_duration_parts_add_up(h: int, m: int, s: int, ms: int) -> None:
    """A duration written hours-minutes-seconds-milliseconds is the sum of its parts."""
    expected = h * 3600 + m * 60 + s + ms / 1000
    assert parse_duration(f"{h}h{m}m{s}s{ms}ms", "x") == pytest.approx(expected)


@pytest.mark.parametrize("text", ["9999999999h", "2562048h", "1e400"])
def test_durations_beyond_go_range_are_refused(text: str) -> None:
    """Past Go's time.Duration maximum (about 292 years) is refused, named by its option."""
    with pytest.raises(ConfigError, match=r"^-grace: "):
        parse_duration(text, "-grace")


@pytest.mark.parametrize(
    ("bound", "text", "ok"),
    [
        (Bound.ANY, "-5s", True),
        (Bound.NON_NEGATIVE, "0", True),
        (Bound.NON_NEGATIVE, "-1s", False),
        (Bound.POSITIVE, "0s", False),
        (Bound.POSITIVE, "-1ms", False),
        (Bound.POSITIVE, "1ns", True),
    ],
)
def test_bounds(bound: Bound, text: str, ok: bool) -> None:
    """A bound refuses zero (POSITIVE) or negative (NON_NEGATIVE, POSITIVE) durations by name."""
    if ok:
        parse_duration(text, "-period", bound)
        return
    with pytest.raises(ConfigError, match=r"^-period: duration .* must (be greater|not be neg)"):
        parse_duration(text, "-period", bound)


def test_error_never_runs_past_one_line_or_echoes_a_long_value() -> None:
    """A long bad value is cut to 40 characters in the one-line message."""
    with pytest.raises(ConfigError) as info:
        parse_duration("x" * 200 + "\nTAIL", "MAAS_QUERY_INTERVAL")
    message = str(info.value)
    assert "\n" not in message and "x" * 41 not in message and "TAIL" not in message


def test_argparse_type_reads_the_same_syntax() -> None:
    """As an argparse type the parser gives seconds for Go durations and bare numbers alike."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout", type=duration_type(Bound.POSITIVE))
    assert parser.parse_args(["--timeout", "1m30s"]).timeout == 90.0
    assert parser.parse_args(["--timeout", "3600"]).timeout == 3600.0
    assert parser.parse_args(["--timeout", "250ms"]).timeout == 0.25


@pytest.mark.parametrize(("value", "words"), [("soon", "is not a duration"), ("0", "greater")])
def test_argparse_type_errors_are_one_line_naming_the_flag(value: str, words: str) -> None:
    """A bad value through a CommandParser is one ConfigError naming the flag and the fix."""
    parser = CommandParser(prog="maasflow tool")
    parser.add_argument("--timeout", type=duration_type(Bound.POSITIVE))
    with pytest.raises(ConfigError) as info:
        parser.parse_args(["--timeout", value])
    message = str(info.value)
    assert "--timeout" in message and words in message and "\n" not in message
