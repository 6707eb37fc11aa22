"""One running instance per state file: an exclusive `flock` on `<state file>.lock`, held for life.

Two daemons on the same MAAS and state file would both act on every machine, so every
provisioning would run twice; two `maasflow serve` on one records file would fail each
other's jobs as "interrupted by restart". So a program that writes state first takes

    with InstanceLock.hold(state_file, hint="give this one its own -db"):
        ...  # the whole run

which opens `<state file>.lock` beside the state file (creating its directory, mode 0700,
when missing), takes `fcntl.flock(LOCK_EX | LOCK_NB)` on it and writes the holder's pid
into it. The lock belongs to the open file, not to the name: the kernel drops it when the
process ends, however it ends, so a SIGKILLed holder never blocks a restart, and the file
is left in place (deleting it would let two instances lock two different files). The
descriptor is not inherited by children (Python opens it close-on-exec), so a provisioning
script that outlives its daemon does not keep the lock.

A second instance gets `InstanceBusy`, a `ConfigError` (one line, exit status 2) naming the
holder's pid and the state file. `:memory:` state needs no lock. Read-only users (a
preview, `maasflow status`) do not call this. This module knows nothing of what the state is.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from maasflow.common.errors import ConfigError

MEMORY = ":memory:"
SUFFIX = ".lock"
_PID_READS = 20  # the holder writes its pid just after locking: look again for up to ~0.2 s
_PID_WAIT_S = 0.01


class InstanceBusy(ConfigError):
    """Another running process holds the state file's lock."""


class InstanceLock:
    """The held lock of one state file; see the module docstring."""

    def __init__(self, state: Path, fd: int) -> None:
        self.state = state
        self.path = lock_path(state)
        self._fd: int | None = fd

    @classmethod
    @contextlib.contextmanager
    def hold(cls, state: Path | str, hint: str) -> Iterator[InstanceLock | None]:
        """Hold the lock of `state` for the block (None for `:memory:`); `hint` ends the error."""
        if str(state) == MEMORY:
            yield None
            return
        lock = cls.acquire(Path(state), hint)
        try:
            yield lock
        finally:
            lock.release()

    @classmethod
    def acquire(cls, state: Path, hint: str) -> InstanceLock:
        """Take the lock or raise InstanceBusy (held elsewhere) or ConfigError (cannot open)."""
        fd = _open(lock_path(state), state)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _holder(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ConfigError(f"state file {state}: cannot lock ({exc.strerror})") from None
            raise InstanceBusy(
                f"state file {state} is in use by another maasflow (pid {holder}, lock "
                f"{lock_path(state)}); stop that one first, or {hint}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(state, fd)

    def release(self) -> None:
        """Give the lock up (closing the file releases it); safe to call twice."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def lock_path(state: Path) -> Path:
    """`<state file>.lock`, beside the state file."""
    return state.with_name(state.name + SUFFIX)


def _open(path: Path, state: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(
            f"state file {state}: cannot open its lock file {path} ({exc.strerror}); "
            "set a writable path"
        ) from None


def _holder(fd: int) -> str:
    """The pid the holder wrote, or "unknown" when it has not written one (yet)."""
    for _ in range(_PID_READS):
        text = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
        if text.isdigit():
            return text
        time.sleep(_PID_WAIT_S)
    return "unknown"
