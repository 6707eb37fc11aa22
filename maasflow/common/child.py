"""Run a child process: argv in, exit code and the tail of its output out. The one runner.

Every program maasflow starts (the daemon's provisioning script and power helper, serve's
power commands and provisioning jobs) is started here, the same way:

- as an argv, never through a shell, with stdin from /dev/null (or, `gated`, from a pipe
  the caller writes one byte to with `Child.release()`: a two-phase start for a child
  that must not begin its work before the caller has recorded its pid);
- in a new session, so its pid is the id of a process group holding all it starts;
- with the environment scrubbed of every secret maasflow knows (`secrets.scrubbed_environ`),
  whatever environment the caller hands in;
- writing into pipes read here into a bounded `Tail` (stdout and stderr merged, or apart),
  stdout optionally copied on to a `sink` as it arrives.

Waiting (`Child.wait`) ends in one of three ways, and each leaves the group empty:

    exited       the process ended; its output is drained for at most `drain` seconds (a
                 background child may hold the pipe open for ever), then SIGKILL goes to
                 whatever it left in its group
    timed out    `timeout` passed: SIGTERM to the group, SIGKILL after `grace`
    stopped      `Child.stop()` (DELETE, shutdown), or the waiting task was cancelled: as
                 timed out

`start` returns the handle (pid, pgid, start time) before anything is awaited on the child,
so a caller can record it first; `closed()` waits for the child to close its output (which
may come before its exit); `detach()` lets go of a child without stopping it; `run` is
start-then-wait for callers that only want the answer, and raises `ChildError` (its evidence
attached, like `ops.pebble.ExecError`) unless the child exited 0. Callers word their own
errors; this module does not log. The limits, `Finished` and the errors live in
`run_outcome` (shared with the supervisor's loop-free runner, `blocking_child`) and are
found here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence

from maasflow.common.run_outcome import (
    DRAIN_WAIT,
    KILL_GRACE,
    LINE_LIMIT,
    TAIL_BYTES,
    ChildError,
    Finished,
    Limits,
    StartError,
    TimedOut,
    exit_phrase,
    last_line,
    signal_group,
)
from maasflow.common.secrets import scrubbed_environ

__all__ = [  # the outcome's names, as callers have always found them here
    "DRAIN_WAIT",
    "KILL_GRACE",
    "LINE_LIMIT",
    "TAIL_BYTES",
    "Child",
    "ChildError",
    "Finished",
    "Limits",
    "Sink",
    "StartError",
    "Streams",
    "Tail",
    "TimedOut",
    "exit_phrase",
    "last_line",
    "run",
    "signal_group",
    "start",
]


class Streams(enum.Enum):
    """Whether stderr joins stdout in one tail or is kept apart in its own."""

    MERGED = "merged"
    SEPARATE = "separate"


Sink = Callable[[bytes], None]


class Tail(asyncio.Protocol):
    """Keeps the last `limit` bytes read from one pipe (handing each chunk to `sink` first,
    if given); `closed` is set at end of file."""

    def __init__(self, limit: int, sink: Sink | None = None) -> None:
        self.limit = limit
        self.sink = sink
        self.data = bytearray()
        self.closed = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        if self.sink is not None:
            self.sink(data)
        self.data += data
        del self.data[: -self.limit]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class Child:
    """A started child: its pid, pgid and start time, its output so far, how to stop it."""

    def __init__(
        self,
        argv0: str,
        proc: asyncio.subprocess.Process,
        pipes: list[tuple[asyncio.BaseTransport, Tail]],
        limits: Limits,
        gate: int | None = None,
    ) -> None:
        self.argv0 = argv0
        self.pid = proc.pid
        self.pgid = proc.pid  # start_new_session: the child leads its own group
        self.started_at = time.time()
        self._proc = proc
        self._pipes = pipes
        self._limits = limits
        self._stop = asyncio.Event()
        self._gate = gate  # the write end of a gated child's stdin, until released

    def release(self) -> None:
        """Let a gated child go on: one byte, then end of file, on its stdin."""
        if self._gate is not None:
            with contextlib.suppress(OSError):  # it died meanwhile: its wait() will tell
                os.write(self._gate, b"1")
            self._close_gate()

    def _close_gate(self) -> None:
        """End of file on a gated child's stdin: unreleased, it must not begin its work."""
        if self._gate is not None:
            os.close(self._gate)
            self._gate = None

    async def closed(self) -> None:
        """Wait until the child has closed its output pipes (at its exit, or before it)."""
        await asyncio.gather(*(tail.closed.wait() for _, tail in self._pipes))

    def detach(self) -> None:
        """Let go of the child without stopping it: close our ends of its pipes, wait no more.

        For a child that must outlive its parent's interest (it holds a result not yet saved).
        """
        self._close_gate()
        for transport, _ in self._pipes:
            transport.close()

    def output(self) -> str:
        """What the child wrote so far to stdout (and stderr, when merged)."""
        return self._pipes[0][1].text()

    def errors(self) -> str:
        """What the child wrote so far to stderr when kept apart, else ''."""
        return self._pipes[1][1].text() if len(self._pipes) > 1 else ""

    def stop(self) -> None:
        """Ask `wait` to end the child now: SIGTERM to its group, SIGKILL after the grace."""
        self._stop.set()

    async def wait(self) -> Finished:
        """Wait for the exit, the timeout or `stop`; always leaves the group empty."""
        ended = False
        self._close_gate()  # waited on unreleased: it will not be released
        try:
            ended = await self._exit_or_stop()
        finally:  # also when the waiting task is cancelled
            if self._proc.returncode is None:
                await self._terminate()
            await self._drain()
        return Finished(
            argv0=self.argv0,
            pid=self.pid,
            exit_code=await self._proc.wait(),
            timed_out=not ended,
            stopped=self._stop.is_set(),
            output=self.output(),
            errors=self.errors(),
            timeout=self._limits.timeout,
        )

    async def _exit_or_stop(self) -> bool:
        """True when the process exited or `stop` was asked before the timeout."""
        waits = {asyncio.ensure_future(self._proc.wait()), asyncio.ensure_future(self._stop.wait())}
        try:
            done, _ = await asyncio.wait(
                waits, timeout=self._limits.timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiting in waits:
                waiting.cancel()
        return bool(done)

    async def _terminate(self) -> None:
        """SIGTERM the group, SIGKILL it after the grace (always, even when interrupted)."""
        signal_group(self.pgid, signal.SIGTERM)
        # asyncio.wait, not wait_for: on Python 3.11 wait_for swallows a cancellation that
        # arrives as the process exits, and the cancelled caller would carry on as if not.
        exited = asyncio.ensure_future(self._proc.wait())
        try:
            await asyncio.wait({exited}, timeout=self._limits.grace)
        finally:
            exited.cancel()
            signal_group(self.pgid, signal.SIGKILL)
        await self._proc.wait()

    async def _drain(self) -> None:
        """Read to end of file, but not for longer than `drain`; then empty the group."""
        closing = [asyncio.ensure_future(tail.closed.wait()) for _, tail in self._pipes]
        try:
            await asyncio.wait(closing, timeout=self._limits.drain)
        finally:
            for waiting in closing:
                waiting.cancel()
            signal_group(self.pgid, signal.SIGKILL)  # whatever it left running
            for transport, _ in self._pipes:
                transport.close()


async def _spawn(
    argv: Sequence[str], env: dict[str, str], stdin: int, stdout: int, stderr: int
) -> asyncio.subprocess.Process:
    try:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=env,
            start_new_session=True,
        )
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in an argument
        cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise StartError(argv[0], cause) from None


async def _reader(read_fd: int, tail: Tail) -> asyncio.BaseTransport:
    """A transport feeding `tail` from `read_fd` (which it owns from now on)."""
    pipe = os.fdopen(read_fd, "rb", buffering=0)
    try:
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(lambda: tail, pipe)
    except BaseException:
        pipe.close()
        raise
    return transport


async def start(
    argv: Sequence[str],
    *,
    limits: Limits | None = None,
    env: Mapping[str, str] | None = None,
    streams: Streams = Streams.MERGED,
    gated: bool = False,
    sink: Sink | None = None,
) -> Child:
    """Start `argv`; StartError if it cannot be. `env` (default: ours) is scrubbed too.

    `gated`: its stdin is a pipe that `Child.release()` writes one byte to (end of file
    without it, when the handle is waited on or the caller dies). `sink` is handed each
    chunk of stdout as it arrives.

    The output goes into pipes we read ourselves, not `stdout=PIPE`: asyncio's `wait()` may
    then also wait for the pipes to close, which a background child can put off for ever.
    """
    if not argv:
        raise ValueError("argv is empty")
    limits = limits or Limits()
    fds = [os.pipe() for _ in range(1 if streams is Streams.MERGED else 2)]
    gate_read, gate = os.pipe() if gated else (asyncio.subprocess.DEVNULL, None)
    try:
        environ = scrubbed_environ(environ=env)
        proc = await _spawn(argv, environ, gate_read, fds[0][1], fds[-1][1])
    except BaseException:
        for read_fd, _ in fds:
            os.close(read_fd)
        if gate is not None:
            os.close(gate)
        raise
    finally:
        for _, write_fd in fds:
            os.close(write_fd)
        if gate is not None:
            os.close(gate_read)
    pipes: list[tuple[asyncio.BaseTransport, Tail]] = []
    try:
        for index, (read_fd, _) in enumerate(fds):
            tail = Tail(limits.tail_bytes, sink if index == 0 else None)
            pipes.append((await _reader(read_fd, tail), tail))
    except BaseException:
        signal_group(proc.pid, signal.SIGKILL)
        for transport, _ in pipes:
            transport.close()
        for read_fd, _ in fds[len(pipes) + 1 :]:  # not yet handed to a reader
            os.close(read_fd)
        if gate is not None:
            os.close(gate)
        raise
    return Child(argv[0], proc, pipes, limits, gate)


async def run(
    argv: Sequence[str],
    *,
    limits: Limits | None = None,
    env: Mapping[str, str] | None = None,
    streams: Streams = Streams.MERGED,
) -> Finished:
    """Start `argv` and wait for it; its `Finished` if it exited 0, else ChildError."""
    child = await start(argv, limits=limits, env=env, streams=streams)
    return (await child.wait()).check()
