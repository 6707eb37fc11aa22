"""The supervisor's loop-free runner ends a program in each of the three ways, group emptied."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from maasflow.common.blocking_child import BlockingChild, Stop
from maasflow.common.run_outcome import Finished, Limits, StartError


@pytest.fixture
def wake() -> Iterator[int]:
    """A wake-up pipe that signals write into, as the supervisor sets it (restored after)."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    old_handler = signal.signal(signal.SIGCHLD, lambda *_: None)
    yield read_fd
    signal.signal(signal.SIGCHLD, old_handler)
    signal.set_wakeup_fd(previous)
    os.close(read_fd)
    os.close(write_fd)


def _run(
    script: str, wake: int, limits: Limits, stop: Stop | None = None
) -> tuple[Finished, bytes, int]:
    seen: list[bytes] = []
    program = BlockingChild(["/bin/sh", "-c", script], limits, seen.append)
    program.watch(wake)
    return program.wait(stop or Stop()), b"".join(seen), program.pid


def _gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for its reaper."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def test_an_exit_gives_its_code_and_output_merged_and_forwarded(wake: int) -> None:
    """stdout and stderr land in one tail, handed to the sink too; the exit code is kept."""
    done, seen, _ = _run("echo out; echo err >&2; exit 3", wake, Limits(tail_bytes=7))
    assert (done.exit_code, done.timed_out, done.stopped) == (3, False, False)
    assert seen == b"out\nerr\n" and done.output == "ut\nerr\n"


def test_a_timeout_kills_the_group(wake: int) -> None:
    """Past its timeout the program's group gets SIGTERM (then SIGKILL); the result says so."""
    started = time.monotonic()
    done, _, _ = _run("sleep 30", wake, Limits(timeout=0.3, grace=0.5))
    assert done.timed_out and done.exit_code == -signal.SIGTERM
    assert time.monotonic() - started < 10


def test_a_stop_asked_before_the_wait_stops_the_program(wake: int) -> None:
    """A stop (the supervisor's SIGTERM) ends the program: stopped, not timed out."""
    stop = Stop()
    stop.set()
    done, _, _ = _run("sleep 30", wake, Limits(grace=0.5), stop)
    assert done.stopped and not done.timed_out and done.exit_code == -signal.SIGTERM


def test_a_background_child_holding_the_output_is_killed_after_the_drain(
    wake: int, tmp_path: Path
) -> None:
    """A program that exits 0 leaving a child on its stdout ends after `drain`, child killed."""
    pid_file = tmp_path / "pid"
    script = f"sleep 30 & echo $! > {pid_file}; echo started"
    started = time.monotonic()
    done, _, _ = _run(script, wake, Limits(drain=0.3))
    assert (done.exit_code, done.output) == (0, "started\n")
    assert time.monotonic() - started < 10
    background = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while not _gone(background) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _gone(background)


def test_a_missing_program_is_a_start_error(wake: int) -> None:
    """A program that does not exist raises StartError naming it."""
    with pytest.raises(StartError, match="/no/such/program"):
        BlockingChild(["/no/such/program"], Limits(), lambda _: None)
