"""The simulator's real clock scales waits by the time factor but keeps timeouts above I/O."""

from __future__ import annotations

import asyncio

from maasflow.sim.clock import IO_FLOOR, ScaledClock


async def test_a_tiny_factor_never_shrinks_a_timeout_below_the_io_floor() -> None:
    """At factor 0.001 MAAS's 60 s query wait lasts IO_FLOOR real seconds, not 60 ms."""
    loop = asyncio.get_running_loop()
    before = loop.time()
    async with ScaledClock(0.001).timeout(60.0) as guard:
        assert isinstance(guard, asyncio.Timeout)
        deadline = guard.when()
    assert deadline is not None
    assert IO_FLOOR <= deadline - before < IO_FLOOR + 1.0


async def test_a_large_factor_scales_a_timeout_like_a_wait() -> None:
    """At factor 2 a 60 s timeout lasts 120 real seconds."""
    loop = asyncio.get_running_loop()
    before = loop.time()
    async with ScaledClock(2.0).timeout(60.0) as guard:
        assert isinstance(guard, asyncio.Timeout)
        deadline = guard.when()
    assert deadline is not None
    assert 120.0 <= deadline - before < 121.0


async def test_a_wait_is_scaled_by_the_factor() -> None:
    """A 20 s wait at factor 0.001 takes about 20 ms of real time, far from 20 s."""
    loop = asyncio.get_running_loop()
    before = loop.time()
    await ScaledClock(0.001).sleep(20.0)
    # asyncio may wake a timer up to its clock resolution early; 10 s is "not unscaled"
    # with room for any load.
    assert 0.019 <= loop.time() - before < 10.0
