"""Logging set-up: JSON and text rendering, context, levels, stdlib routing and redaction."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from datetime import datetime
from pathlib import Path
from typing import TextIO

import pytest
import structlog

from maasflow.common.errors import ConfigError
from maasflow.common.logs import (
    configure_logging,
    get_logger,
    is_secret_key,
    logging_options,
    redact_secrets,
)

SECRET = "cccccccccccccccccccccccccccccccc"


def _lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def test_json_is_one_object_per_line_with_utc_timestamp() -> None:
    """JSON format writes one object per event with level, event and an ISO UTC timestamp."""
    out = io.StringIO()
    configure_logging("info", "json", out)
    get_logger("t").info("pass done", selected=3)
    (line,) = _lines(out)
    record = json.loads(line)
    assert record["event"] == "pass done" and record["selected"] == 3
    assert record["level"] == "info"
    stamp = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
    offset = stamp.utcoffset()
    assert offset is not None and offset.total_seconds() == 0


def test_context_variables_are_merged() -> None:
    """system_id and hostname bound with contextvars appear in every event."""
    out = io.StringIO()
    configure_logging("info", "json", out)
    structlog.contextvars.bind_contextvars(system_id="abc123", hostname="node1")
    get_logger().info("commission")
    record = json.loads(_lines(out)[0])
    assert (record["system_id"], record["hostname"]) == ("abc123", "node1")


def test_level_filters_events() -> None:
    """Events below the configured level are dropped."""
    out = io.StringIO()
    configure_logging("warning", "json", out)
    log = get_logger()
    log.info("quiet")
    log.warning("loud")
    assert [json.loads(x)["event"] for x in _lines(out)] == ["loud"]


def test_text_format_is_key_value_without_colours_off_a_tty() -> None:
    """Text format renders key=value and no ANSI escapes when the stream is not a TTY."""
    out = io.StringIO()
    configure_logging("debug", "text", out)
    get_logger().debug("action", system_id="abc123", action="deploy")
    text = out.getvalue()
    assert "action" in text and "system_id=abc123" in text and "action=deploy" in text
    assert "\x1b[" not in text


def test_secrets_are_redacted_in_output() -> None:
    """A secret-looking key's value never reaches the stream, nested ones included."""
    out = io.StringIO()
    configure_logging("info", "json", out)
    get_logger().info(
        "power set", api_key=SECRET, params={"power_pass": SECRET, "power_user": "admin"}
    )
    text = out.getvalue()
    assert SECRET not in text
    record = json.loads(text)
    assert record["api_key"] == "***"
    assert record["params"] == {"power_pass": "***", "power_user": "admin"}


def test_stdlib_records_use_the_same_format() -> None:
    """Standard-library records come out as JSON too; httpx's per-request INFO lines do not."""
    out = io.StringIO()
    configure_logging("info", "json", out)
    logging.getLogger("uvicorn.error").info("started on %s", "127.0.0.1")
    logging.getLogger("httpx").info("HTTP Request: GET /MAAS/api/2.0/machines/")
    (line,) = _lines(out)
    record = json.loads(line)
    assert record["event"] == "started on 127.0.0.1" and record["logger"] == "uvicorn.error"
    assert record["level"] == "info" and "timestamp" in record


def test_configuring_twice_does_not_duplicate_output() -> None:
    """A second configure_logging replaces the first handler instead of adding one."""
    first, second = io.StringIO(), io.StringIO()
    configure_logging("info", "json", first)
    configure_logging("info", "json", second)
    logging.getLogger("x").warning("once")
    assert first.getvalue() == "" and len(_lines(second)) == 1


def test_text_tracebacks_do_not_show_local_variables() -> None:
    """An exception logged in text format does not print the frame's local variables."""
    out = io.StringIO()
    configure_logging("info", "text", out)
    api_key = SECRET
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        get_logger().exception("failed")
    assert "RuntimeError: boom" in out.getvalue()
    assert api_key not in out.getvalue()


def test_json_tracebacks_are_structured() -> None:
    """An exception logged in JSON format is a structured field, still one line."""
    out = io.StringIO()
    configure_logging("info", "json", out)
    try:
        raise ValueError("bad")
    except ValueError:
        get_logger().exception("failed")
    (line,) = _lines(out)
    assert json.loads(line)["exception"][0]["exc_type"] == "ValueError"


@pytest.mark.parametrize(("level", "fmt"), [("loud", "json"), ("info", "xml")])
def test_bad_level_or_format(level: str, fmt: str) -> None:
    """An unknown level or format is a ValueError (settings validated them already)."""
    with pytest.raises(ValueError):
        configure_logging(level, fmt, io.StringIO())


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("api_key", True),
        ("apiKey", True),
        ("MAAS_API_KEY", True),
        ("token", True),
        ("power_token", True),
        ("password", True),
        ("power_pass", True),
        ("Authorization", True),
        ("secret", True),
        ("client_secret", True),
        ("X-Auth-Token", True),
        ("passes", False),
        ("bypass", False),
        ("hostname", False),
        ("system_id", False),
        ("event", False),
        (3, False),
    ],
)
def test_secret_key_names(key: object, secret: bool) -> None:
    """Keys are secret by their words, not by any substring ("bypass" is not a pass)."""
    assert is_secret_key(key) is secret


def test_redaction_processor_walks_lists_and_dicts() -> None:
    """The processor masks secrets inside lists of dicts and leaves the event alone."""
    event = {
        "event": "password reset",
        "items": [{"token": SECRET}, ("x", {"secret": SECRET})],
        "authorization": "OAuth ...",
    }
    out = redact_secrets(None, "info", event)
    assert out["event"] == "password reset"
    assert out["items"] == [{"token": "***"}, ("x", {"secret": "***"})]
    assert out["authorization"] == "***"


# --- hostile strings: escaped in text, capped in both formats -------------------------------

HOSTILE = "evil\x1b]0;pwned\x07\x1b[2J\x00tail\u2028forged\u202ereversed"
RAW_CONTROLS = ("\x1b", "\x07", "\x00", "\u2028", "\u202e")


def test_maas_strings_without_whitespace_reach_the_text_log_escaped_never_raw() -> None:
    """ESC/OSC sequences, NUL, U+2028 and bidi overrides in a value or an event are escaped."""
    out = io.StringIO()
    configure_logging("info", "text", out)
    get_logger().info("machine seen", hostname=HOSTILE)
    logging.getLogger("uvicorn.error").warning("bad request from %s", HOSTILE)
    text = out.getvalue()
    assert not any(raw in text for raw in RAW_CONTROLS)
    assert text.count("evil\\x1b]0;pwned\\x07\\x1b[2J\\x00tail\\u2028forged\\u202ereversed") == 2
    assert len(text.splitlines()) == 2


def test_hostile_exception_messages_are_escaped_in_text_tracebacks_which_keep_their_lines() -> None:
    """A traceback is still several lines, but its message cannot drive the terminal."""
    out = io.StringIO()
    configure_logging("info", "text", out)
    try:
        raise RuntimeError(HOSTILE)
    except RuntimeError:
        get_logger().exception("failed")
    text = out.getvalue()
    assert not any(raw in text for raw in RAW_CONTROLS)
    assert "RuntimeError: evil\\x1b]0;pwned" in text and len(text.splitlines()) > 3


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_megabyte_status_message_is_logged_capped_with_a_visible_marker(fmt: str) -> None:
    """A 1 MB value (top-level or nested) is cut to a few KiB and says how much was left out."""
    out = io.StringIO()
    configure_logging("info", fmt, out)
    huge = "m" * 1_000_000
    get_logger().info("machine failed", status_message=huge, details={"error": [huge]})
    text = out.getvalue()
    if fmt == "json":
        text = json.dumps(json.loads(text), ensure_ascii=False)
    assert len(text) < 3 * 5000
    assert text.count(f"…({1_000_000 - 4096} more)") == 2


def test_json_tracebacks_carry_no_local_variables() -> None:
    """An exception logged in JSON does not print frame locals, where the API key may sit."""
    out = io.StringIO()
    configure_logging("info", "json", out)
    api_key = SECRET
    try:
        raise ValueError("bad")
    except ValueError:
        get_logger().exception("failed")
    assert api_key not in out.getvalue()
    assert json.loads(out.getvalue())["exception"][0]["exc_type"] == "ValueError"


# --- logfmt and the journal's priorities ----------------------------------------------------

_PAIR = re.compile(r'([^\s=]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)(?:\s|$)')


def parse_logfmt(line: str) -> dict[str, str]:
    """A logfmt reader as go-logfmt reads: bare or quoted values, `\\` and `\"` inside quotes."""
    pairs = _PAIR.findall(line)
    assert " ".join(f"{k}={v}" for k, v in pairs) == line, f"not logfmt: {line!r}"
    return {k: re.sub(r"\\(.)", r"\1", v[1:-1]) if v.startswith('"') else v for k, v in pairs}


def test_text_format_is_logfmt_that_reads_back_to_the_values() -> None:
    """Spaces, quotes, `=`, backslashes, empty text, null, booleans, numbers and JSON survive
    a logfmt reader; timestamp, level and event come first."""
    out = io.StringIO()
    configure_logging("info", "text", out)
    values = {
        "spaced": "MAAS unreachable: no answer",
        "quoted": 'say "hi"',
        "pair": "a=b",
        "path": "C:\\dir\\",
        "empty": "",
        "bare": "Ready",
    }
    get_logger().info("pass done", **values, none=None, ok=True, seen=3, rate=1.5, by={"New": 2})
    (line,) = _lines(out)
    record = parse_logfmt(line)
    assert list(record)[:3] == ["timestamp", "level", "event"]
    assert (record["level"], record["event"]) == ("info", "pass done")
    assert {k: record[k] for k in values} == values
    assert (record["none"], record["ok"], record["seen"], record["rate"]) == (
        "null",
        "true",
        "3",
        "1.5",
    )
    assert json.loads(record["by"]) == {"New": 2}
    assert "bare=Ready " in line and 'spaced="MAAS unreachable: no answer"' in line


def test_a_logfmt_key_cannot_break_the_line() -> None:
    """A key with a space or `=` (a stdlib `extra`, a hostile dict) is written with `_`."""
    out = io.StringIO()
    configure_logging("info", "text", out)
    get_logger().info("odd", **{"a b=c": "v"})
    assert "a_b_c=v" in out.getvalue()
    assert parse_logfmt(_lines(out)[0])["a_b_c"] == "v"


def _journal_file(tmp_path: Path) -> tuple[TextIO, dict[str, str]]:
    handle = (tmp_path / "journal").open("w")
    found = os.fstat(handle.fileno())
    return handle, {"JOURNAL_STREAM": f"{found.st_dev}:{found.st_ino}"}


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_on_the_journal_every_line_carries_its_syslog_priority(fmt: str, tmp_path: Path) -> None:
    """With JOURNAL_STREAM naming the stream, lines start <7>/<6>/<4>/<3>, tracebacks too."""
    handle, environ = _journal_file(tmp_path)
    with handle:
        configure_logging("debug", fmt, handle, environ)
        log = get_logger()
        log.debug("d")
        log.info("i")
        log.warning("w")
        logging.getLogger("uvicorn.error").error("e from the standard library")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("x")
    lines = (tmp_path / "journal").read_text().splitlines()
    assert [line[:3] for line in lines[:4]] == ["<7>", "<6>", "<4>", "<3>"]
    assert all(line.startswith("<3>") for line in lines[4:])
    assert len(lines) > (5 if fmt == "text" else 4)  # the text traceback has lines of its own


def test_journal_stream_naming_another_file_adds_no_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child that inherited JOURNAL_STREAM but writes elsewhere (a file) writes plain lines;
    the variable is read from os.environ by default."""
    journal, environ = _journal_file(tmp_path)
    monkeypatch.setenv("JOURNAL_STREAM", environ["JOURNAL_STREAM"])
    with journal, (tmp_path / "other").open("w") as other:
        configure_logging("info", "text", other)
        get_logger().warning("w")
        configure_logging("info", "text", journal)
        get_logger().warning("w")
    assert (tmp_path / "other").read_text().startswith("timestamp=")
    assert (tmp_path / "journal").read_text().startswith("<4>timestamp=")


def test_a_stream_without_a_file_is_never_the_journal() -> None:
    """A StringIO has no device and inode: no prefix, whatever JOURNAL_STREAM says."""
    out = io.StringIO()
    configure_logging("info", "text", out, {"JOURNAL_STREAM": "8:1234"})
    get_logger().info("i")
    assert out.getvalue().startswith("timestamp=")


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        ((None, None), {}, ("info", "text")),
        ((None, None), {"LOG_LEVEL": "WARN", "LOG_FORMAT": "JSON"}, ("warning", "json")),
        ((None, None), {"LOG_LEVEL": "debug", "AUTOMATION_LOG_LEVEL": "error"}, ("error", "text")),
        (("debug", "text"), {"LOG_LEVEL": "error", "LOG_FORMAT": "json"}, ("debug", "text")),
    ],
)
def test_logging_options_take_the_flag_then_the_environment_then_the_default(
    flags: tuple[str | None, str | None], env: dict[str, str], expected: tuple[str, str]
) -> None:
    """The same precedence as the daemon's settings: flag, AUTOMATION_ variable, variable."""
    assert logging_options(*flags, env) == expected


def test_a_bad_log_level_variable_is_named_in_a_config_error() -> None:
    """LOG_LEVEL=loud is one ConfigError line naming the variable and the choices."""
    with pytest.raises(ConfigError, match=r"^LOG_LEVEL: log level 'loud'; use one of debug"):
        logging_options(None, None, {"LOG_LEVEL": "loud"})
