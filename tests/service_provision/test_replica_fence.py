"""A replica's self-fence stops its runs once no heartbeat was answered for its limit."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from maasflow.common.supervision import RunHandle, start_ticks
from maasflow.serve.replica_fence import Fence


class FakeClock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sleeper() -> Iterator[tuple[subprocess.Popen[bytes], RunHandle]]:
    """A real process in a group of its own (as a run's supervisor is), and its handle."""
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    proc = subprocess.Popen(argv, start_new_session=True)
    ticks = start_ticks(proc.pid)
    assert ticks is not None
    yield proc, RunHandle(proc.pid, proc.pid, ticks, "/nonexistent.json")
    proc.kill()
    proc.wait()


def test_runs_are_left_alone_while_heartbeats_are_answered(
    sleeper: tuple[subprocess.Popen[bytes], RunHandle],
) -> None:
    """Within the limit after the last answered heartbeat's sending, nothing is stopped."""
    proc, handle = sleeper
    clock = FakeClock()
    fence = Fence(2.0, clock)
    fence.track("m1", handle)
    clock.now += 1.5
    fence.renewed(clock.now)
    clock.now += 2.0
    assert fence.check() == [] and not fence.expired()
    assert proc.poll() is None


def test_runs_are_stopped_once_no_heartbeat_was_answered_for_the_limit(
    sleeper: tuple[subprocess.Popen[bytes], RunHandle],
) -> None:
    """Past the limit every tracked run's group gets SIGTERM, once; an ended run is not."""
    proc, handle = sleeper
    clock = FakeClock()
    fence = Fence(2.0, clock)
    fence.track("m1", handle)
    fence.track("m2", RunHandle(handle.pid, handle.pgid, handle.start_ticks, "/x"))
    fence.track("m2", None)
    clock.now += 2.5
    assert fence.expired()
    assert fence.check() == ["m1"]
    assert fence.check() == []
    assert proc.wait(timeout=20) == -signal.SIGTERM
