"""The one secret-file rule (`maasflow.common.secrets`): capped, UTF-8, stripped, one line.

Every secret file maasflow reads (the daemon's key and token files, systemd credentials,
serve's token, password and power-token files) goes through `read_secret_file`, so these
cases are the contract for all of them; the token and key shapes are checked here too.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from maasflow.common.errors import ConfigError
from maasflow.common.secrets import (
    SECRET_FILE_LIMIT,
    file_origin,
    parse_secret,
    parse_token,
    read_secret_file,
)

SECRET = "Zq9-secret_Value.42"


@pytest.mark.parametrize(
    "content",
    [SECRET, SECRET + "\n", SECRET + "\r\n", f"  {SECRET}\t\n", f"\n\n{SECRET}\n\n"],
    ids=["bare", "newline", "crlf", "indented", "blank-lines-around"],
)
def test_surrounding_whitespace_is_stripped(tmp_path: Path, content: str) -> None:
    """A trailing newline, CRLF, indentation or blank lines around the secret are not part of it."""
    path = tmp_path / "secret"
    path.write_bytes(content.encode())
    assert read_secret_file(path, "--token-file", "token") == SECRET


def test_a_secret_of_exactly_the_limit_is_read(tmp_path: Path) -> None:
    """4 KiB is allowed; the cap refuses only what is larger."""
    path = tmp_path / "secret"
    path.write_text("k" * SECRET_FILE_LIMIT)
    assert len(read_secret_file(path, "X_FILE", "key")) == SECRET_FILE_LIMIT


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "the file is empty; put the token in it"),
        (b" \n\t\r\n", "the file is empty"),
        (b"first\nsecond\n", "must be one line"),
        (b"first\rsecond", "must be one line"),
        (b"\xff\xfe" + SECRET.encode(), "the token is not UTF-8 text"),
        (b"k" * (SECRET_FILE_LIMIT + 1), "the token is larger than 4 KiB"),
    ],
    ids=["empty", "blank", "two-lines", "carriage-return", "not-utf8", "over-4KiB"],
)
def test_files_breaking_the_rule_are_refused_by_name(
    tmp_path: Path, content: bytes, words: str
) -> None:
    """Each refusal is one line naming the option and the file, never the file's content."""
    path = tmp_path / "secret"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        read_secret_file(path, "--token-file", "token")
    message = str(info.value)
    assert message.startswith(f"--token-file file {str(path)!r}: ") and words in message
    assert "\n" not in message and "first" not in message and "second" not in message
    assert SECRET not in message


def test_a_missing_file_names_the_reason(tmp_path: Path) -> None:
    """A file that does not exist is refused with the OS's reason, not silently skipped."""
    with pytest.raises(ConfigError, match=r"cannot read the MAAS API key: No such file"):
        read_secret_file(tmp_path / "absent", "MAAS_API_KEY_FILE", "MAAS API key")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_names_the_reason(tmp_path: Path) -> None:
    """A file the user may not read is refused with "Permission denied"."""
    path = tmp_path / "secret"
    path.write_text(SECRET)
    path.chmod(0o000)
    with pytest.raises(ConfigError, match=r"cannot read the token: Permission denied"):
        read_secret_file(path, "--token-file", "token")


def test_a_directory_is_not_a_secret_file(tmp_path: Path) -> None:
    """Naming a directory is refused with one line, not a traceback."""
    with pytest.raises(ConfigError, match=r"cannot read the token"):
        read_secret_file(tmp_path, "--token-file", "token")


def test_file_origin_is_how_every_message_names_a_file(tmp_path: Path) -> None:
    """Errors and origins name a file as `<option> file '<path>'`."""
    assert file_origin("PROVISION_TOKEN_FILE", tmp_path / "t") == (
        f"PROVISION_TOKEN_FILE file '{tmp_path / 't'}'"
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [("", "empty; give the token"), ("  \n", "empty"), ("a\nb", "one line")],
)
def test_secret_text_follows_the_same_rule(text: str, words: str) -> None:
    """A secret given as text (a variable) is stripped, and must be one non-empty line."""
    with pytest.raises(ConfigError, match=rf"^SOME_TOKEN: .*{words}"):
        parse_secret(text, "SOME_TOKEN", "token")
    assert parse_secret(f" {SECRET}\n", "SOME_TOKEN", "token") == SECRET


@pytest.mark.parametrize("bad", ["two words", "tab\there", "caf\u00e9", "bell\x07"])
def test_a_token_is_printable_ascii_without_spaces(bad: str) -> None:
    """A Bearer token must fit an Authorization header as is; the error never quotes it."""
    with pytest.raises(ConfigError, match="printable ASCII without spaces") as info:
        parse_token(bad, "MAASFLOW_POWER_TOKEN", "power token")
    assert bad not in str(info.value)
    assert parse_token(f"{SECRET}\n", "MAASFLOW_POWER_TOKEN") == SECRET
