"""The executor: single flight per machine, a global cap, and a graceful drain."""

from __future__ import annotations

import asyncio

import pytest

from maasflow.daemon.executor import Executor


async def test_a_second_submit_for_a_busy_machine_is_refused() -> None:
    """While a machine's action is in flight, another action for it is not started."""
    ex = Executor(4)
    gate = asyncio.Event()
    runs: list[str] = []

    async def action() -> None:
        runs.append("x")
        await gate.wait()

    assert ex.submit("m1", action) is True
    assert ex.submit("m1", action) is False
    await asyncio.sleep(0)
    assert ex.busy("m1")
    gate.set()
    await ex.drain(1)
    assert runs == ["x"]
    assert not ex.busy("m1")


async def test_no_more_than_the_cap_run_at_once() -> None:
    """With a cap of 2, the third action waits for a slot."""
    ex = Executor(2)
    running = 0
    peak = 0
    gate = asyncio.Event()

    async def action() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1

    for i in range(5):
        assert ex.submit(f"m{i}", action)
    for _ in range(5):
        await asyncio.sleep(0)
    assert peak == 2
    assert ex.in_flight == 5
    gate.set()
    await ex.drain(1)
    assert peak == 2


async def test_submit_returns_at_once_even_when_the_action_is_slow() -> None:
    """A slow action never blocks the caller: submit only schedules it."""
    ex = Executor(1)
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(3600)

    ex.submit("m1", slow)
    assert not started.is_set()  # nothing ran yet: submit did not await the action
    await started.wait()
    assert await ex.drain(0.01) == 1


async def test_drain_lets_quick_actions_finish_and_cancels_the_rest() -> None:
    """Drain waits up to the grace period, then cancels what still runs."""
    ex = Executor(4)
    finished: list[str] = []

    async def quick() -> None:
        await asyncio.sleep(0)
        finished.append("quick")

    async def stuck() -> None:
        await asyncio.sleep(3600)
        finished.append("stuck")

    ex.submit("a", quick)
    ex.submit("b", stuck)
    cancelled = await ex.drain(0.05)
    assert finished == ["quick"]
    assert cancelled == 1


async def test_after_drain_nothing_new_starts() -> None:
    """Once shutting down, submit refuses new work."""
    ex = Executor(1)
    await ex.drain(0)

    async def action() -> None:
        raise AssertionError("must not run")

    assert ex.submit("m1", action) is False


def test_a_cap_below_one_is_a_programming_error() -> None:
    """Concurrency 0 would deadlock every action, so it is refused."""
    with pytest.raises(ValueError, match="at least 1"):
        Executor(0)


async def test_room_is_the_free_slots_plus_the_queue() -> None:
    """Room shrinks with each action handed over and comes back as they finish."""
    ex = Executor(2, queue=1)
    gate = asyncio.Event()

    async def action() -> None:
        await gate.wait()

    assert ex.room == 3
    for i in range(3):
        ex.submit(f"m{i}", action)
    assert ex.room == 0
    gate.set()
    await ex.drain(1)
    assert ex.room == 3


def test_the_default_queue_is_the_cap_and_at_least_sixteen() -> None:
    """16 slots take 32 actions at once; a single slot still takes 17."""
    assert (Executor(16).room, Executor(1).room, Executor(40).room) == (32, 17, 80)
