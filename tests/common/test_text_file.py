"""A capped text file is read whole, or refused with one line naming the option and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from maasflow.common.errors import ConfigError
from maasflow.common.text_file import read_capped_text, size_text


def test_a_file_within_the_cap_is_read_as_utf8(tmp_path: Path) -> None:
    """Exactly `limit` bytes of UTF-8 come back as text."""
    path = tmp_path / "f"
    path.write_text("é" * 5, encoding="utf-8")
    assert read_capped_text(path, "-x", 10) == "é" * 5


@pytest.mark.parametrize(
    ("content", "limit", "says"),
    [
        (b"x" * 1025, 1024, "-x: file '{}' is larger than 1 KiB"),
        (b"\xff\xfe", 100, "-x: file '{}' is not UTF-8 text"),
    ],
)
def test_a_file_too_large_or_not_utf8_is_refused(
    tmp_path: Path, content: bytes, limit: int, says: str
) -> None:
    """One line: the option, the file, and what is wrong with it."""
    path = tmp_path / "f"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as error:
        read_capped_text(path, "-x", limit)
    assert str(error.value) == says.format(path)


def test_a_missing_file_names_the_reason(tmp_path: Path) -> None:
    """The OS's reason is given, not a traceback."""
    with pytest.raises(ConfigError, match=r"^-x: cannot read file '.*nope': No such file"):
        read_capped_text(tmp_path / "nope", "-x", 10)


def test_caps_are_written_as_a_person_would() -> None:
    """16 MiB, 64 KiB, or a plain byte count."""
    assert [size_text(16 << 20), size_text(64 << 10), size_text(1000)] == [
        "16 MiB",
        "64 KiB",
        "1000 bytes",
    ]
