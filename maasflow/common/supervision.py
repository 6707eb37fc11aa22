"""Runs that outlive their parent, and how a restarted parent finds them again.

A provisioning script may take an hour; the daemon or `maasflow serve` that started it may
be SIGKILLed, upgraded or crash meanwhile. The script must then be neither lost (its result
forgotten) nor doubled (a second run started beside it). So every such run is started here,
the same way, by both programs:

    parent ──gated start──► supervisor (python -I -S, maasflow.common.supervisor, own session)
                               └── the program (common.child: own session, timeout, tail)

1. `start()` starts the supervisor *gated*: it waits for one byte on its stdin before it
   starts the program. The caller records the `RunHandle` (the supervisor's pid, process
   group and start time as the kernel counts it, and the result file) in its store, then
   `release()`s it. If the parent dies before that, the supervisor reads end of file and
   exits without starting anything: a run the store does not know never begins.
2. The supervisor runs the program through `common.blocking_child` (timeout, grace, the group
   killed), forwards its output to the parent as it comes (the parent's live log), and
   when it ends, reports how (one line on its stderr) and saves the result file atomically,
   retrying while the disk is full. A stop signal (the parent's `stop()`, its shutdown)
   stops the program; once the program has ended, signals are ignored: a result it holds
   is never dropped.
3. `Run.wait()` returns the result as soon as the supervisor reports it; `Run.close()`
   reaps the supervisor and removes the file, once the caller has stored the result.
4. After a restart, `adopt(handle)` finds the run again: while the supervisor lives (the pid
   exists *and* its start time in /proc/<pid>/stat, field 22, is the recorded one, so a
   reused pid is never mistaken for it) it waits; then it takes the result file. A run
   that left no result (its supervisor was SIGKILLed, or never released) raises
   `Interrupted`, after killing the program's process group should it still be alive:
   never two runs at once, and never a finished result lost.

Why wait rather than kill: a provisioning script is rarely safe to interrupt and start
again; waiting for the run the store knows keeps "exactly once" without asking anything of
the script, and its timeout still holds, because the supervisor keeps the deadline.

Linux only: process identity comes from /proc. Where this module stops: it keeps no store;
the caller records the handle and the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from maasflow.common import child
from maasflow.common.errors import MaasflowError
from maasflow.common.result_file import (
    FORMAT,
    REPORT_MARK,
    Phase,
    ended,
    not_started,
    partial_path,
    save_result,
    start_ticks,
)

__all__ = [  # the result file's names, as callers have always found them here
    "REPORT_MARK",
    "Interrupted",
    "Phase",
    "Run",
    "RunHandle",
    "adopt",
    "adopt_ended",
    "decode",
    "ended",
    "not_started",
    "save_result",
    "start",
    "start_ticks",
    "stop_time",
    "supervisor_argv",
    "sweep",
]

SUPERVISOR = "maasflow.common.supervisor"
# The supervisor starts once per job: isolated (-I) and without `site` (-S: ~15 ms of the
# start-up), so maasflow is found from the folder holding the package, its first argument,
# searched after the standard library (a backport installed beside maasflow never shadows it).
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]
_BOOT = (
    "import sys; sys.path.append(sys.argv.pop(1)); "
    f"from {SUPERVISOR} import main; sys.exit(main(sys.argv[1:]))"
)
ADOPT_POLL = 0.25  # seconds between looks at an adopted run's supervisor
STOP_MARGIN = 2.0  # seconds the supervisor gets beyond the program's grace and drains


class Interrupted(MaasflowError):
    """The run ended without a result: its supervisor was killed, or never released."""


@dataclass(frozen=True)
class RunHandle:
    """How to find a run again: its supervisor's pid, group and start time; its result file.

    `start_ticks` is field 22 of /proc/<pid>/stat (clock ticks after boot): with the pid it
    names one process, even once the pid has been reused.
    """

    pid: int
    pgid: int
    start_ticks: int
    result_file: str

    def alive(self) -> bool:
        """True while the recorded process runs (not a zombie, not a newer owner of the pid)."""
        return start_ticks(self.pid) == self.start_ticks

    def terminate(self) -> bool:
        """SIGTERM the supervisor's group if it is still the recorded process; True if sent."""
        if not self.alive():
            return False
        child.signal_group(self.pgid, signal.SIGTERM)
        return True

    def discard(self) -> None:
        """Remove the result file (and a half-written one): its result is stored elsewhere."""
        for path in (Path(self.result_file), partial_path(Path(self.result_file))):
            with contextlib.suppress(OSError):
                path.unlink()


# -- the result file ----------------------------------------------------------------------


def decode(data: Mapping[str, Any], output: str | None = None) -> child.Finished:
    """The `Finished` a saved or reported result describes; StartError if it never started.

    `output` (what the parent read itself) replaces the saved output when given.
    """
    if data.get("start_error"):
        raise child.StartError(str(data.get("argv0", "")), str(data["start_error"]))
    data = {**data, "output": output} if output is not None else data
    try:
        return child.Finished(**{field.name: data[field.name] for field in fields(child.Finished)})
    except (KeyError, TypeError):
        raise Interrupted("its result could not be read") from None


def _load(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def sweep(directory: Path, keep: set[str]) -> int:
    """Remove the result files in `directory` no record refers to (a crash between storing a
    result and removing its file leaves one); how many. Call before any run starts."""
    removed = 0
    for path in directory.glob("*.json*") if directory.is_dir() else ():
        base = str(path).removesuffix(".partial")
        if base not in keep:
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed


# -- the parent's side ---------------------------------------------------------------------


class Run:
    """A supervised run this process started; see the module docstring for its life."""

    def __init__(self, outer: child.Child, handle: RunHandle) -> None:
        self._outer = outer
        self.handle = handle
        self._reaped = False

    def release(self) -> None:
        """Let the supervisor start the program (call once the handle is recorded)."""
        self._outer.release()

    def output(self) -> str:
        """The program's output so far (its last `tail_bytes`)."""
        return self._outer.output()

    def stop(self) -> None:
        """Stop the program: SIGTERM, SIGKILL after its grace; `wait()` then says stopped."""
        child.signal_group(self.handle.pgid, signal.SIGTERM)  # the supervisor passes it on
        self._outer.stop()  # and should it not end in time, the wait kills it

    async def wait(self) -> child.Finished:
        """How the program ended, as soon as the supervisor says (it may still be saving).

        Cancelled, it stops the run first. StartError when the program could not start;
        Interrupted when the supervisor ended without a result.
        """
        try:
            await self._outer.closed()
        except BaseException:
            await self.abort()
            raise
        report = _reported(self._outer.errors())
        if report is None:  # it died, or was never released: perhaps it saved something
            await self._outer.wait()
            return adopt_ended(self.handle)
        return decode(report, output=self._outer.output())

    async def abort(self) -> None:
        """Stop the run and wait for its supervisor (bounded by the grace); keep its file.

        Once is enough: later calls return at once.
        """
        if self._reaped:
            return
        self._reaped = True
        self._outer.stop()
        await self._outer.wait()

    async def close(self) -> None:
        """The caller has stored the result: reap the supervisor, remove the result file."""
        await self.abort()
        self.handle.discard()

    def detach(self) -> None:
        """Let the supervisor be (it holds a result the caller could not store): a restart
        adopts it."""
        self._outer.detach()


def _reported(errors: str) -> dict[str, Any] | None:
    for line in reversed(errors.splitlines()):
        if line.startswith(REPORT_MARK):
            with contextlib.suppress(ValueError):
                data = json.loads(line[len(REPORT_MARK) :])
                return data if isinstance(data, dict) else None
    return None


def supervisor_argv(argv: Sequence[str], result_file: Path, limits: child.Limits) -> list[str]:
    """The command line that runs `argv` under the supervisor."""
    timeout = "none" if limits.timeout is None else repr(limits.timeout)
    settings = [timeout, repr(limits.grace), repr(limits.drain), str(limits.tail_bytes)]
    boot = [sys.executable, "-I", "-S", "-c", _BOOT, str(_PACKAGE_ROOT)]
    return [*boot, str(result_file), *settings, "--", *argv]


def stop_time(limits: child.Limits) -> float:
    """The longest a stopped run may take to end: the program's grace, drains, a margin."""
    return limits.grace + 2 * limits.drain + STOP_MARGIN


async def start(
    argv: Sequence[str],
    *,
    result_file: Path,
    limits: child.Limits,
    env: Mapping[str, str] | None = None,
) -> Run:
    """Start `argv` under a gated supervisor; nothing runs before `Run.release()`.

    StartError (naming argv[0]) when the supervisor cannot be started; one that starts but
    cannot start the program says so through `Run.wait()`.
    """
    result_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    outer_limits = child.Limits(
        timeout=None,  # the supervisor keeps the program's deadline, even across restarts
        grace=stop_time(limits),
        drain=limits.drain,
        tail_bytes=limits.tail_bytes,
    )
    try:
        outer = await child.start(
            supervisor_argv(argv, result_file, limits),
            limits=outer_limits,
            env=env,
            streams=child.Streams.SEPARATE,
            gated=True,
        )
    except child.StartError as exc:
        raise child.StartError(argv[0], exc.cause) from None
    ticks = start_ticks(outer.pid) or 0
    return Run(outer, RunHandle(outer.pid, outer.pgid, ticks, str(result_file)))


async def adopt(handle: RunHandle, *, poll: float = ADOPT_POLL) -> child.Finished:
    """Wait while the run's supervisor lives, then take its result (see the docstring).

    StartError when the program could not start; Interrupted when no result was left.
    """
    while handle.alive():
        await asyncio.sleep(poll)
    return adopt_ended(handle)


def adopt_ended(handle: RunHandle) -> child.Finished:
    """The result of a run whose supervisor is gone; Interrupted when it left none."""
    data = _load(Path(handle.result_file))
    if data is not None and data.get("phase") == Phase.ENDED:
        return decode(data)
    if data is not None:  # the program started, its supervisor died: the program must not live on
        pid, ticks = int(data.get("pid") or 0), int(data.get("start_ticks") or -1)
        orphan = RunHandle(pid, pid, ticks, "")
        if orphan.alive():
            child.signal_group(orphan.pgid, signal.SIGKILL)
            raise Interrupted("its supervisor was killed; the program's process group was killed")
    raise Interrupted("its supervisor ended without a result (killed, or never released)")
