"""A real full filesystem for fault tests: a small tmpfs mounted in the test's directory.

`small_filesystem(path)` mounts a tmpfs there (root in a sandbox can; elsewhere the test is
skipped, and the in-process tests that inject the same error through a store wrapper still
run). `fill(path)` writes a file until the filesystem says ENOSPC and returns it, so
deleting it frees the space again. Unmounted at the end, whatever the test did.
"""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

SIZE = "4m"


@contextlib.contextmanager
def small_filesystem(path: Path, size: str = SIZE) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` (created); skip the test where mounting fails."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],  # noqa: S607 - the system's mount
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield path
    finally:
        umount = ["umount", "-l", str(path)]
        subprocess.run(umount, capture_output=True, check=False)


def fill(directory: Path) -> Path:
    """Write a new file in `directory` until the filesystem is full; the file's path."""
    filler = directory / f"filler-{len(list(directory.glob('filler-*')))}"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(chunk)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    with filler.open("ab", buffering=0) as out, contextlib.suppress(OSError):
        while True:  # the last partial chunk, in small pieces
            out.write(b"\0" * 512)
    return filler
