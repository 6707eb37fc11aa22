"""A doomed machine must not stall the fleet: no retry wait in a slot, a backoff per machine.

Each test is named after the fault it injects and the invariant it keeps. Time is a
`FakeClock`; MAAS is the fake client of conftest.py, except where the real `MaasClient`
(as the daemon's CLI builds it) must show where its retry waits happen.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from maasflow.common.clock import FakeClock
from maasflow.common.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    MaasError,
    PermanentMaasError,
    TemporaryMaasError,
    Unauthorized,
)
from maasflow.daemon.actions import Actuator
from maasflow.daemon.cli import maas_client
from maasflow.daemon.loop import BACKOFF_CAP_S, Daemon
from maasflow.daemon.mappings import Mappings
from maasflow.daemon.report import render_table
from maasflow.daemon.selection import FilterSpec
from maasflow.daemon.settings import load_settings
from maasflow.daemon.store import Store
from maasflow.daemon.unseen_writes import SETTLE_S

KEY = "aaaaaaaaaaaaaaaaaa:bbbbbbbbbbbbbbbbbb:cccccccccccccccccccccccccccccccc"
MAAS = "http://127.0.0.1:5240/MAAS"
NO_RACK = "Unable to connect to any rack controller."
EXHAUSTED = "Unable to allocate static IP due to address exhaustion."


async def settle(daemon: Daemon) -> None:
    """Let every started action finish (fakes answer at once; the clock does not move)."""
    for _ in range(1000):
        if daemon.executor.in_flight == 0:
            return
        await asyncio.sleep(0)
    raise AssertionError("actions still running")


async def passes(daemon: Daemon, clock: FakeClock, count: int, every: float = 1.0) -> None:
    for _ in range(count):
        await daemon.run_pass()
        await settle(daemon)
        clock.advance(every)


def sent(fake: Any, op: str, system_id: str) -> int:
    return fake.ops().count((op, system_id))


# -- a 503 MAAS answers every time, seen through the real client ------------------------------


class TinyMaas:
    """Just enough MAAS over HTTP: whoami, a listing (503 once first), commission, deploy."""

    def __init__(self, machines: list[dict[str, Any]]) -> None:
        self.machines = machines
        self.requests: list[tuple[str, str, str | None]] = []
        self.listing_refusals = 1

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path, op = request.url.path.removeprefix("/MAAS/api/2.0/"), request.url.params.get("op")
        self.requests.append((request.method, path, op))
        if path == "users/":
            return httpx.Response(200, json={"username": "maasflow", "is_superuser": True})
        if path == "machines/" and self.listing_refusals:
            self.listing_refusals -= 1
            return httpx.Response(503, text=NO_RACK, headers={"Retry-After": "3"})
        if path == "machines/":
            return httpx.Response(200, json=self.machines)
        system_id = path.split("/")[1]
        if system_id == "doomed":
            return httpx.Response(503, text=NO_RACK, headers={"Retry-After": "10"})
        return httpx.Response(
            200, json=next(m for m in self.machines if m["system_id"] == system_id)
        )


def _listed(system_id: str, status: int, **fields: Any) -> dict[str, Any]:
    return {"system_id": system_id, "hostname": system_id, "status": status, **fields}


async def test_doomed_503_deploy_holds_no_slot_so_healthy_machines_progress() -> None:
    """One slot, a deploy MAAS answers 503 + Retry-After every time: it is sent once and fails
    at once, no retry wait is spent inside the action, and every healthy commission is sent
    in the same pass (none "skipped: waited for a slot"); the listing still retries."""
    maas = TinyMaas(
        [_listed("doomed", 10, owner="maasflow")]
        + [_listed(f"ok{i}", 0, power_state="off") for i in range(3)]
    )
    clock = FakeClock()
    settings = load_settings(["-maas", MAAS, "-period", "1s"], {"MAAS_API_KEY": KEY})
    client = maas_client(settings, transport=httpx.MockTransport(maas), sleep=clock.sleep)
    actuator = Actuator(client, Store(":memory:"), None)
    daemon = Daemon(
        client,
        actuator,
        filters=FilterSpec.load("{}", "t"),
        mappings=Mappings.empty(),
        period=1.0,
        concurrency=1,
        clock=clock,
        provision_existing=True,  # provision machines first seen Deployed
    )
    await daemon.identify(retry=False)
    await daemon.run_pass()
    await settle(daemon)
    writes = [(path, op) for method, path, op in maas.requests if method == "POST"]
    assert writes[0] == ("machines/doomed/", "deploy")
    assert sorted(writes[1:]) == [(f"machines/ok{i}/", "commission") for i in range(3)]
    assert clock.slept == [3.0]  # the listing's Retry-After, and nothing inside an action
    outcomes = {row["system_id"]: row["last_outcome"] for row in daemon.snapshot()["machines"]}
    assert outcomes == {"doomed": "failed", "ok0": "ok", "ok1": "ok", "ok2": "ok"}
    await client.aclose()


# -- the per-machine backoff -------------------------------------------------------------------


async def test_doomed_503_deploy_backs_off_per_machine_exponentially_to_the_cap(
    mk: Any, Fake: Any
) -> None:
    """Deploy answers 503 forever: sent at t = 0, 1, 3, 7, 15, ... (period 1 s, doubling,
    nominal jitter), one request per step, never more than the cap apart; the healthy machine
    beside it is allocated in the first pass."""
    fake = Fake([mk("doomed", 10, owner="maasflow"), mk("ok", 4)])
    fake.errors["deploy"] = PermanentMaasError("POST", "machines/doomed/", 503, EXHAUSTED)
    clock = FakeClock()
    daemon = _daemon(Fake, fake, clock, rand=lambda: 1.0)
    await daemon.identify(retry=False)
    times: list[float] = []
    for second in range(900):  # the cap (300 s) is reached after t = 511
        before = sent(fake, "deploy", "doomed")
        await passes(daemon, clock, 1)
        if sent(fake, "deploy", "doomed") > before:
            times.append(float(second))
        if second == 0:
            assert sent(fake, "allocate", "ok") == 1
            fake.move("ok", status=6, owner="maasflow")  # MAAS took it on from there
    assert times[:8] == [0, 1, 3, 7, 15, 31, 63, 127]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) == BACKOFF_CAP_S
    assert sent(fake, "allocate", "ok") == 1


@pytest.mark.parametrize(
    ("op", "status", "error"),
    [
        ("deploy", 10, BadRequest("POST", "machines/m/?op=deploy", 400, "distro_series: bad")),
        ("allocate", 4, Conflict("POST", "machines/?op=allocate", 409, "No machine available.")),
    ],
)
async def test_permanent_error_backs_off_and_is_logged_once_per_backoff_step(
    mk: Any, Fake: Any, op: str, status: int, error: MaasError
) -> None:
    """A 400 (bad distro_series) or a failing allocate: sent once per backoff step, not every
    pass; each send logs one warning carrying the failure count and the wait to the next."""
    fake = Fake([mk("m", status, owner="maasflow")])
    fake.errors[op] = error
    clock = FakeClock()
    daemon = _daemon(Fake, fake, clock, rand=lambda: 1.0)
    await daemon.identify(retry=False)
    with capture_logs() as logs:
        await passes(daemon, clock, 40)
    lines = [e for e in logs if e["event"] == "action" and e["action"] == op]
    assert sent(fake, op, "m") == len(lines) == 6  # t = 0, 1, 3, 7, 15, 31
    assert [e["failures"] for e in lines] == [1, 2, 3, 4, 5, 6]
    assert [e["retry_in_s"] for e in lines] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    assert all(e["log_level"] == "warning" for e in lines)


async def test_a_success_clears_the_backoff_and_a_new_failure_starts_from_one(
    mk: Any, Fake: Any
) -> None:
    """Once the op goes through, the machine's setback is gone; the next failure is the first."""
    fake = Fake([mk("m", 4)])
    fake.errors["allocate"] = TemporaryMaasError("POST", "machines/", 503, NO_RACK)
    clock = FakeClock()
    daemon = _daemon(Fake, fake, clock, rand=lambda: 1.0)
    await daemon.identify(retry=False)
    await passes(daemon, clock, 4)  # t = 0, 1, 3: three failures
    setback = daemon.setbacks.get("m")
    assert setback is not None and setback.failures == 3
    del fake.errors["allocate"]
    await passes(daemon, clock, 4)
    assert daemon.setbacks.get("m") is None
    fake.move("m", status=10, owner="maasflow")
    fake.errors["deploy"] = TemporaryMaasError("POST", "machines/m/", 503, NO_RACK)
    await passes(daemon, clock, 1)
    again = daemon.setbacks.get("m")
    assert again is not None and (again.action, again.failures) == ("deploy", 1)


async def test_a_backing_off_machine_shows_in_state_and_status(mk: Any, Fake: Any) -> None:
    """/state carries the failing action, its failures and retry time; `maasflow status`
    renders them in its BACKOFF column."""
    fake = Fake([mk("m", 10, owner="maasflow", hostname="node-9")])
    fake.errors["deploy"] = PermanentMaasError("POST", "machines/m/", 503, EXHAUSTED)
    clock = FakeClock()
    daemon = _daemon(Fake, fake, clock, rand=lambda: 1.0)
    await daemon.identify(retry=False)
    await passes(daemon, clock, 4)  # t = 0, 1, 3: three failures, next at 7
    (row,) = daemon.snapshot()["machines"]
    assert (row["backoff_action"], row["backoff_failures"]) == ("deploy", 3)
    assert row["backoff_until"] == clock.time() + 3
    assert "address exhaustion" in row["last_error"]
    table = render_table(daemon.snapshot())
    assert "deploy x3, next in 3s" in table.splitlines()[-1]


async def test_a_restart_keeps_a_doomed_machines_backoff(tmp_path: Any, mk: Any, Fake: Any) -> None:
    """The setback lives in the state file: a new daemon does not start the backoff over."""
    fake = Fake([mk("m", 10, owner="maasflow")])
    fake.errors["deploy"] = PermanentMaasError("POST", "machines/m/", 503, EXHAUSTED)
    clock = FakeClock()
    store = Store(tmp_path / "s.sqlite", clock=clock.time)
    daemon = _daemon(Fake, fake, clock, store=store, rand=lambda: 1.0)
    await daemon.identify(retry=False)
    await passes(daemon, clock, 8)  # t = 0, 1, 3, 7: four failures, next at 15
    store.close()
    store = Store(tmp_path / "s.sqlite", clock=clock.time)
    reborn = _daemon(Fake, fake, clock, store=store, rand=lambda: 1.0)
    await reborn.identify(retry=False)
    await passes(reborn, clock, 6)  # t = 8 .. 13: still held
    assert sent(fake, "deploy", "m") == 4
    await passes(reborn, clock, 2)  # t = 14, 15
    assert sent(fake, "deploy", "m") == 5
    assert reborn.setbacks.get("m").failures == 5  # type: ignore[union-attr]
    store.close()


# -- renames: refused names give up, other failures retry ----------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        PermanentMaasError("PUT", "machines/m/", 500, "Internal server error"),
        Unauthorized("PUT", "machines/m/", 401, "key rotated"),
        TemporaryMaasError("PUT", "machines/m/", 503, NO_RACK),
    ],
    ids=["500", "401", "503"],
)
async def test_rename_failing_with_500_or_401_is_retried_and_never_commissioned_under_the_old_name(
    mk: Any, Fake: Any, error: MaasError
) -> None:
    """A transient rename failure is asked again after its backoff (not remembered as refused),
    and the machine is not commissioned meanwhile; once the name takes, it commissions."""
    fake = Fake([mk("m", 0, hostname="rough-cat", mac="52:54:00:aa:bb:cc")])
    fake.errors["update"] = error
    clock = FakeClock()
    mappings = Mappings.load('{"52:54:00:aa:bb:cc": "node1"}', "t")
    daemon = _daemon(Fake, fake, clock, mappings=mappings, rand=lambda: 1.0)
    await daemon.identify(retry=False)
    await passes(daemon, clock, 8)  # t = 0, 1, 3, 7
    assert fake.ops() == [("update", "m")] * 4
    del fake.errors["update"]
    await passes(daemon, clock, 8)  # t = 8 .. 15: the try at 15 succeeds
    fake.move("m", hostname="node1")
    await passes(daemon, clock, 1)
    assert fake.ops() == [("update", "m")] * 5 + [("commission", "m")]


@pytest.mark.parametrize(
    "error",
    [
        BadRequest("PUT", "machines/m/", 400, "hostname: taken"),
        Forbidden("PUT", "machines/m/", 403, ""),
        Conflict("PUT", "machines/m/", 409, "conflict"),
    ],
    ids=["400", "403", "409"],
)
async def test_rename_refused_with_400_403_409_is_not_asked_again_and_blocks_nothing(
    mk: Any, Fake: Any, error: MaasError
) -> None:
    """An answer meaning "this name is refused": the next pass commissions at once."""
    fake = Fake([mk("m", 0, hostname="rough-cat", mac="52:54:00:aa:bb:cc")])
    fake.errors["update"] = error
    clock = FakeClock()
    mappings = Mappings.load('{"52:54:00:aa:bb:cc": "node1"}', "t")
    daemon = _daemon(Fake, fake, clock, mappings=mappings)
    await daemon.identify(retry=False)
    await passes(daemon, clock, 2)
    assert fake.ops() == [("update", "m"), ("commission", "m")]


# -- a write MAAS applies later ----------------------------------------------------------------


async def test_power_off_is_not_sent_twice_while_the_listing_still_says_on(
    mk: Any, Fake: Any
) -> None:
    """MAAS accepted power_off but its listings still say "on": no second power_off; once a
    listing says "off" the machine is commissioned."""
    fake = Fake([mk("m", 0, power_state="on")])
    clock = FakeClock()
    daemon = _daemon(Fake, fake, clock)
    await daemon.identify(retry=False)
    await passes(daemon, clock, 5, every=5.0)  # 25 s of listings that lag the power change
    assert fake.ops() == [("power_off", "m")]
    fake.move("m", power_state="off")
    await passes(daemon, clock, 1)
    assert fake.ops() == [("power_off", "m"), ("commission", "m")]


async def test_power_off_that_never_shows_is_sent_again_after_the_settle_bound(
    mk: Any, Fake: Any
) -> None:
    """A power_off MAAS accepted but never applied is sent again once SETTLE_S has passed."""
    fake = Fake([mk("m", 0, power_state="on")])
    clock = FakeClock()
    daemon = _daemon(Fake, fake, clock)
    await daemon.identify(retry=False)
    await passes(daemon, clock, 1)
    clock.advance(SETTLE_S - 2)
    await passes(daemon, clock, 1)
    assert fake.ops() == [("power_off", "m")]
    clock.advance(1)
    await passes(daemon, clock, 1)
    assert fake.ops() == [("power_off", "m"), ("power_off", "m")]


# -- helpers -----------------------------------------------------------------------------------


def _daemon(Fake: Any, fake: Any, clock: FakeClock, **kw: Any) -> Daemon:
    store = kw.pop("store", None) or Store(":memory:", clock=clock.time)
    actuator = Actuator(fake, store, None)
    return Daemon(
        fake,
        actuator,
        filters=FilterSpec.load("{}", "t"),
        mappings=kw.pop("mappings", Mappings.empty()),
        period=1.0,
        clock=clock,
        **{"provision_existing": True, **kw},  # provision machines first seen Deployed
    )


def test_state_rows_are_json(mk: Any, Fake: Any) -> None:
    """The new /state fields are plain JSON values (the status command reads them back)."""
    daemon = _daemon(Fake, Fake([mk("m", 0)]), FakeClock())
    assert json.loads(json.dumps(daemon.snapshot()))["machines"] == []
