"""A pass hands the executor at most its room (free slots plus a small queue), and says how
many machines it deferred in one line, not one line each."""

from __future__ import annotations

import asyncio
from typing import Any

from structlog.testing import capture_logs


async def _settle(daemon: Any) -> None:
    for _ in range(1000):
        if daemon.executor.in_flight == 0:
            return
        await asyncio.sleep(0)
    raise AssertionError("actions still running")


async def test_a_pass_hands_over_no_more_than_the_executor_takes(
    make_daemon: Any, mk: Any, Fake: Any
) -> None:
    """40 New machines, one slot held: 17 commissions are handed over (1 slot + 16 queued),
    23 deferred, counted in the pass's line; per machine only at debug."""
    fake = Fake([mk(f"m{i:02d}", 0) for i in range(40)])
    fake.hold = asyncio.Event()
    daemon = make_daemon(fake, concurrency=1)
    await daemon.identify(retry=False)
    with capture_logs() as logs:
        summary = await daemon.run_pass()
    assert (summary.started, summary.deferred) == (17, 23)
    assert daemon.executor.in_flight == 17
    (line,) = [e for e in logs if e["event"] == "pass"]
    assert line["deferred"] == 23 and line["started"] == 17
    loud = [e for e in logs if e["log_level"] != "debug" and e["event"] != "pass"]
    assert not [e for e in loud if "slot" in str(e)]
    assert daemon.views.get("m39").reason.startswith("no free action slot: would commission")
    fake.hold.set()
    await _settle(daemon)
    assert len(fake.ops()) == 17


async def test_deferred_machines_are_handed_over_by_later_passes(
    make_daemon: Any, mk: Any, Fake: Any
) -> None:
    """Once the executor has room again, the next passes start what was deferred: none lost."""
    fake = Fake([mk(f"m{i:02d}", 0) for i in range(40)])
    daemon = make_daemon(fake, concurrency=1)
    await daemon.identify(retry=False)
    deferred = []
    for _ in range(3):
        deferred.append((await daemon.run_pass()).deferred)
        await _settle(daemon)
        for _op, system_id in fake.ops():
            fake.move(system_id, status=1, status_name="Commissioning")  # MAAS took it
        daemon.clock.advance(60)
    assert deferred == [23, 6, 0]
    assert sorted(system_id for _op, system_id in fake.ops()) == [f"m{i:02d}" for i in range(40)]
