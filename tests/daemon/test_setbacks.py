"""`Setbacks`: per-machine backoff bookkeeping, written through to a store."""

from __future__ import annotations

from maasflow.common.backoff import Backoff
from maasflow.daemon.setbacks import Setback, Setbacks
from maasflow.daemon.store import Store


def test_failures_of_one_action_grow_the_wait_and_a_different_action_starts_over() -> None:
    """Two deploy failures: 10 s then 20 s; an allocate failure after that is failure 1."""
    setbacks = Setbacks(None, Backoff(10.0, 300.0, rand=lambda: 1.0))
    assert setbacks.failed("m", "deploy", "503", now=0.0).retry_at == 10.0
    assert setbacks.failed("m", "deploy", "503", now=10.0).retry_at == 30.0
    other = setbacks.failed("m", "allocate", "409", now=30.0)
    assert (other.failures, other.retry_at) == (1, 40.0)


def test_only_the_failing_action_is_held_and_only_until_its_time() -> None:
    """holds() names the setback for that action before retry_at, and nothing else."""
    setbacks = Setbacks(None, Backoff(10.0, 300.0, rand=lambda: 1.0))
    setbacks.failed("m", "deploy", "503", now=0.0)
    assert setbacks.holds("m", "deploy", 9.9) is not None
    assert setbacks.holds("m", "deploy", 10.0) is None
    assert setbacks.holds("m", "release", 5.0) is None
    assert setbacks.waiting(5.0) == 1 and setbacks.waiting(10.0) == 0


def test_setbacks_are_written_through_and_read_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A new Setbacks on the same store sees the old ones; a cleared one is gone from both."""
    store = Store(tmp_path / "s.sqlite")
    setbacks = Setbacks(store, Backoff(10.0, 300.0, rand=lambda: 1.0))
    setbacks.failed("a", "deploy", "x" * 1000, now=0.0)
    setbacks.failed("b", "rename", "500", now=0.0)
    setbacks.cleared("b")
    again = Setbacks(store, Backoff(10.0, 300.0))
    assert [s.system_id for s in again] == ["a"]
    kept = again.get("a")
    assert kept == Setback("a", "deploy", 1, 10.0, "x" * 500)
    store.close()
