"""How a child run is bounded and how it ended: its limits, its `Finished`, its errors.

Plain data and words, with no event loop: `common.child` (the asyncio runner) and the
supervisor (`common.supervisor`, which must start fast and so never imports asyncio) both
use it. `signal_group` sends a signal to a group that may be gone. Where this module stops:
it starts nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass

from maasflow.common.errors import MaasflowError

TAIL_BYTES = 64 * 1024  # output kept by default: the end is where failures explain themselves
KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL of the group
DRAIN_WAIT = 1.0  # seconds to keep reading after the process itself has exited
LINE_LIMIT = 200  # characters of the last line an error quotes


@dataclass(frozen=True)
class Limits:
    """How long a child may run, how it is stopped, how much of its output is kept."""

    timeout: float | None = None
    grace: float = KILL_GRACE
    drain: float = DRAIN_WAIT
    tail_bytes: int = TAIL_BYTES

    def __post_init__(self) -> None:
        if self.tail_bytes < 1:
            raise ValueError("tail_bytes must be at least 1")


def last_line(text: str, limit: int = LINE_LIMIT) -> str:
    """The last non-blank line of `text`, stripped and cut to its last `limit` characters."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][-limit:] if lines else ""


def exit_phrase(code: int) -> str:
    """`exited 3`, or `was killed by signal SIGKILL` for a negative (signal) code."""
    if code >= 0:
        return f"exited {code}"
    try:
        return f"was killed by signal {signal.Signals(-code).name}"
    except ValueError:  # a real-time or otherwise unnamed signal
        return f"was killed by signal {-code}"


class ChildError(MaasflowError):
    """A child did not finish well; carries its evidence: argv[0], exit code, output tail."""

    def __init__(
        self, argv0: str, reason: str, *, exit_code: int | None = None, tail: str = ""
    ) -> None:
        self.argv0 = argv0
        self.reason = reason
        self.exit_code = exit_code
        self.tail = tail
        shown = f"{argv0!r} {reason}"
        super().__init__(f"{shown}: {self.last_line}" if self.last_line else shown)

    @property
    def last_line(self) -> str:
        return last_line(self.tail)


class StartError(ChildError):
    """The child could not be started (missing, not executable, bad interpreter, NUL byte)."""

    def __init__(self, argv0: str, cause: str) -> None:
        self.cause = cause
        super().__init__(argv0, f"could not start: {cause}")


class TimedOut(ChildError):
    """The child ran past its timeout; its process group was killed."""


@dataclass(frozen=True)
class Finished:
    """How a child ended. `output` is stdout (or both, merged); `errors` is stderr apart."""

    argv0: str
    pid: int
    exit_code: int
    timed_out: bool
    stopped: bool
    output: str
    errors: str
    timeout: float | None

    @property
    def evidence(self) -> str:
        """What an error should quote: stderr when kept apart and not empty, else the output."""
        return self.errors if self.errors.strip() else self.output

    def check(self) -> Finished:
        """Self when the child exited 0; else raise the ChildError saying how it ended."""
        if self.exit_code == 0 and not (self.timed_out or self.stopped):
            return self
        error = TimedOut if self.timed_out else ChildError
        raise error(self.argv0, self.reason(), exit_code=self.exit_code, tail=self.evidence)

    def reason(self) -> str:
        """How it ended, in words: `exited 3`, `timed out after 5 s; ...`, `was stopped`."""
        if self.timed_out:
            return f"timed out after {self.timeout:g} s; its process group was killed"
        return "was stopped" if self.stopped else exit_phrase(self.exit_code)


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send `sig` to a process group that may already be gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
