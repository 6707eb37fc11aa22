"""With `-events on`, a daemon lists everything once, then re-reads only the machines MAAS's
event log names (and those due again without an event), listing everything again after a
gap, a lost cursor or the relist interval, so no machine is ever missed.

The daemon runs its real MAAS client against an in-process simulator (its event log is the
oracle); the daemon's and the feed's time is a `FakeClock`, moved by the tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from maasflow.common.clock import FakeClock
from maasflow.daemon.actions import Actuator
from maasflow.daemon.event_feed import CURSOR_CHECK_S, GAP_S, EventFeed, Relist
from maasflow.daemon.loop import Daemon
from maasflow.daemon.maas.client import MaasClient
from maasflow.daemon.mappings import Mappings
from maasflow.daemon.selection import FilterSpec
from maasflow.daemon.store import Store
from maasflow.sim import MachineSpec, SimConfig, Simulator, serve_simulator
from maasflow.sim.requestlog import RequestRecord
from tests.sim.helpers import api_client

RELIST_S = 300.0
MACHINES = 6


@dataclass
class Rig:
    sim: Simulator
    daemon: Daemon
    feed: EventFeed
    clock: FakeClock
    store: Store
    admin: httpx.AsyncClient

    def reads(self) -> list[RequestRecord]:
        """The machine listings asked for since the last `forget`, full or by id."""
        return [
            r for r in self.sim.request_log if r.method == "GET" and r.path.endswith("machines/")
        ]

    def forget(self) -> None:
        self.sim.request_log.clear()

    def system_id(self, index: int) -> str:
        return self.sim.find(f"node-{index}").system_id


def _config() -> SimConfig:
    """Deployed machines owned by the daemon's user: at rest, each waits for an event."""
    specs = [
        MachineSpec(f"node-{i}", status=6, owner="admin", power_state="on") for i in range(MACHINES)
    ]
    return SimConfig(seed=3, time_factor=0.001, machines=specs)


def _ids(record: RequestRecord) -> list[str]:
    return list(record.params.get("id", []))


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with serve_simulator(_config()) as sim:
        client = MaasClient(sim.url, sim.admin_key, write_attempts=1)
        clock = FakeClock()
        store = Store(":memory:")
        feed = EventFeed(client.events_after, relist_s=RELIST_S, store=store, clock=clock)
        daemon = Daemon(
            client,
            Actuator(client, store, None),
            filters=FilterSpec.load("{}", "test"),
            mappings=Mappings.load("{}", "test"),
            period=15.0,
            clock=clock,
            feed=feed,
            provision_existing=True,  # the machines first seen Deployed are ours to act on
        )
        await daemon.identify(retry=False)
        async with api_client(sim, sim.admin_key) as admin:
            yield Rig(sim, daemon, feed, clock, store, admin)
        await client.aclose()


async def test_a_full_pass_lists_every_machine_in_one_get_after_taking_the_cursor(rig: Rig) -> None:
    """The first step is a full pass: one listing GET without ids, the cursor (MAAS's newest
    event id) taken before it and stored."""
    summary = await rig.daemon.step()
    assert summary is not None and summary.seen == MACHINES
    (listing,) = rig.reads()
    assert _ids(listing) == []
    events = [r for r in rig.sim.request_log if r.path.endswith("events/")]
    assert events and events[0].time <= listing.time
    newest = rig.sim.events.all()[-1].id
    assert rig.feed.cursor == newest == rig.store.event_cursor()


async def test_a_quiet_step_reads_events_and_no_machine(rig: Rig) -> None:
    """With nothing new in the event log, a step asks for events and lists no machine."""
    await rig.daemon.step()
    rig.forget()
    assert await rig.daemon.step() is not None
    assert rig.reads() == []
    assert [r.op for r in rig.sim.request_log] == ["query"]


async def test_a_changed_machine_is_reread_by_id_and_no_other(rig: Rig) -> None:
    """A machine that a person marks broken in MAAS is re-read by its id at the next step,
    and the daemon sees it Broken; no full listing."""
    await rig.daemon.step()
    target = rig.system_id(2)
    answer = await rig.admin.post(f"machines/{target}/", params={"op": "mark_broken"})
    assert answer.status_code == 200
    rig.forget()
    summary = await rig.daemon.step()
    assert summary is not None and summary.seen == 1
    (read,) = rig.reads()
    assert _ids(read) == [target]
    view = rig.daemon.views.get(target)
    assert view is not None and view.status == 8


async def test_events_over_several_pages_miss_no_machine(rig: Rig) -> None:
    """Events spread over many full pages (a page of 2 here) name every changed machine."""
    feed = EventFeed(rig.daemon.client.events_after, relist_s=RELIST_S, clock=rig.clock, page=2)
    rig.daemon.feed = feed
    await rig.daemon.step()
    changed = [rig.system_id(i) for i in (0, 3, 5)]
    for system_id in changed:
        await rig.admin.post(f"machines/{system_id}/", params={"op": "mark_broken"})
    rig.forget()
    await rig.daemon.step()
    (read,) = rig.reads()
    assert sorted(_ids(read)) == sorted(changed)
    pages = [r for r in rig.sim.request_log if r.op == "query"]
    assert len(pages) >= 3


async def test_a_cursor_maas_no_longer_has_brings_a_full_relist(rig: Rig) -> None:
    """When MAAS's newest event id falls below the cursor (its database was replaced), the
    step lists every machine again and follows the log from MAAS's newest id."""
    await rig.daemon.step()
    newest = rig.feed.cursor
    assert newest is not None
    rig.feed.cursor = newest + 500  # what a restored MAAS database looks like from here
    rig.clock.advance(CURSOR_CHECK_S)
    rig.forget()
    await rig.daemon.step()
    (listing,) = rig.reads()
    assert _ids(listing) == []
    assert rig.feed.cursor == newest and rig.feed.relist is None


async def test_a_gap_in_following_the_log_brings_a_full_relist(rig: Rig) -> None:
    """No successful read of the event log for GAP_S: the next step lists every machine."""
    await rig.daemon.step()
    rig.clock.advance(GAP_S)
    assert rig.feed.full_due() is Relist.GAP
    rig.forget()
    await rig.daemon.step()
    (listing,) = rig.reads()
    assert _ids(listing) == []


async def test_the_relist_interval_catches_a_change_that_writes_no_event(rig: Rig) -> None:
    """A tag put on a machine writes no event: it shows once the relist interval brings a
    full listing, and not before."""
    await rig.daemon.step()
    machine = rig.sim.find("node-1")
    machine.tags.append("gpu")  # MAAS writes no event for a tag
    machine.touch()
    step = GAP_S / 2  # the log is read more often than a gap
    for _ in range(int(RELIST_S // step) - 1):
        rig.clock.advance(step)
        rig.forget()
        await rig.daemon.step()
        assert rig.reads() == []
    rig.clock.advance(step)
    await rig.daemon.step()
    (listing,) = rig.reads()
    assert _ids(listing) == []


async def test_a_machine_deleted_in_maas_is_forgotten_at_the_next_full_listing(rig: Rig) -> None:
    """A deleted machine's events are no longer listed (MAAS unlinks them), so the
    relist is what forgets it; no machine is left behind."""
    await rig.daemon.step()
    target = rig.system_id(4)
    assert (await rig.admin.delete(f"machines/{target}/")).status_code == 204
    rig.clock.advance(RELIST_S)
    await rig.daemon.step()
    assert rig.daemon.views.get(target) is None
    assert len(rig.daemon.views) == MACHINES - 1


async def _settled(daemon: Daemon) -> None:
    for _ in range(500):
        if daemon.executor.in_flight == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("actions still running")


async def test_a_machine_acted_on_is_reread_after_its_action_though_no_event_says_so(
    rig: Rig,
) -> None:
    """A rename is a PUT, which writes no event: the machine is re-read by id once the action
    has ended, seen renamed, and then left to wait for events."""
    mac = rig.sim.find("node-0").nics[0].mac
    rig.daemon.mappings = Mappings.load(f'{{"{mac}": "renamed"}}', "test")
    first = await rig.daemon.step()
    assert first is not None and first.started == 1
    await _settled(rig.daemon)
    target = rig.sim.find("renamed").system_id
    rig.forget()
    await rig.daemon.step()
    (read,) = rig.reads()
    assert _ids(read) == [target]
    view = rig.daemon.views.get(target)
    assert view is not None and view.hostname == "renamed"
    rig.forget()
    await rig.daemon.step()
    assert rig.reads() == []
