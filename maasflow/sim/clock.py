"""The simulator's sense of time: waits scaled by the time factor, and timeouts that are not.

Every wait the simulator models (a commissioning, a BMC settling, the webhook driver's pause
between rounds) is simulated time, so it shrinks with `time_factor`. A timeout is different:
the work it bounds includes real HTTP calls, whose latency no factor shrinks. Scaled down
with the waits, MAAS's 60 s power-query wait became 60 ms at factor 0.001, less than seven
loopback calls take on a loaded machine. So `ScaledClock.timeout` scales like a wait but
never goes below `IO_FLOOR` real seconds.

`SimClock` is the seam: the simulator only ever sleeps and times out through one, so a test
can hand it a fake (`common.clock.FakeClock` plus timeouts) whose sleeps return at once and
whose timeouts fire when the test advances it. The sleeping itself is `common.clock`'s.
What this module stops at: it measures no time itself and knows nothing of machines.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from maasflow.common.clock import SYSTEM_CLOCK, Clock

IO_FLOOR = 10.0  # real seconds: far above any loopback round trip, even on a busy machine


class SimClock(Protocol):
    """Where the simulator's waits and timeouts come from (seconds are simulated seconds)."""

    async def sleep(self, seconds: float) -> None:
        """Let `seconds` of simulated time pass."""

    def timeout(self, seconds: float) -> AbstractAsyncContextManager[object]:
        """Bound the block by `seconds` of simulated time; TimeoutError when it runs out."""


class ScaledClock:
    """Real time: waits take `seconds * factor`; timeouts as much, but at least IO_FLOOR."""

    def __init__(self, factor: float, base: Clock = SYSTEM_CLOCK) -> None:
        self.factor = factor
        self._base = base

    async def sleep(self, seconds: float) -> None:
        await self._base.sleep(seconds * self.factor)

    def timeout(self, seconds: float) -> AbstractAsyncContextManager[object]:
        return asyncio.timeout(max(seconds * self.factor, IO_FLOOR))
