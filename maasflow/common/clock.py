"""Time as a value the code is handed, so tests move it instead of waiting for it.

A `Clock` tells the wall time (`time()`, seconds since the epoch: for timestamps that are
shown or outlive the process), the monotonic time (`monotonic()`: for durations and
deadlines, immune to clock steps) and sleeps (`sleep()`). `SYSTEM_CLOCK` is the real one.
`FakeClock` is time that moves only when a test says so: `advance(seconds)`, or a `sleep()`,
which returns at once having moved the clock by the time asked for. Both readings move
together, so a test never races the wall clock.

This module only tells and passes time; what to wait for and how long is the caller's.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """What code that measures or waits needs to know about time."""

    def time(self) -> float:
        """Wall-clock seconds since the epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps; only differences mean anything."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return after `seconds` of this clock's time."""
        ...


class SystemClock:
    """The machine's clocks and asyncio's sleep."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()


class FakeClock:
    """A clock for tests: it stands still until advanced; sleeping advances it at once.

    `slept` lists every sleep asked for, in order, so a test can check a backoff schedule.
    """

    def __init__(self, wall: float = 1_000_000.0) -> None:
        self._epoch = wall
        self.elapsed = 0.0
        self.slept: list[float] = []

    def time(self) -> float:
        return self._epoch + self.elapsed

    def monotonic(self) -> float:
        return self.elapsed

    def advance(self, seconds: float) -> None:
        """Move both readings forward by `seconds`."""
        self.elapsed += max(seconds, 0.0)

    async def sleep(self, seconds: float) -> None:
        """Record the sleep, advance by it and let other tasks run once."""
        self.slept.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)
