"""With `-events on`, a machine whose decision depends on time is read again when that time
comes, though no event names it: after its action, at its backoff's end, when slots free
up; an operator's resume lists everything. Everything else waits for an event."""

from __future__ import annotations

import asyncio
from typing import Any

from maasflow.common.errors import TemporaryMaasError
from maasflow.daemon.event_feed import EventFeed


async def _settle(daemon: Any) -> None:
    for _ in range(1000):
        if daemon.executor.in_flight == 0:
            return
        await asyncio.sleep(0)
    raise AssertionError("actions still running")


def _following(fake: Any, make_daemon: Any, **kw: Any) -> Any:
    daemon = make_daemon(fake, **kw)
    daemon.feed = EventFeed(fake.events_after, relist_s=300.0, clock=daemon.clock)
    return daemon


def _reads(fake: Any) -> list[list[str] | None]:
    """Each machine listing asked for: None for a full one, else the ids asked."""
    return [p.get("id") for method, op, p in fake.calls if op == "list"]


async def test_machines_at_rest_wait_for_an_event(make_daemon: Any, mk: Any, Fake: Any) -> None:
    """Deployed machines of ours need nothing: after the full listing no step reads them,
    until the event log names one, which alone is read again."""
    fake = Fake([mk(f"m{i}", 6, owner="maasflow", power_state="on") for i in range(5)])
    daemon = _following(fake, make_daemon)
    await daemon.identify(retry=False)
    await daemon.step()
    for _ in range(3):
        daemon.clock.advance(1)
        await daemon.step()
    assert _reads(fake) == [None]
    fake.move("m3", status=8, status_name="Broken")
    await daemon.step()
    assert _reads(fake) == [None, ["m3"]]


async def test_a_machine_backing_off_is_read_again_when_its_backoff_ends(
    make_daemon: Any, mk: Any, Fake: Any
) -> None:
    """A commission that failed sets the machine back; no event names it, yet once the
    backoff has run out it is read again and commissioned again; not read in between."""
    fake = Fake([mk("m1", 0, power_state="off")])
    fake.errors["commission"] = TemporaryMaasError("POST", "machines/m1/", 503, "busy")
    daemon = _following(fake, make_daemon, period=10.0)
    await daemon.identify(retry=False)
    await daemon.step()
    await _settle(daemon)
    setback = daemon.setbacks.get("m1")
    assert setback is not None
    daemon.clock.advance(0.5)
    await daemon.step()  # re-read once: the action ended after the listing was asked for
    while daemon.clock.time() < setback.retry_at - 1:
        daemon.clock.advance(1)
        await daemon.step()
    reads_while_waiting = len(_reads(fake))
    assert reads_while_waiting == 2  # the full listing, the re-read after the action: no more
    daemon.clock.advance(2)
    await daemon.step()
    await _settle(daemon)
    assert _reads(fake)[reads_while_waiting:] == [["m1"]]
    assert [op for op, _ in fake.ops()] == ["commission", "commission"]


async def test_machines_deferred_for_want_of_a_slot_are_read_again_and_none_is_lost(
    make_daemon: Any, mk: Any, Fake: Any
) -> None:
    """With one slot, 20 New machines: those deferred are read again by id at later steps
    (no event names them) until every one has been commissioned once."""
    fake = Fake([mk(f"m{i:02d}", 0, power_state="off") for i in range(20)])
    daemon = _following(fake, make_daemon, concurrency=1)
    await daemon.identify(retry=False)
    for _ in range(10):
        await daemon.step()
        await _settle(daemon)
        for _op, system_id in fake.ops():
            if fake.machines[system_id].status == 0:
                fake.move(system_id, status=1, status_name="Commissioning")
        daemon.clock.advance(1)
    assert sorted(s for _, s in fake.ops()) == [f"m{i:02d}" for i in range(20)]
    assert _reads(fake).count(None) == 1


async def test_resume_lists_every_machine_again(make_daemon: Any, mk: Any, Fake: Any) -> None:
    """A paused daemon's machines wait for no event; resuming brings a full listing, and the
    actions the pause held back start."""
    fake = Fake([mk("m1", 0, power_state="off")])
    daemon = _following(fake, make_daemon)
    await daemon.identify(retry=False)
    daemon.pause()
    await daemon.step()
    daemon.clock.advance(1)
    await daemon.step()
    assert _reads(fake) == [None] and fake.ops() == []
    daemon.resume()
    daemon.clock.advance(1)
    await daemon.step()
    await _settle(daemon)
    assert _reads(fake) == [None, None]
    assert fake.ops() == [("commission", "m1")]


async def test_a_machine_whose_action_just_ended_is_not_dropped_while_the_executor_says_busy(
    make_daemon: Any, mk: Any, Fake: Any
) -> None:
    """The executor forgets an action a moment after it ended: a pass in that moment still
    leaves the machine due, so it is read again and not left waiting for an event."""
    fake = Fake([mk("m1", 0, power_state="off")])
    fake.hold = asyncio.Event()
    daemon = _following(fake, make_daemon)
    await daemon.identify(retry=False)
    await daemon.step()
    fake.hold.set()
    while "m1" in daemon._in_flight:
        await asyncio.sleep(0)
    assert daemon.executor.busy("m1")  # the moment: ended, not yet forgotten
    daemon.clock.advance(1)
    await daemon.step()
    assert "m1" in daemon.revisits
    await _settle(daemon)
    daemon.clock.advance(1)
    await daemon.step()
    assert _reads(fake)[-1] == ["m1"]
