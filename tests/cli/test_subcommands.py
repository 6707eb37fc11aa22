"""Every `maasflow` command answers a bad flag with one line on stderr and exit status 2."""

from __future__ import annotations

from pathlib import Path

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


def test_serve_refuses_a_password_in_its_postgresql_db_url(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """serve's PostgreSQL URL never carries the password (process listings show it): exit 2,
    one line naming --db and where the password goes instead, the password not echoed."""
    assert main(["serve", "--db", "postgresql://maasflow:s3cret@db/maasflow"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("maasflow: --db: the URL holds a password")
    assert "s3cret" not in line


def test_serve_takes_a_db_password_file_only_with_a_postgresql_db(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """--db-password-file beside an SQLite --db is bad input: one line, exit 2."""
    secret = tmp_path / "password"
    secret.write_text("x\n")
    argv = ["serve", "--db", str(tmp_path / "s.sqlite"), "--db-password-file", str(secret)]
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == "maasflow: --db-password-file: only with a postgresql:// --db"
