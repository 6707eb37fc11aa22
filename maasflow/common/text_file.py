"""A small text file read whole, with a cap: filter and targets files, user data.

`read_capped_text` reads at most `limit` bytes (one more tells it the file is larger), decodes
UTF-8, and raises `ConfigError` with one line that starts with `origin` (the flag, variable or
rule field that named the file) for a file that cannot be read, is too large or is not UTF-8.
No error quotes the file's content, so `common.secrets` reads secret files with it too,
naming the secret (`subject="the MAAS API key"`) instead of the file.
"""

from __future__ import annotations

from pathlib import Path

from maasflow.common.errors import ConfigError


def size_text(limit: int) -> str:
    """`16 MiB`, `64 KiB` or `100 bytes`: a cap as a person writes it."""
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if limit >= size and limit % size == 0:
            return f"{limit // size} {unit}"
    return f"{limit} bytes"


def read_capped_text(path: Path, origin: str, limit: int, subject: str | None = None) -> str:
    """The UTF-8 text of `path`, at most `limit` bytes; errors start with `origin`.

    Errors name what was read as `subject`, by default `file '<path>'`.
    """
    what = subject or f"file {str(path)!r}"
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"{origin}: cannot read {what}: {reason}") from None
    if len(data) > limit:
        raise ConfigError(f"{origin}: {what} is larger than {size_text(limit)}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{origin}: {what} is not UTF-8 text") from None
