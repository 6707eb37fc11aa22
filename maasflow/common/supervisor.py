"""The supervisor: `maasflow.common.supervisor RESULT TIMEOUT GRACE DRAIN TAIL -- ARGV`.

A tiny program between maasflow and a provisioning script, so that the script's result
survives maasflow's death (`common.supervision` starts it, and explains why). In order:

1. waits for the parent's release: one byte on stdin. End of file first (the parent died
   before recording this run) or a stop signal: exit 3, having started nothing;
2. runs ARGV through `common.blocking_child` with TIMEOUT (seconds, or `none`), GRACE, DRAIN
   and TAIL (bytes of output kept), copying its output to our stdout as it comes (the parent's live
   log; once the parent is gone, the copy stops and the tail is still kept), and notes the
   program's pid and start time in RESULT, so a restarted parent can find an orphan;
   SIGTERM or SIGINT stops the program (its group: SIGTERM, SIGKILL after GRACE);
3. once the program has ended, ignores SIGTERM and SIGINT, closes stdout, writes
   `maasflow-result <json>` on stderr and closes it (the parent, if alive, knows now), then
   saves the result to RESULT atomically, retrying with backoff while that fails (a full
   disk), and exits 0. A result is never dropped while this process lives.

It starts once per provisioning job, so it starts lean: no asyncio (importing it was most of
a job's CPU), its program run by `common.blocking_child`, signals woken through
`signal.set_wakeup_fd`; `supervision.supervisor_argv` starts it isolated and without
`site` (`python -I -S`). tests/architecture keeps asyncio out of its imports.

Where this module stops: it decides nothing about the result; it only carries it.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maasflow.common.blocking_child import BlockingChild, Stop
from maasflow.common.result_file import (
    REPORT_MARK,
    Phase,
    ended,
    not_started,
    save_result,
    start_ticks,
)
from maasflow.common.run_outcome import Limits, StartError

NOT_RELEASED = 3
USAGE = 2
SAVE_FIRST_DELAY, SAVE_LONGEST_DELAY = 0.2, 10.0  # seconds between tries to save, doubling
_STOPS = (signal.SIGTERM, signal.SIGINT)


@dataclass(frozen=True)
class Spec:
    """What to run, with which limits, and where its result goes."""

    result_file: Path
    limits: Limits
    argv: list[str]


def parse(args: list[str]) -> Spec:
    """The command line above as a `Spec`; ValueError when it is not that."""
    if len(args) < 7 or args[5] != "--":
        raise ValueError("usage: RESULT TIMEOUT GRACE DRAIN TAIL -- PROGRAM [ARGS...]")
    result, timeout, grace, drain, tail = args[:5]
    limits = Limits(
        timeout=None if timeout == "none" else float(timeout),
        grace=float(grace),
        drain=float(drain),
        tail_bytes=int(tail),
    )
    return Spec(Path(result), limits, args[6:])


def wakeups(stop: Stop) -> int:
    """Route stop signals to `stop` and every signal (SIGCHLD too) to a wake-up pipe; its
    read end."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    for sig in _STOPS:
        signal.signal(sig, stop.set)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so its arrival wakes us
    return read_fd


def released(stop: Stop, wake_fd: int) -> bool:
    """True when the parent released us before a stop signal or the end of our stdin."""
    with selectors.DefaultSelector() as selector:
        selector.register(0, selectors.EVENT_READ)
        selector.register(wake_fd, selectors.EVENT_READ)
        while not stop.asked:
            for key, _ in selector.select():
                if key.fd == 0:
                    return bool(os.read(0, 1)) and not stop.asked
                with contextlib.suppress(OSError):
                    os.read(wake_fd, 4096)
    return False


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


def run(spec: Spec, stop: Stop, wake_fd: int) -> dict[str, Any]:
    """Run the program to its end (or until `stop`); what the result file should say."""
    try:
        program = BlockingChild(spec.argv, spec.limits, _Forward())
    except StartError as exc:
        return not_started(spec.argv[0], exc.cause)
    program.watch(wake_fd)
    with contextlib.suppress(OSError):  # best effort: an orphan can then be found and killed
        running = {"phase": Phase.RUNNING, "pid": program.pid}
        save_result(spec.result_file, {**running, "start_ticks": start_ticks(program.pid)})
    return ended(program.wait(stop))


def hold() -> None:
    """From now on a stop signal cannot end us: we hold a result not yet saved."""
    for sig in _STOPS:
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


def save(path: Path, result: dict[str, Any]) -> None:
    """Save the result, retrying (0.2 s, doubling up to 10 s) for as long as it fails."""
    delay = SAVE_FIRST_DELAY
    while True:
        try:
            save_result(path, result)
            return
        except OSError:
            time.sleep(delay)
            delay = min(delay * 2, SAVE_LONGEST_DELAY)


def supervise(spec: Spec) -> int:
    """Steps 1 to 3 of the module docstring; the exit status."""
    stop = Stop()
    wake_fd = wakeups(stop)
    if not released(stop, wake_fd):
        return NOT_RELEASED
    result = run(spec, stop, wake_fd)
    hold()
    report(result)
    save(spec.result_file, result)
    return 0


def main(args: list[str]) -> int:
    try:
        spec = parse(args)
    except ValueError as exc:
        print(f"maasflow supervisor: {exc}", file=sys.stderr)
        return USAGE
    return supervise(spec)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
