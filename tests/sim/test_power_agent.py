"""Webhook power the MAAS 3.6 way (facts §10.2): the agent, the power CLI, the rack's monitor.

The fake BMC here listens on a bare socket, so each request's header names are recorded
exactly as they crossed the wire (an ASGI server would lower-case them). POST /on and /off
switch its state; GET /query answers scripted states first, then the state.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from maasflow.common.errors import ConfigError
from maasflow.sim import MachineSpec, SimConfig, Simulator, Status, serve_simulator
from maasflow.sim.config import PowerPath
from tests.sim.helpers import FAST, FakeSimClock, api_client

Wait = Callable[..., Awaitable[None]]


@dataclass
class Wire:
    """One request as it arrived: method, path, and header names spelled as sent."""

    method: str
    path: str
    headers: list[tuple[str, str]]

    def named(self, name: str) -> list[tuple[str, str]]:
        """The headers called `name` in any spelling, as (spelling, value)."""
        return [(key, value) for key, value in self.headers if key.lower() == name.lower()]


@dataclass
class RawBmc:
    """A webhook BMC speaking HTTP/1.1 by hand, keep-alive included."""

    state: str = "stopped"
    scripted: list[str] = field(default_factory=list)  # GET answers before the state
    query_status: int = 200
    hold_posts: asyncio.Event | None = None  # POSTs wait for this before answering
    seen: list[Wire] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        with suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                wire = await self._read(reader)
                self.seen.append(wire)
                status, body = await self._answer(wire)
                head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n"
                writer.write(head.encode() + b"Content-Type: application/json\r\n\r\n" + body)
                await writer.drain()

    async def _read(self, reader: asyncio.StreamReader) -> Wire:
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = [tuple(line.split(": ", 1)) for line in lines[1:] if line]
        wire = Wire(method, path, [(key, value) for key, value in headers])
        length = int(dict((k.lower(), v) for k, v in wire.headers).get("content-length", "0"))
        await reader.readexactly(length)
        return wire

    async def _answer(self, wire: Wire) -> tuple[int, bytes]:
        if wire.method == "POST" and wire.path in ("/on", "/off"):
            if self.hold_posts is not None:
                await self.hold_posts.wait()
            self.state = "running" if wire.path == "/on" else "stopped"
            return 200, b"switched"
        if wire.method == "GET" and wire.path == "/query":
            shown = self.scripted.pop(0) if self.scripted else self.state
            return self.query_status, json.dumps({"status": shown}).encode()
        return 400, b"Unknown path!"

    def requests(self) -> list[tuple[str, str]]:
        return [(wire.method, wire.path) for wire in self.seen]


@asynccontextmanager
async def listening(bmc: RawBmc) -> AsyncIterator[str]:
    server = await asyncio.start_server(bmc.handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        if bmc.hold_posts is not None:
            bmc.hold_posts.set()
        server.close()
        for writer in bmc.writers:
            writer.close()
        await server.wait_closed()


def spec_for(base: str, hostname: str = "hooked", **fields: Any) -> MachineSpec:
    params = {"power_on_uri": f"{base}/on", "power_off_uri": f"{base}/off"}
    params["power_query_uri"] = f"{base}/query"
    return MachineSpec(hostname, power_type="webhook", power_parameters=params, **fields)


@asynccontextmanager
async def rig(
    bmc: RawBmc, power_state: str = "off", clock: FakeSimClock | None = None, **config: Any
) -> AsyncIterator[tuple[Simulator, httpx.AsyncClient, str]]:
    async with listening(bmc) as base:
        spec = spec_for(base, power_state=power_state, owner="admin")
        sim_config = SimConfig(**{"seed": 3, "time_factor": FAST, "machines": [spec], **config})
        async with (
            serve_simulator(sim_config, clock=clock) as sim,
            api_client(sim, sim.admin_key) as client,
        ):
            yield sim, client, sim.find("hooked").system_id


def failures(sim: Simulator, system_id: str, kind: str) -> list[str]:
    return [e.description for e in sim.events.for_node(system_id) if e.type == kind]


async def test_a_confirmed_power_on_is_one_post_and_two_queries_with_no_system_id(
    wait_until: Wait,
) -> None:
    """MAAS 3.6: POST, the confirm loop's query, the CLI's final query; no System_id at all."""
    bmc = RawBmc()
    async with rig(bmc) as (sim, client, system_id):
        await client.post(f"machines/{system_id}/", params={"op": "power_on"})
        await wait_until(lambda: sim.machines[system_id].power_state == "on")
        response = await client.get(f"machines/{system_id}/", params={"op": "query_power_state"})
    assert response.json() == {"state": "on"}
    assert bmc.requests() == [("POST", "/on"), *[("GET", "/query")] * 3]
    assert [wire.named("system_id") for wire in bmc.seen] == [[], [], [], []]
    assert bmc.seen[0].named("user-agent") == [("User-Agent", "MAAS 3.6.1")]


async def test_the_agent_tries_again_when_the_final_query_disagrees(wait_until: Wait) -> None:
    """A final query that does not show the wanted state fails the attempt; the next succeeds."""
    bmc = RawBmc(scripted=["running", "stopped"])
    async with rig(bmc) as (sim, client, system_id):
        await client.post(f"machines/{system_id}/", params={"op": "power_on"})
        await wait_until(lambda: sim.machines[system_id].power_state == "on")
        failed = failures(sim, system_id, "Failed to power on node")
    one_attempt = [("POST", "/on"), ("GET", "/query"), ("GET", "/query")]
    assert bmc.requests() == one_attempt * 2
    assert failed == []


async def test_three_wrong_final_states_fail_with_the_agents_error(wait_until: Wait) -> None:
    """Three attempts whose final query disagrees: power_state "error", the agent's error."""
    bmc = RawBmc(scripted=["running", "stopped"] * 3)
    async with rig(bmc) as (sim, client, system_id):
        await client.post(f"machines/{system_id}/", params={"op": "power_on"})
        await wait_until(lambda: sim.machines[system_id].power_state == "error")
        failed = failures(sim, system_id, "Failed to power on node")
    assert bmc.requests().count(("POST", "/on")) == 3
    assert failed == ["BMC is in the wrong power state"]


async def test_an_attempt_is_killed_after_five_minutes_and_tried_three_times(
    wait_until: Wait,
) -> None:
    """A BMC that never answers the POST: three attempts of 300 s, then error."""
    bmc = RawBmc(hold_posts=asyncio.Event())
    clock = FakeSimClock()  # an attempt ends when simulated time passes 300 s, not before
    async with rig(bmc, clock=clock) as (sim, client, system_id):
        await client.post(f"machines/{system_id}/", params={"op": "power_on"})
        for attempt in (1, 2, 3):
            await wait_until(lambda: len(bmc.requests()) == attempt)  # noqa: B023
            clock.advance(300.0)
        await wait_until(lambda: sim.machines[system_id].power_state == "error")
        failed = failures(sim, system_id, "Failed to power on node")
    assert clock.timeouts == [300.0] * 3
    assert bmc.requests() == [("POST", "/on")] * 3
    assert failed == ["Power action timed out (activity StartToClose timeout)."]


async def test_starting_a_powered_on_machine_is_a_power_cycle(wait_until: Wait) -> None:
    """Commissioning a machine that is on: query, off, on, then the CLI's final query."""
    bmc = RawBmc(state="running")
    async with rig(bmc, power_state="on") as (sim, client, system_id):
        await client.post(f"machines/{system_id}/", params={"op": "commission"})
        await wait_until(lambda: sim.machines[system_id].status != Status.COMMISSIONING)
    assert bmc.requests()[:6] == [
        ("GET", "/query"),
        ("POST", "/off"),
        ("GET", "/query"),
        ("POST", "/on"),
        ("GET", "/query"),
        ("GET", "/query"),
    ]
    assert all(wire.named("system_id") == [] for wire in bmc.seen)


async def test_maas_3_4_sends_system_id_with_every_request_and_no_final_query(
    wait_until: Wait,
) -> None:
    """With maas_version 3.4 the rack's driver names the machine in every request."""
    bmc = RawBmc()
    async with rig(bmc, maas_version="3.4.10") as (sim, client, system_id):
        await client.post(f"machines/{system_id}/", params={"op": "power_on"})
        await wait_until(lambda: sim.machines[system_id].power_state == "on")
        await client.get(f"machines/{system_id}/", params={"op": "query_power_state"})
    assert bmc.requests() == [("POST", "/on"), ("GET", "/query"), ("GET", "/query")]
    assert [wire.named("system_id") for wire in bmc.seen] == [[("System_id", system_id)]] * 3
    assert bmc.seen[0].named("user-agent") == [("User-Agent", "MAAS 3.4.10")]
    kinds = [e.type for e in sim.events.for_node(system_id)]
    assert kinds[-2:] == ["Powering on", "Node powered on"]  # the rack's RPC path writes them


async def test_the_power_monitor_sends_system_id_as_spelled_on_the_wire(wait_until: Wait) -> None:
    """The monitor's queries carry `System_id: <id>` and update the stored power state."""
    bmc = RawBmc(state="running")
    async with rig(bmc, power_monitor_interval=20) as (sim, _, system_id):
        await wait_until(lambda: sim.machines[system_id].power_state == "on")
    assert bmc.seen[0].method == "GET"
    assert bmc.seen[0].named("system_id") == [("System_id", system_id)]


async def test_a_monitor_pass_skips_broken_machines_and_marks_failed_queries() -> None:
    """A query failing after its retries: "error" and MAAS's warning; Broken is not asked."""
    bmc = RawBmc(query_status=500)
    async with listening(bmc) as base:
        specs = [spec_for(base), spec_for(base, "broken", status=Status.BROKEN)]
        async with serve_simulator(SimConfig(time_factor=FAST, machines=specs)) as sim:
            asked, broken = sim.find("hooked"), sim.find("broken")
            await sim.monitor.pass_once()
    assert asked.power_state == "error"
    assert broken.power_state == "off"
    assert failures(sim, asked.system_id, "Failed to query node's BMC") == [
        "Request failed with response status code: 500."
    ]
    assert {wire.named("system_id")[0][1] for wire in bmc.seen} == {asked.system_id}
    assert len(bmc.seen) == 7


def test_the_maas_version_picks_the_power_path() -> None:
    """3.5 and later run power through the agent; 3.4 and earlier through the rack's driver."""
    assert SimConfig().power_path is PowerPath.AGENT_WORKFLOW
    assert SimConfig(maas_version="3.5.0").power_path is PowerPath.AGENT_WORKFLOW
    assert SimConfig(maas_version="3.4.10").power_path is PowerPath.RACK_RPC
    assert SimConfig(maas_version="2.9.2").power_path is PowerPath.RACK_RPC


def test_bad_version_and_monitor_interval_are_refused() -> None:
    """A version without major.minor, or a monitor interval <= 0, is a config error."""
    with pytest.raises(ConfigError, match=r"maas_version='latest' must start with major\.minor"):
        SimConfig(maas_version="latest")
    with pytest.raises(ConfigError, match="power_monitor_interval=0 must be greater than 0"):
        SimConfig(power_monitor_interval=0)
