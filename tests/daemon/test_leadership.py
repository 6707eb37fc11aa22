"""Leadership on a real PostgreSQL: one leader at a time, a fence that holds, takeover on loss.

Every test runs against the session's server (tests/postgres_cluster.py) on a new database
whose daemon tables exist (a PostgreSQL store opened it). Waits are conditions, never sleeps.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import closing

import pytest

from maasflow.common.errors import NotLeader
from maasflow.common.postgres import PostgresUrl
from maasflow.daemon.leadership import Leadership, Role
from maasflow.daemon.postgres_store import PostgresStore
from tests.postgres_cluster import PostgresDatabase

MakeLeadership = Callable[..., Leadership]


class FakeClock:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def make(postgres_database: PostgresDatabase) -> AsyncIterator[MakeLeadership]:
    """Leaderships on one database (its tables made), all closed after the test."""
    url = PostgresUrl.parse(postgres_database.url, "-db")
    with closing(PostgresStore(url, postgres_database.server.password)):
        pass
    made: list[Leadership] = []

    def new(holder: str, lease: float = 10.0, **kwargs: object) -> Leadership:
        made.append(
            Leadership(url, postgres_database.server.password, lease=lease, holder=holder,
                       **kwargs)  # type: ignore[arg-type]
        )  # fmt: skip
        return made[-1]

    yield new
    for leadership in made:
        await leadership.close()


async def _one_try(leadership: Leadership) -> bool:
    """Campaign once: True when it leads after a single try."""
    stop = asyncio.Event()

    async def stop_instead(_seconds: float) -> None:
        stop.set()

    leadership._sleep = stop_instead  # the campaign's wait between tries ends the campaign
    return await leadership.campaign(stop)


async def test_only_one_leads_and_the_other_names_it(make: MakeLeadership) -> None:
    """The first daemon to campaign leads (epoch 1); the second stays standby, naming it."""
    first, second = make("host-a:1"), make("host-b:2")
    assert await _one_try(first) is True
    assert await _one_try(second) is False
    assert (first.role, first.epoch) == (Role.LEADER, 1)
    assert second.role is Role.STANDBY and second.leader == "host-a:1 (epoch 1)"
    first.fence()  # the leader may write
    with pytest.raises(NotLeader):
        second.fence()


async def test_a_leader_gone_hands_over_with_a_new_epoch(make: MakeLeadership) -> None:
    """When the leader's session ends, the standby's next try leads, with the epoch bumped."""
    first, second = make("a:1"), make("b:2")
    assert await _one_try(first) and not await _one_try(second)
    await first.close()  # the server ends the session (and frees the lock) soon after
    second._sleep = asyncio.sleep
    assert await asyncio.wait_for(second.campaign(asyncio.Event()), 30) is True
    assert (second.role, second.epoch, second.leader) == (Role.LEADER, 2, "b:2")


async def test_a_broken_session_is_noticed_and_fences_at_once(
    make: MakeLeadership, postgres_database: PostgresDatabase
) -> None:
    """The server ending the leader's session: the heartbeat fails, `lost` is set, writes fence."""
    leader = make("a:1", lease=0.4)
    assert await _one_try(leader)
    leader._sleep = asyncio.sleep
    holding = asyncio.create_task(leader.hold())
    with postgres_database.connect() as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s"
            " AND pid <> pg_backend_pid()",
            (postgres_database.name,),
        )
    await asyncio.wait_for(leader.lost.wait(), 30)
    await holding
    assert leader.role is Role.LOST
    with pytest.raises(NotLeader, match="not the leader"):
        leader.fence()


async def test_a_lease_run_out_fences_without_asking_the_server(make: MakeLeadership) -> None:
    """A leader whose clock passed its lease (paused, say) refuses the next write by itself."""
    clock = FakeClock()
    leader = make("a:1", lease=5.0, clock=clock)
    assert await _one_try(leader)
    clock.now += 4.9
    leader.fence()
    clock.now += 0.2
    with pytest.raises(NotLeader):
        leader.fence()
    assert leader.role is Role.LOST and leader.lost.is_set()


async def test_a_silent_leader_is_dropped_by_the_server_within_its_lease(
    make: MakeLeadership,
) -> None:
    """A leader that stops heartbeating (paused) loses the lock: PostgreSQL ends its session."""
    silent, standby = make("a:1", lease=0.5), make("b:2", lease=0.5)
    assert await _one_try(silent)
    stop = asyncio.Event()
    assert await asyncio.wait_for(standby.campaign(stop), 30) is True
    assert standby.epoch == 2
    with pytest.raises(NotLeader):
        silent.fence()  # its own clock says the lease ran out too


async def test_the_watch_ends_a_leader_whose_lease_ran_out_even_if_the_loop_is_stuck(
    make: MakeLeadership,
) -> None:
    """The lease watch calls its callback from its own thread once the lease has run out."""
    clock = FakeClock()
    leader = make("a:1", lease=0.2, clock=clock)
    assert await _one_try(leader)
    expired = threading.Event()
    thread = leader.watch(expired.set)
    assert not expired.wait(0.3)  # the lease is current by the (fake) clock: nothing happens
    clock.now += 0.2
    thread.join(30)  # the loop need not run: this test waits in a blocking join
    assert expired.is_set()


async def test_each_try_of_a_standby_is_reported_with_the_wait_before_the_next(
    make: MakeLeadership,
) -> None:
    """A standby's campaign reports every try (the watchdog hears it is alive, not hung)."""
    leader, standby = make("a:1", lease=2.0), make("b:2", lease=2.0)
    assert await _one_try(leader)
    waits: list[float] = []
    standby.on_try = waits.append
    assert await _one_try(standby) is False
    assert waits == [0.5]
