"""Webhook-powered machines are driven the way MAAS's webhook driver does it (facts §7).

A tiny fake BMC (an ASGI app on 127.0.0.1) records what the simulator sends and answers
with the maas-wol style `{"status": "running"|"stopped"}` bodies. The rig gives the simulator
a `FakeSimClock`: its waits pass at once and MAAS's timeouts (60 s for a query, 5 minutes for
a power attempt) fire only when simulated time passes them, so no test races HTTP latency.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn

from maasflow.common.webserver import bind
from maasflow.sim import MachineSpec, SimConfig, Simulator, serve_simulator
from tests.sim.helpers import FAST, FakeSimClock, api_client

Wait = Callable[..., Awaitable[None]]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeBmc:
    """Switches state after `switch_after` POSTs; answers queries with `query_status`."""

    switch_after: int = 1
    query_status: int = 200
    post_status: int = 200
    state: str = "stopped"
    never_switch: bool = False
    hold_queries: asyncio.Event | None = None  # queries wait for this before answering
    seen: list[Seen] = field(default_factory=list)
    posts: int = 0

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.seen.append(Seen(scope["method"], scope["path"], headers, body))
        if self.hold_queries is not None and scope["path"] == "/query":
            await self.hold_queries.wait()
        status, payload = self.answer(scope["method"], scope["path"])
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def answer(self, method: str, path: str) -> tuple[int, bytes]:
        if method == "POST" and path in ("/on", "/off"):
            self.posts += 1
            if self.post_status >= 400:
                return self.post_status, b"relay stuck"
            if self.posts >= self.switch_after and not self.never_switch:
                self.state = "running" if path == "/on" else "stopped"
                self.posts = 0
            return 200, b"WoL packet sent!"
        if path.startswith("/missing"):
            return 404, b"Not Found"
        if method == "GET" and path == "/query":
            return self.query_status, json.dumps({"status": self.state}).encode() + b"\n"
        return 400, b"Unknown path!"

    def calls(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and s.path == path]


class _Quiet(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def serving(app: FakeBmc) -> AsyncIterator[str]:
    sock = bind("127.0.0.1", 0)
    server = _Quiet(uvicorn.Config(app, log_config=None, lifespan="off", access_log=False))
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.005)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def webhook_params(base: str, **extra: str) -> dict[str, str]:
    return {
        "power_on_uri": f"{base}/on",
        "power_off_uri": f"{base}/off",
        "power_query_uri": f"{base}/query",
        **extra,
    }


@asynccontextmanager
async def rig(
    bmc: FakeBmc, clock: FakeSimClock | None = None, **extra: str
) -> AsyncIterator[tuple[Simulator, httpx.AsyncClient, str]]:
    """A simulator (on `clock`, a fresh FakeSimClock by default) with one webhook machine."""
    async with serving(bmc) as base:
        spec = MachineSpec(
            "hooked", power_type="webhook", power_parameters=webhook_params(base, **extra)
        )
        config = SimConfig(seed=9, time_factor=FAST, machines=[spec])
        async with (
            serve_simulator(config, clock=clock or FakeSimClock()) as sim,
            api_client(sim, sim.admin_key) as client,
        ):
            yield sim, client, sim.find("hooked").system_id


async def test_commission_drives_the_webhook_like_maas(wait_until: Wait) -> None:
    """POST power_on_uri (no body, no Content-Type, MAAS 3.6 headers: no System_Id), then GET."""
    bmc = FakeBmc()
    async with rig(bmc, power_token="s3cret") as (sim, client, system_id):
        await client.post(f"machines/{system_id}/", params={"op": "commission"})
        machine = sim.machines[system_id]
        await wait_until(lambda: machine.status == 4 and machine.power_state == "off")
    on = bmc.calls("POST", "/on")[0]
    assert on.body == b""
    assert "content-type" not in on.headers
    assert "system_id" not in on.headers  # MAAS 3.5+: the agent's power CLI passes none
    assert on.headers["user-agent"] == "MAAS 3.6.1"
    assert on.headers["accept"] == "application/json"
    assert on.headers["authorization"] == "Bearer s3cret"
    assert bmc.calls("GET", "/query")
    assert bmc.calls("POST", "/off")
    posts = [seen.path for seen in bmc.seen if seen.method == "POST"]
    assert posts.index("/on") < posts.index("/off")
    kinds = [e.type for e in sim.events.for_node(system_id)]
    assert "Node powered on" not in kinds  # MAAS 3.6 writes no event for a power change


async def test_confirm_loop_posts_again_until_the_query_agrees(wait_until: Wait) -> None:
    """A BMC that needs three POSTs gets exactly three, each followed by a query, then the
    power CLI's final query."""
    bmc = FakeBmc(switch_after=3)
    async with rig(bmc) as (sim, client, system_id):
        sim.machines[system_id].owner = "admin"
        await client.post(f"machines/{system_id}/", params={"op": "power_on"})
        await wait_until(lambda: sim.machines[system_id].power_state == "on")
    assert len(bmc.calls("POST", "/on")) == 3
    assert len(bmc.calls("GET", "/query")) == 4


async def test_bmc_that_never_switches_ends_in_power_error(wait_until: Wait) -> None:
    """Seven rounds per attempt, three attempts: power_state "error", MAAS's failure event."""
    bmc = FakeBmc(never_switch=True)
    async with rig(bmc) as (sim, client, system_id):
        await client.post(f"machines/{system_id}/", params={"op": "commission"})
        machine = sim.machines[system_id]
        await wait_until(lambda: machine.status == 2)
        failures = [
            e for e in sim.events.for_node(system_id) if e.type == "Failed to power on node"
        ]
    assert machine.power_state == "error"
    assert len(bmc.calls("POST", "/on")) == 21
    assert failures[0].description == (
        f"Failed to power {system_id}. BMC never transitioned from off to on."
    )
    assert machine.error_description == "Failed to power on node"


async def test_a_failing_post_is_retried_without_querying_like_maas(wait_until: Wait) -> None:
    """MAAS only queries after a POST that worked: 7 failed POSTs per attempt, no GET, the
    HTTP error."""
    bmc = FakeBmc(post_status=500, state="running")  # the query would even say "on"
    async with rig(bmc) as (sim, client, system_id):
        await client.post(f"machines/{system_id}/", params={"op": "commission"})
        machine = sim.machines[system_id]
        await wait_until(lambda: machine.status == 2)
        failures = [
            e for e in sim.events.for_node(system_id) if e.type == "Failed to power on node"
        ]
    assert len(bmc.calls("POST", "/on")) == 21
    assert bmc.calls("GET", "/query") == []
    assert failures[0].description == "Request failed with response status code: 500."


async def test_a_token_http_cannot_carry_fails_the_power_action_without_leaking_it(
    wait_until: Wait, capsys: pytest.CaptureFixture[str]
) -> None:
    """A non-ASCII power_token is a power error (commissioning fails), never a stuck machine."""
    bmc = FakeBmc()
    async with rig(bmc, power_token="t\u00f6ken-secret") as (sim, client, system_id):
        await client.post(f"machines/{system_id}/", params={"op": "commission"})
        machine = sim.machines[system_id]
        await wait_until(lambda: machine.status == 2)
    assert machine.power_state == "error"
    assert bmc.seen == []
    captured = capsys.readouterr()
    assert "ken-secret" not in captured.out + captured.err


async def test_basic_auth_when_user_and_password(wait_until: Wait) -> None:
    """Without a token, power_user and power_pass become Basic auth."""
    bmc = FakeBmc()
    async with rig(bmc, power_user="maas", power_pass="pw") as (sim, client, system_id):
        sim.machines[system_id].owner = "admin"
        await client.post(f"machines/{system_id}/", params={"op": "power_on"})
        await wait_until(lambda: sim.machines[system_id].power_state == "on")
    expected = "Basic " + base64.b64encode(b"maas:pw").decode()
    assert bmc.calls("POST", "/on")[0].headers["authorization"] == expected


async def test_no_credentials_means_no_authorization_header(wait_until: Wait) -> None:
    """With neither token nor user+pass no Authorization header is sent."""
    bmc = FakeBmc()
    async with rig(bmc, power_user="only-user") as (sim, client, system_id):
        sim.machines[system_id].owner = "admin"
        await client.post(f"machines/{system_id}/", params={"op": "power_on"})
        await wait_until(lambda: sim.machines[system_id].power_state == "on")
    assert "authorization" not in bmc.calls("POST", "/on")[0].headers


async def test_query_power_state_uses_the_regexes() -> None:
    """query_power_state GETs power_query_uri and maps the body with the default regexes."""
    bmc = FakeBmc(state="running")
    async with rig(bmc) as (sim, client, system_id):
        response = await client.get(f"machines/{system_id}/", params={"op": "query_power_state"})
        assert response.json() == {"state": "on"}
        bmc.state = "sleeping"
        response = await client.get(f"machines/{system_id}/", params={"op": "query_power_state"})
        assert response.json() == {"state": "unknown"}
        assert sim.machines[system_id].power_state == "unknown"


async def test_query_power_state_gives_up_after_60_seconds_with_504(wait_until: Wait) -> None:
    """A BMC that never answers the query: 504 text/plain once MAAS's 60 s wait has passed."""
    release = asyncio.Event()
    bmc = FakeBmc(state="running", hold_queries=release)
    clock = FakeSimClock()
    async with rig(bmc, clock) as (sim, client, system_id):
        try:
            asking = asyncio.create_task(
                client.get(f"machines/{system_id}/", params={"op": "query_power_state"})
            )
            await wait_until(lambda: bool(bmc.calls("GET", "/query")))
            clock.advance(59.0)
            await asyncio.sleep(0.01)
            assert not asking.done()
            clock.advance(1.0)
            response = await asking
        finally:
            release.set()
        assert clock.timeouts == [60.0]
        assert response.status_code == 504
        assert response.headers["content-type"].startswith("text/plain")
        assert sim.machines[system_id].power_state != "on"
        assert sim.request_log[-1].effective is False


async def test_custom_regexes_are_honoured() -> None:
    """power_on_regex / power_off_regex replace the defaults."""
    bmc = FakeBmc(state="stopped")
    async with rig(bmc, power_on_regex="stopped", power_off_regex="running") as (
        _,
        client,
        system_id,
    ):
        response = await client.get(f"machines/{system_id}/", params={"op": "query_power_state"})
        assert response.json() == {"state": "on"}


async def test_failing_query_sets_error_and_warns() -> None:
    """A BMC answering 500 to every query: state "error" and "Failed to query node's BMC"."""
    bmc = FakeBmc(query_status=500)
    clock = FakeSimClock()
    async with rig(bmc, clock) as (sim, client, system_id):
        response = await client.get(f"machines/{system_id}/", params={"op": "query_power_state"})
        assert response.json() == {"state": "error"}
        warnings = [
            e for e in sim.events.for_node(system_id) if e.type == "Failed to query node's BMC"
        ]
        assert warnings[0].level == 30
        assert warnings[0].description == "Request failed with response status code: 500."
    assert len(bmc.calls("GET", "/query")) == 7
    assert clock.slept == [1, 2, 2, 4, 6, 8, 12]  # MAAS's waits: 35 s, inside its 60 s


async def test_missing_uri_is_a_power_error_not_a_crash(wait_until: Wait) -> None:
    """A webhook machine without URIs fails to power with a readable event."""
    spec = MachineSpec("bare", power_type="webhook")
    async with (
        serve_simulator(SimConfig(time_factor=FAST, machines=[spec])) as sim,
        api_client(sim, sim.admin_key) as client,
    ):
        system_id = sim.find("bare").system_id
        await client.post(f"machines/{system_id}/", params={"op": "commission"})
        await wait_until(lambda: sim.machines[system_id].status == 2)
        assert sim.machines[system_id].power_state == "error"


async def test_404_quirk_counts_as_success_for_power_actions(wait_until: Wait) -> None:
    """MAAS treats a 404 with a body as a reply (facts §7.3): power_on 'succeeds'."""
    bmc = FakeBmc(state="running")
    async with serving(bmc) as base:
        params = webhook_params(base) | {"power_on_uri": f"{base}/missing"}
        spec = MachineSpec("quirky", power_type="webhook", power_parameters=params, owner="admin")
        async with (
            serve_simulator(SimConfig(time_factor=FAST, machines=[spec])) as sim,
            api_client(sim, sim.admin_key) as client,
        ):
            system_id = sim.find("quirky").system_id
            await client.post(f"machines/{system_id}/", params={"op": "power_on"})
            await wait_until(lambda: sim.machines[system_id].power_state == "on")
    assert [s.path for s in bmc.seen if s.method == "POST"][:2] == ["/missing", "/missing/"]
