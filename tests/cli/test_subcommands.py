"""Every `maasflow` command answers a bad flag with one line on stderr and exit status 2."""

from __future__ import annotations

import pytest

from maasflow.cli import SUBCOMMANDS, main


@pytest.mark.parametrize("command", [*sorted(SUBCOMMANDS), None])
def test_an_unknown_flag_is_one_line_and_exit_2(
    command: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The line names the flag and where to look; nothing else is printed."""
    argv = [command, "--no-such-flag"] if command else ["--no-such-flag"]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("maasflow: ") and "no-such-flag" in lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        ("demo", "--timeout"),
        ("demo", "--period"),
        ("status", "--timeout"),
        ("serve", "--job-timeout"),
    ],
)
def test_every_duration_flag_takes_the_one_duration_syntax(
    command: str, flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A duration that is not one is refused in the shared wording, naming the Go syntax."""
    assert main([command, flag, "soon"]) == 2
    _out, err = capsys.readouterr()
    (line,) = err.strip().splitlines()
    assert "'soon' is not a duration" in line and "1m30s" in line


def test_serve_refuses_a_postgresql_db_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """serve's records stay in SQLite: a postgresql:// --db is bad input, not a file name."""
    assert main(["serve", "--db", "postgresql://maasflow@db/maasflow"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("maasflow: --db: serve keeps its records in SQLite only")
