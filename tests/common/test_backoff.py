"""The one backoff policy (capped exponential, equal jitter) and the sleep a stop cuts short."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maasflow.common.backoff import Backoff, interruptible_sleep
from maasflow.common.clock import FakeClock


def test_the_nominal_delay_grows_by_the_factor_up_to_the_cap() -> None:
    """base, base·factor, base·factor², ... until the cap; attempt 0 or less counts as 1."""
    policy = Backoff(base=1.0, cap=20.0, factor=3.0)
    assert [policy.nominal(n) for n in (-1, 0, 1, 2, 3, 4)] == [1.0, 1.0, 1.0, 3.0, 9.0, 20.0]


def test_a_huge_factor_or_attempt_count_stops_at_the_cap() -> None:
    """Growth that would overflow a float is the cap, not an error."""
    assert Backoff(base=1.0, cap=60.0, factor=1e10).nominal(1000) == 60.0
    assert Backoff(base=1.0, cap=60.0).nominal(10**9) == 60.0


@given(
    st.integers(min_value=-5, max_value=10_000),
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(min_value=0.0, max_value=1e4),
    st.floats(min_value=0.0, max_value=1e5),
)
def test_the_delay_lies_between_half_and_all_of_the_nominal_one(
    attempt: int, jitter: float, base: float, cap: float
) -> None:
    """Equal jitter: never above the nominal delay (so never above cap), never below half of it."""
    policy = Backoff(base=base, cap=cap, rand=lambda: jitter)
    nominal = policy.nominal(attempt)
    assert nominal / 2 <= policy.delay(attempt) <= nominal <= cap


def test_the_random_source_sets_where_in_the_band_the_delay_falls() -> None:
    """The injected source picks the point: 0 gives half, 1 the whole nominal delay."""
    assert Backoff(8.0, 100.0, rand=lambda: 0.0).delay(2) == 8.0
    assert Backoff(8.0, 100.0, rand=lambda: 0.5).delay(2) == 12.0
    assert Backoff(8.0, 100.0, rand=lambda: 1.0).delay(2) == 16.0


def test_a_server_retry_after_wins_over_the_formula_but_not_over_the_cap() -> None:
    """Retry-After is used as given (no jitter), capped; a negative one means now."""
    policy = Backoff(base=1.0, cap=30.0, rand=lambda: 0.0)
    assert policy.delay(1, retry_after=7.0) == 7.0
    assert policy.delay(1, retry_after=3600.0) == 30.0
    assert policy.delay(5, retry_after=-2.0) == 0.0


@pytest.mark.parametrize(
    ("base", "cap", "factor"), [(-1.0, 1.0, 2.0), (1.0, -1.0, 2.0), (1, 1, 0.5)]
)
def test_a_policy_that_would_shrink_or_go_negative_is_refused(
    base: float, cap: float, factor: float
) -> None:
    """Negative base or cap, or a factor below 1, is a programming error caught at once."""
    with pytest.raises(ValueError, match="backoff"):
        Backoff(base=base, cap=cap, factor=factor)


async def test_an_uninterrupted_sleep_runs_out_on_the_injected_clock() -> None:
    """The whole delay is slept with the given sleep, and the answer is True."""
    clock = FakeClock()
    assert await interruptible_sleep(42.0, asyncio.Event(), clock.sleep) is True
    assert clock.slept == [42.0]


async def test_a_sleep_whose_event_is_already_set_does_not_sleep() -> None:
    """A stop that came first means no sleep at all, and False."""
    clock = FakeClock()
    stop = asyncio.Event()
    stop.set()
    assert await interruptible_sleep(42.0, stop, clock.sleep) is False
    assert clock.slept == []


async def test_setting_the_event_cuts_a_long_sleep_short() -> None:
    """An hour's sleep ends as soon as the event is set, answering False."""
    stop = asyncio.Event()
    sleeper = asyncio.create_task(interruptible_sleep(3600.0, stop))
    await asyncio.sleep(0)
    stop.set()
    assert await asyncio.wait_for(sleeper, timeout=5) is False


async def test_a_sleep_that_fails_raises_instead_of_counting_as_a_wake_up() -> None:
    """An error from the injected sleep reaches the caller."""

    async def broken(seconds: float) -> None:
        raise RuntimeError("no clock")

    with pytest.raises(RuntimeError, match="no clock"):
        await interruptible_sleep(1.0, asyncio.Event(), broken)
