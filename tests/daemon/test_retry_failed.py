"""`-retry-failed N`: failed machines retried with backoff at most N times, then quarantined.

MAAS is the fake client of conftest.py, moved by hand between passes the way real MAAS
would move the machine; time is a `FakeClock` (period 1 s, backoff at its nominal value).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from maasflow.common.clock import FakeClock
from maasflow.common.errors import Forbidden
from maasflow.daemon.actions import Actuator
from maasflow.daemon.loop import Daemon
from maasflow.daemon.mappings import Mappings
from maasflow.daemon.preview import make_plan
from maasflow.daemon.report import render_table
from maasflow.daemon.selection import FilterSpec
from maasflow.daemon.store import Store

TAG = "maasflow-quarantine"
FAILED_COMMISSIONING, FAILED_DEPLOYMENT = 2, 11


async def settle(daemon: Daemon) -> None:
    for _ in range(1000):
        if daemon.executor.in_flight == 0:
            return
        await asyncio.sleep(0)
    raise AssertionError("actions still running")


async def passes(daemon: Daemon, clock: FakeClock, count: int) -> None:
    for _ in range(count):
        await daemon.run_pass()
        await settle(daemon)
        clock.advance(1.0)


def build(fake: Any, clock: FakeClock, store: Store | None = None, **kw: Any) -> Daemon:
    actuator = Actuator(fake, store or Store(":memory:", clock=clock.time), None)
    return Daemon(
        fake,
        actuator,
        filters=FilterSpec.load("{}", "t"),
        mappings=Mappings.empty(),
        period=1.0,
        clock=clock,
        rand=lambda: 1.0,
        **{
            "retry_failed": 2,
            "provision_existing": True,
            **kw,
        },  # provision machines first seen Deployed
    )


async def test_failed_commissioning_is_commissioned_again_after_a_backoff_at_most_n_times(
    mk: Any, Fake: Any
) -> None:
    """N = 2: retry 1 waits 1 s after the failure is seen, retry 2 waits 2 s; then the tag."""
    fake = Fake([mk("m", FAILED_COMMISSIONING)])
    clock = FakeClock()
    daemon = build(fake, clock)
    await daemon.identify(retry=False)
    await passes(daemon, clock, 1)  # t = 0: seen failed, retry 1 due at t = 1
    assert fake.ops() == []
    await passes(daemon, clock, 1)
    assert fake.ops() == [("commission", "m")]
    fake.move("m", status=1)  # Commissioning ...
    await passes(daemon, clock, 1)
    fake.move("m", status=FAILED_COMMISSIONING)  # ... and it fails again at t = 3
    await passes(daemon, clock, 2)  # t = 3, 4: retry 2 waits 2 s
    assert fake.ops() == [("commission", "m")]
    await passes(daemon, clock, 1)  # t = 5
    assert fake.ops() == [("commission", "m")] * 2
    fake.move("m", status=1)
    await passes(daemon, clock, 1)
    fake.move("m", status=FAILED_COMMISSIONING)
    await passes(daemon, clock, 1)  # the budget is spent: quarantine
    assert fake.ops()[-1] == ("tag", "m")
    assert fake.calls[-1][2]["tag"] == TAG


async def test_failed_deployment_is_released_then_deployed_again(mk: Any, Fake: Any) -> None:
    """Failed deployment → release (a retry); Releasing → Ready → allocate → deploy as usual."""
    fake = Fake([mk("m", FAILED_DEPLOYMENT, owner="maasflow")])
    clock = FakeClock()
    daemon = build(fake, clock)
    await daemon.identify(retry=False)
    await passes(daemon, clock, 2)
    assert fake.ops() == [("release", "m")]
    assert "comment" in fake.calls[-1][2]
    fake.move("m", status=4, owner=None)  # Releasing went to Ready
    await passes(daemon, clock, 1)
    fake.move("m", status=10, owner="maasflow")
    await passes(daemon, clock, 1)
    assert fake.ops() == [("release", "m"), ("allocate", "m"), ("deploy", "m")]
    assert daemon.budgets.used("m") == 1


async def test_a_release_to_new_without_commissioning_data_is_commissioned_first(
    mk: Any, Fake: Any
) -> None:
    """MAAS releases a machine with no passed commissioning data to New (facts §10.1): the
    daemon commissions it (powering it off first if MAAS left it on), then deploys it."""
    fake = Fake([mk("m", FAILED_DEPLOYMENT, owner="maasflow")])
    clock = FakeClock()
    daemon = build(fake, clock)
    await daemon.identify(retry=False)
    await passes(daemon, clock, 2)
    fake.move("m", status=0, owner=None, power_state="on")
    await passes(daemon, clock, 1)
    fake.move("m", power_state="off")
    await passes(daemon, clock, 1)
    fake.move("m", status=4)
    await passes(daemon, clock, 1)
    assert fake.ops() == [("release", "m"), ("power_off", "m"), ("commission", "m"),
                          ("allocate", "m")]  # fmt: skip
    assert daemon.budgets.used("m") == 1  # commissioning it is part of the same retry


async def test_a_quarantined_machine_is_left_alone_until_its_tag_is_removed(
    mk: Any, Fake: Any
) -> None:
    """With the tag listed, nothing is sent however long it stays failed; removing the tag
    gives a fresh budget, and the next retry follows its backoff."""
    fake = Fake([mk("m", FAILED_COMMISSIONING)])
    clock = FakeClock()
    daemon = build(fake, clock, retry_failed=1)
    await daemon.identify(retry=False)
    await passes(daemon, clock, 2)
    fake.move("m", status=1)
    await passes(daemon, clock, 1)
    fake.move("m", status=FAILED_COMMISSIONING)
    await passes(daemon, clock, 1)
    assert fake.ops() == [("commission", "m"), ("tag", "m")]
    fake.move("m", tag_names=[TAG])
    await passes(daemon, clock, 50)
    assert fake.ops() == [("commission", "m"), ("tag", "m")]
    assert daemon.views.get("m").phase == "quarantined"  # type: ignore[union-attr]
    fake.move("m", tag_names=[])
    await passes(daemon, clock, 2)
    assert fake.ops() == [("commission", "m"), ("tag", "m"), ("commission", "m")]
    assert daemon.budgets.used("m") == 1


async def test_quarantine_is_logged_counted_and_shown_in_status(mk: Any, Fake: Any) -> None:
    """One warning names the machine and the tag; a counter counts it; /state and the status
    table show the phase once MAAS lists the tag."""
    fake = Fake([mk("m", FAILED_DEPLOYMENT, owner="maasflow", hostname="node-7")])
    clock = FakeClock()
    daemon = build(fake, clock, retry_failed=1)
    await daemon.identify(retry=False)
    daemon.budgets.spend("m")  # its one retry was spent already
    with capture_logs() as logs:
        await passes(daemon, clock, 3)
    (warning,) = [e for e in logs if e["event"].startswith("machine quarantined")]
    assert (warning["system_id"], warning["tag"], warning["retries"]) == ("m", TAG, 1)
    assert "maasflow_quarantines_total 1.0" in daemon.metrics.render()[0].decode()
    fake.move("m", tag_names=[TAG])
    await passes(daemon, clock, 1)
    (row,) = daemon.snapshot()["machines"]
    assert (row["phase"], row["retries"]) == ("quarantined", 1)
    assert "quarantined" in render_table(daemon.snapshot()).splitlines()[-1]


async def test_the_retry_budget_survives_a_restart(tmp_path: Path, mk: Any, Fake: Any) -> None:
    """At most N retries per machine even across restarts: the count is in the state file."""
    fake = Fake([mk("m", FAILED_COMMISSIONING)])
    clock = FakeClock()
    store = Store(tmp_path / "s.sqlite", clock=clock.time)
    daemon = build(fake, clock, store, retry_failed=1)
    await daemon.identify(retry=False)
    await passes(daemon, clock, 2)
    assert fake.ops() == [("commission", "m")]
    store.close()
    store = Store(tmp_path / "s.sqlite", clock=clock.time)
    reborn = build(fake, clock, store, retry_failed=1)
    await reborn.identify(retry=False)
    await passes(reborn, clock, 1)
    assert fake.ops() == [("commission", "m"), ("tag", "m")]
    store.close()


async def test_a_retry_maas_refused_is_not_counted(mk: Any, Fake: Any) -> None:
    """A 403 to the retry's commission (MAAS certainly did nothing) gives the retry back."""
    fake = Fake([mk("m", FAILED_COMMISSIONING)])
    fake.errors["commission"] = Forbidden("POST", "machines/m/", 403, "")
    clock = FakeClock()
    daemon = build(fake, clock, retry_failed=1)
    await daemon.identify(retry=False)
    await passes(daemon, clock, 2)
    assert fake.ops() == [("commission", "m")]
    assert daemon.budgets.used("m") == 0
    assert daemon.setbacks.get("m") is not None


async def test_a_deployed_machine_gets_a_fresh_budget(mk: Any, Fake: Any) -> None:
    """Reaching Deployed clears the count: a later failure has its N retries again."""
    fake = Fake([mk("m", FAILED_DEPLOYMENT, owner="maasflow")])
    clock = FakeClock()
    daemon = build(fake, clock, retry_failed=1)
    await daemon.identify(retry=False)
    await passes(daemon, clock, 2)
    assert daemon.budgets.used("m") == 1
    fake.move("m", status=6)
    await passes(daemon, clock, 1)
    assert daemon.budgets.used("m") == 0


async def test_retry_failed_zero_leaves_failed_machines_to_a_human(mk: Any, Fake: Any) -> None:
    """The default: no retry, no tag, phase failed, one "needs a human" warning."""
    fake = Fake([mk("m", FAILED_DEPLOYMENT, owner="maasflow")])
    clock = FakeClock()
    daemon = build(fake, clock, retry_failed=0)
    await daemon.identify(retry=False)
    with capture_logs() as logs:
        await passes(daemon, clock, 30)
    assert fake.ops() == []
    assert [e["event"] for e in logs].count("machine needs a human") == 1


async def test_preview_shows_an_action_held_by_its_backoff(
    tmp_path: Path, mk: Any, Fake: Any
) -> None:
    """-preview reads the state file: a deploy backing off is planned as held, with why."""
    fake = Fake([mk("m", 10, owner="maasflow")])
    fake.errors["deploy"] = Forbidden("POST", "machines/m/", 403, "locked")
    clock = FakeClock()
    store = Store(tmp_path / "s.sqlite", clock=clock.time)
    daemon = build(fake, clock, store)
    await daemon.identify(retry=False)
    await passes(daemon, clock, 2)  # failed at t = 0 and 1; next try at t = 3; now t = 2
    store.close()
    store = Store(tmp_path / "s.sqlite", clock=clock.time)
    viewer = build(fake, clock, store)
    await viewer.identify(retry=False)
    (item,) = await make_plan(viewer)
    assert item.action == "deploy"
    assert (
        item.held is not None
        and "failed 2 times, next try in 1s" in item.held
        and "locked" in item.held
    )
    store.close()
