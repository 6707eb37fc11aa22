"""The result file of a supervised run, and the words the supervisor and its parent share.

A supervised run (`common.supervision`) leaves its result in a file, written atomically
(temporary file, fsync, rename, fsync of the folder), and reports it on its stderr after
`REPORT_MARK`. `start_ticks` names a process for good (its pid and its start time). No event
loop here: the supervisor (`common.supervisor`) must start fast and never imports asyncio.
Where this module stops: it reads no result back (`supervision.decode` does).
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from maasflow.common.run_outcome import Finished

REPORT_MARK = "maasflow-result "  # the line the supervisor writes on stderr when done
FORMAT = 1


class Phase(enum.StrEnum):
    """What a result file says: the program is running (pid known), or it has ended."""

    RUNNING = "running"
    ENDED = "ended"


def start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat, or None when there is no such live (non-zombie) process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text.rsplit(")", 1)[-1].split()  # the name in (...) may hold spaces
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # fields[0] is field 3


def partial_path(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def save_result(path: Path, data: Mapping[str, Any]) -> None:
    """Write `data` as JSON to `path` atomically (temporary file, fsync, rename, fsync dir)."""
    partial = partial_path(path)
    with partial.open("w", encoding="utf-8") as out:
        json.dump({"format": FORMAT, **data}, out)
        out.flush()
        os.fsync(out.fileno())
    partial.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def ended(finished: Finished) -> dict[str, Any]:
    """What the supervisor saves and reports when the program has ended."""
    return {"phase": Phase.ENDED, "start_error": None, **asdict(finished)}


def not_started(argv0: str, cause: str) -> dict[str, Any]:
    """What the supervisor saves and reports when the program could not be started."""
    return {"phase": Phase.ENDED, "argv0": argv0, "start_error": cause}
