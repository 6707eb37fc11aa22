"""Helpers for tests that run real processes: is a pid or a whole process group still alive.

A killed process whose parent has not reaped it yet is a zombie: it still counts for
`os.kill(pid, 0)` and `os.killpg(pgid, 0)`, but runs no code, so it counts as gone here.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name, or None if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def group_gone(pgid: int) -> bool:
    """True when no live process is left in the process group `pgid`."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    members = (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())
    return not any(
        (fields := _stat(pid)) is not None and fields[2] == str(pgid) and alive(pid)
        for pid in members
    )


async def wait_until(condition: Callable[[], bool], limit: float = 10.0) -> bool:
    """Poll `condition()` until true or `limit` seconds pass; callers assert the result."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while loop.time() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()
