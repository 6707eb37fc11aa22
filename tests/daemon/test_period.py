"""The period counts from one pass's start to the next's: `-period 15s` is a 15 s cycle."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from maasflow.common.clock import FakeClock
from maasflow.common.errors import TemporaryMaasError


class SlowListing:
    """Wraps a fake MAAS so that each listing takes `seconds` of the fake clock's time."""

    def __init__(self, fake: Any, clock: FakeClock, seconds: float) -> None:
        self.fake, self.clock, self.seconds = fake, clock, seconds
        self.started_at: list[float] = []
        self.fail: TemporaryMaasError | None = None

    async def list_machines(self, **filters: Any) -> Any:
        self.started_at.append(self.clock.monotonic())
        self.clock.advance(self.seconds)
        if self.fail is not None:
            raise self.fail
        return await self.fake.list_machines(**filters)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fake, name)


async def _three_passes(make_daemon: Any, maas: SlowListing, clock: FakeClock) -> None:
    daemon = make_daemon(maas, period=15.0, clock=clock, rand=lambda: 1.0)
    await daemon.identify(retry=False)
    stop = asyncio.Event()
    await asyncio.wait_for(daemon.run(stop, lambda: len(maas.started_at) == 3 and stop.set()), 5)
    await daemon.executor.drain(1)


@pytest.mark.parametrize(("spent", "starts"), [(0.0, [0, 15, 30]), (4.0, [0, 15, 30])])
async def test_passes_start_one_period_apart_whatever_they_take(
    make_daemon: Any, mk: Any, Fake: Any, spent: float, starts: list[float]
) -> None:
    """A pass that takes 4 s of a 15 s period is followed by an 11 s wait, not a 15 s one."""
    clock = FakeClock()
    maas = SlowListing(Fake([mk("a", 4)]), clock, spent)
    await _three_passes(make_daemon, maas, clock)
    assert maas.started_at == starts
    assert clock.slept[:2] == [15.0 - spent] * 2


async def test_a_pass_longer_than_the_period_starts_the_next_at_once(
    make_daemon: Any, mk: Any, Fake: Any
) -> None:
    """A 20 s pass with a 15 s period leaves no wait: the next pass starts when it ends."""
    clock = FakeClock()
    maas = SlowListing(Fake([mk("a", 4)]), clock, 20.0)
    await _three_passes(make_daemon, maas, clock)
    assert maas.started_at == [0.0, 20.0, 40.0]
    assert clock.slept[:2] == [0.0, 0.0]


async def test_a_failed_pass_still_waits_its_whole_backoff(
    make_daemon: Any, mk: Any, Fake: Any
) -> None:
    """After a failure the backoff counts from the failure, not from the pass's start."""
    clock = FakeClock()
    maas = SlowListing(Fake([mk("a", 4)]), clock, 4.0)
    maas.fail = TemporaryMaasError("GET", "machines/", None, "connection refused")
    await _three_passes(make_daemon, maas, clock)
    assert clock.slept[:2] == [15.0, 30.0]
    assert maas.started_at == [0.0, 19.0, 53.0]
