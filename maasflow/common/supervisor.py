"""The supervisor: `python -m maasflow.common.supervisor RESULT TIMEOUT GRACE DRAIN TAIL -- ARGV`.

A tiny program between maasflow and a provisioning script, so that the script's result
survives maasflow's death (`common.supervision` starts it, and explains why). In order:

1. waits for the parent's release: one byte on stdin. End of file first (the parent died
   before recording this run) or a stop signal: exit 3, having started nothing;
2. runs ARGV through `common.child` with TIMEOUT (seconds, or `none`), GRACE, DRAIN and TAIL
   (bytes of output kept), copying its output to our stdout as it comes (the parent's live
   log; once the parent is gone, the copy stops and the tail is still kept), and notes the
   program's pid and start time in RESULT, so a restarted parent can find an orphan;
   SIGTERM or SIGINT stops the program (its group: SIGTERM, SIGKILL after GRACE);
3. once the program has ended, ignores SIGTERM and SIGINT, closes stdout, writes
   `maasflow-result <json>` on stderr and closes it (the parent, if alive, knows now), then
   saves the result to RESULT atomically, retrying with backoff while that fails (a full
   disk), and exits 0. A result is never dropped while this process lives.

Where this module stops: it decides nothing about the result; it only carries it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maasflow.common import child
from maasflow.common.backoff import Backoff
from maasflow.common.supervision import (
    REPORT_MARK,
    Phase,
    ended,
    not_started,
    save_result,
    start_ticks,
)

NOT_RELEASED = 3
USAGE = 2
SAVE_BACKOFF = Backoff(0.2, 10.0)
_STOPS = (signal.SIGTERM, signal.SIGINT)


@dataclass(frozen=True)
class Spec:
    """What to run, with which limits, and where its result goes."""

    result_file: Path
    limits: child.Limits
    argv: list[str]


def parse(args: list[str]) -> Spec:
    """The command line above as a `Spec`; ValueError when it is not that."""
    if len(args) < 7 or args[5] != "--":
        raise ValueError("usage: RESULT TIMEOUT GRACE DRAIN TAIL -- PROGRAM [ARGS...]")
    result, timeout, grace, drain, tail = args[:5]
    limits = child.Limits(
        timeout=None if timeout == "none" else float(timeout),
        grace=float(grace),
        drain=float(drain),
        tail_bytes=int(tail),
    )
    return Spec(Path(result), limits, args[6:])


class _Gate(asyncio.Protocol):
    """Our stdin: `opened` once a byte arrives; `decided` at that byte or end of file."""

    def __init__(self) -> None:
        self.opened = False
        self.decided = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.opened = self.opened or bool(data)
        self.decided.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.decided.set()


async def released(stop: asyncio.Event) -> bool:
    """True when the parent released us before a stop signal or the end of our stdin."""
    gate = _Gate()
    stdin = os.fdopen(0, "rb", buffering=0)
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(lambda: gate, stdin)
    waits = [asyncio.ensure_future(gate.decided.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()
        transport.close()
    return gate.opened and not stop.is_set()


class _Forward:
    """Copies the program's output to our stdout until the reader is gone."""

    def __init__(self) -> None:
        self.open = True

    def __call__(self, data: bytes) -> None:
        view = memoryview(data)
        while self.open and view:
            try:
                view = view[os.write(1, view) :]
            except OSError:  # the parent died (EPIPE): keep running, stop copying
                self.open = False


async def run(spec: Spec, stop: asyncio.Event) -> dict[str, Any]:
    """Run the program to its end (or until `stop`); what the result file should say."""
    try:
        program = await child.start(spec.argv, limits=spec.limits, sink=_Forward())
    except child.StartError as exc:
        return not_started(spec.argv[0], exc.cause)
    with contextlib.suppress(OSError):  # best effort: an orphan can then be found and killed
        running = {"phase": Phase.RUNNING, "pid": program.pid}
        save_result(spec.result_file, {**running, "start_ticks": start_ticks(program.pid)})
    stopping = asyncio.ensure_future(_stop_on(stop, program))
    try:
        return ended(await program.wait())
    finally:
        stopping.cancel()


async def _stop_on(stop: asyncio.Event, program: child.Child) -> None:
    await stop.wait()
    program.stop()


def hold() -> None:
    """From now on a stop signal cannot end us: we hold a result not yet saved."""
    loop = asyncio.get_running_loop()
    for sig in _STOPS:
        loop.remove_signal_handler(sig)
        signal.signal(sig, signal.SIG_IGN)


def report(result: dict[str, Any]) -> None:
    """Close stdout, say how the program ended on stderr, close it: the parent may go on."""
    shown = {key: value for key, value in result.items() if key != "output"}
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        with contextlib.suppress(OSError):
            os.write(2, f"{REPORT_MARK}{json.dumps(shown)}\n".encode())
        os.dup2(devnull, 2)
    finally:
        os.close(devnull)


async def save(path: Path, result: dict[str, Any]) -> None:
    """Save the result, retrying with backoff for as long as it fails."""
    attempt = 0
    while True:
        try:
            save_result(path, result)
            return
        except OSError:
            attempt += 1
            await asyncio.sleep(SAVE_BACKOFF.delay(attempt))


async def supervise(spec: Spec) -> int:
    """Steps 1 to 3 of the module docstring; the exit status."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in _STOPS:
        loop.add_signal_handler(sig, stop.set)
    if not await released(stop):
        return NOT_RELEASED
    result = await run(spec, stop)
    hold()
    report(result)
    await save(spec.result_file, result)
    return 0


def main(args: list[str]) -> int:
    try:
        spec = parse(args)
    except ValueError as exc:
        print(f"maasflow supervisor: {exc}", file=sys.stderr)
        return USAGE
    return asyncio.run(supervise(spec))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
