"""The supervisor's runner: one child, run to its end without an event loop.

`common.child` is the runner for everything else, on asyncio; the supervisor
(`common.supervisor`) starts once per provisioning job and importing asyncio was most of
its start-up (~60 % of ~0.1 s CPU a job), so it runs its one program here instead, with the
same rules as `common.child` for that case: an argv in a new session, stdin from /dev/null,
the environment scrubbed of secrets, stdout and stderr merged into a pipe read into a
bounded tail (each chunk handed to a sink first), and one of three endings, each leaving the
group empty: exited (output drained for at most `drain` seconds, then SIGKILL to what is
left), timed out or stopped (SIGTERM to the group, SIGKILL after `grace`).

Waiting is one `select` over the output pipe and a wake-up pipe that signals write into
(`signal.set_wakeup_fd`): SIGCHLD wakes it at the child's exit, a stop signal (the caller's
handler sets `Stop`) wakes it to stop. Where this module stops: it installs no stop handler
(the supervisor does) and saves nothing.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from maasflow.common.run_outcome import Finished, Limits, StartError, signal_group
from maasflow.common.secrets import scrubbed_environ

READ_SIZE = 65536
LONGEST_NAP = 1.0  # seconds: a missed wake-up costs at most this


@dataclass
class Stop:
    """Set (from a signal handler) to stop the program."""

    asked: bool = False

    def set(self, *_: object) -> None:
        self.asked = True


@dataclass
class _Tail:
    limit: int
    sink: Callable[[bytes], None]
    data: bytearray = field(default_factory=bytearray)

    def add(self, chunk: bytes) -> None:
        self.sink(chunk)
        self.data += chunk
        del self.data[: -self.limit]


class BlockingChild:
    """A started program; `wait(stop)` runs it to one of the three endings."""

    def __init__(self, argv: Sequence[str], limits: Limits, sink: Callable[[bytes], None]):
        """Start `argv`; StartError if it cannot be. Call with SIGCHLD's wake-up in place."""
        self.argv0 = argv[0]
        self._limits = limits
        self._tail = _Tail(limits.tail_bytes, sink)
        read_fd, write_fd = os.pipe()
        try:
            self._proc = _spawn(argv, write_fd)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self.pid = self._proc.pid
        self._output: int | None = read_fd
        self._selector = selectors.DefaultSelector()
        self._selector.register(read_fd, selectors.EVENT_READ)

    def watch(self, fd: int) -> None:
        """Wake up too when `fd` (the signals' wake-up pipe) is readable, and empty it."""
        self._selector.register(fd, selectors.EVENT_READ, data="wake")

    def wait(self, stop: Stop) -> Finished:
        """Run to the exit, the timeout or `stop`; always leaves the group empty."""
        timeout = self._limits.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        ended = self._until(lambda: stop.asked, deadline)
        try:
            if self._proc.poll() is None:
                self._terminate()
            self._drain()
        finally:
            self._selector.close()
        return Finished(
            argv0=self.argv0,
            pid=self.pid,
            exit_code=self._proc.wait(),
            timed_out=not ended,
            stopped=stop.asked,
            output=self._tail.data.decode("utf-8", errors="replace"),
            errors="",
            timeout=timeout,
        )

    def _until(self, enough: Callable[[], bool], deadline: float | None) -> bool:
        """Read output until the exit or `enough()`: True; False once `deadline` passed."""
        while self._proc.poll() is None and not enough():
            left = LONGEST_NAP if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return False
            self._read(min(left, LONGEST_NAP))
        return True

    def _terminate(self) -> None:
        """SIGTERM the group, SIGKILL it after the grace."""
        signal_group(self.pid, signal.SIGTERM)
        self._until(lambda: False, time.monotonic() + self._limits.grace)
        signal_group(self.pid, signal.SIGKILL)
        self._proc.wait()

    def _drain(self) -> None:
        """Read to end of file, for at most `drain`; then SIGKILL whatever the group left."""
        deadline = time.monotonic() + self._limits.drain
        while self._output is not None and time.monotonic() < deadline:
            self._read(deadline - time.monotonic())
        signal_group(self.pid, signal.SIGKILL)
        if self._output is not None:
            os.close(self._output)
            self._output = None

    def _read(self, nap: float) -> None:
        """Wait up to `nap` for output or a wake-up; take what came."""
        for key, _ in self._selector.select(max(nap, 0.0)):
            if key.data == "wake":
                with contextlib.suppress(OSError):
                    os.read(key.fd, READ_SIZE)
            elif self._output is not None:
                self._take(self._output)

    def _take(self, fd: int) -> None:
        chunk = os.read(fd, READ_SIZE)
        if chunk:
            self._tail.add(chunk)
            return
        self._selector.unregister(fd)
        os.close(fd)
        self._output = None


def _spawn(argv: Sequence[str], output: int) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(  # an argv, never a shell
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            env=scrubbed_environ(),
            start_new_session=True,
        )
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in an argument
        cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise StartError(argv[0], cause) from None
