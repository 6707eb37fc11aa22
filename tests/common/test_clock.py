"""Clocks: the real one reads the machine's time; the fake one moves only when told."""

from __future__ import annotations

import time

from maasflow.common.clock import SYSTEM_CLOCK, FakeClock


async def test_the_system_clock_reads_the_machines_clocks_and_sleeps() -> None:
    """Wall and monotonic readings fall between the machine's own readings around them."""
    wall, mono = time.time(), time.monotonic()
    readings = SYSTEM_CLOCK.time(), SYSTEM_CLOCK.monotonic()
    await SYSTEM_CLOCK.sleep(0)
    assert wall <= readings[0] <= time.time()
    assert mono <= readings[1] <= time.monotonic()


async def test_the_fake_clock_stands_still_until_advanced_or_slept() -> None:
    """advance() and sleep() move wall and monotonic time together; nothing else does."""
    clock = FakeClock(wall=5000.0)
    assert (clock.time(), clock.monotonic()) == (5000.0, 0.0)
    assert (clock.time(), clock.monotonic()) == (5000.0, 0.0)
    clock.advance(2.5)
    await clock.sleep(10.0)
    assert (clock.time(), clock.monotonic()) == (5012.5, 12.5)
    assert clock.slept == [10.0]


def test_the_fake_clock_never_runs_backwards() -> None:
    """A negative advance is ignored: monotonic time only grows."""
    clock = FakeClock()
    clock.advance(-3.0)
    assert clock.monotonic() == 0.0
