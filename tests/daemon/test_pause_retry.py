"""Pause, resume and retry, as the daemon carries them out (the HTTP side is tests/ops)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from maasflow.common.clock import FakeClock
from maasflow.common.errors import TemporaryMaasError
from maasflow.daemon.loop import Daemon
from maasflow.daemon.store import Store


async def settle(daemon: Daemon) -> None:
    """Let every action started by the last pass finish."""
    for _ in range(20):
        await asyncio.sleep(0)
    await daemon.executor.drain(2)
    daemon.executor = type(daemon.executor)(4)


async def test_a_paused_daemon_starts_nothing_but_lets_running_actions_finish(
    mk: Any, Fake: Any, make_daemon: Any
) -> None:
    """Paused, an action under way completes, no new one starts, and resuming acts again."""
    fake = Fake([mk("a", 4, hostname="running"), mk("b", 0, hostname="new")])
    fake.hold = asyncio.Event()
    daemon = make_daemon(fake)
    await daemon.identify(retry=False)
    fake.machines.pop("b")
    new = mk("b", 0, hostname="new")
    await daemon.run_pass()  # allocate a: held in flight
    daemon.pause()
    fake.machines["b"] = new
    await daemon.run_pass()
    fake.hold.set()
    await settle(daemon)
    assert fake.ops() == [("allocate", "a")]
    row = {r["hostname"]: r for r in daemon.snapshot()["machines"]}["new"]
    assert row["reason"] == "paused: would commission (New and powered off: commission)"
    assert daemon.snapshot()["paused"] is True
    assert daemon.status_line().startswith("PAUSED; ")
    assert daemon.metrics.registry.get_sample_value("maasflow_paused") == 1
    daemon.resume()
    await daemon.run_pass()
    await settle(daemon)
    assert ("commission", "b") in fake.ops()
    assert daemon.metrics.registry.get_sample_value("maasflow_paused") == 0


async def test_retry_clears_a_backoff_so_the_next_pass_sends_the_action(
    mk: Any, Fake: Any, make_daemon: Any
) -> None:
    """A machine whose action backs off for minutes is tried at the very next pass."""
    store = Store(":memory:")
    fake = Fake([mk("a", 4, hostname="node")])
    fake.errors["allocate"] = TemporaryMaasError("POST", "machines/", 503, "busy")
    daemon = make_daemon(fake, store=store, period=60.0)
    await daemon.identify(retry=False)
    await daemon.run_pass()
    await settle(daemon)
    await daemon.run_pass()
    assert fake.ops() == [("allocate", "a")]  # held by its backoff
    del fake.errors["allocate"]
    answer = daemon.retry("node")
    assert (answer["system_id"], answer["cleared"]) == ("a", ["backoff"])
    assert store.setbacks() == []
    await daemon.run_pass()
    await settle(daemon)
    assert fake.ops() == [("allocate", "a"), ("allocate", "a")]
    daemon.flush_history()
    assert [(e.kind, e.action) for e in store.events("a")][-2:] == [
        ("operator", "retry"),
        ("action", "allocate"),
    ]


async def test_retry_gives_a_failed_machine_a_fresh_budget_due_now(
    mk: Any, Fake: Any, make_daemon: Any
) -> None:
    """With its -retry-failed budget spent, a retried machine is commissioned at the next pass."""
    clock = FakeClock()
    fake = Fake([mk("a", 2, hostname="failing")])
    daemon = make_daemon(fake, retry_failed=1, clock=clock)
    await daemon.identify(retry=False)
    await daemon.run_pass()
    clock.advance(3600)
    await daemon.run_pass()
    await settle(daemon)
    assert fake.ops() == [("commission", "a")]
    fake.move("a", status=1)  # commissioning again, then failing again: budget spent
    await daemon.run_pass()
    fake.move("a", status=2)
    assert daemon.budgets.used("a") == 1
    answer = daemon.retry("a")
    assert "retry budget" in answer["cleared"] and daemon.budgets.used("a") == 0
    await daemon.run_pass()
    await settle(daemon)
    assert fake.ops() == [("commission", "a"), ("commission", "a")]


async def test_retry_makes_a_failed_provisioning_due_now(
    mk: Any, Fake: Any, make_daemon: Any
) -> None:
    """A failed provisioning record waiting out its backoff is due at once, its deploy id kept."""
    store = Store(":memory:")
    record = store.start("a", "node", "url")
    store.fail("a", "exit 1", "", next_attempt_at=1e12)
    fake = Fake([mk("a", 6, hostname="node", owner="maasflow")])
    daemon = make_daemon(fake, store=store)
    await daemon.identify(retry=False)
    await daemon.run_pass()
    assert daemon.retry("a")["cleared"] == ["failed provisioning's wait"]
    again = store.get("a")
    assert again is not None and again.next_attempt_at is not None
    assert again.next_attempt_at < 1e12 and again.deploy_id == record.deploy_id


async def test_retry_of_an_unknown_machine_is_a_lookup_error(Fake: Any, make_daemon: Any) -> None:
    """Neither a hostname nor a system_id of the last pass: LookupError, nothing recorded."""
    daemon = make_daemon(Fake([]))
    await daemon.identify(retry=False)
    await daemon.run_pass()
    with pytest.raises(LookupError):
        daemon.retry("ghost")
    assert daemon.actuator.store.events("ghost") == []
