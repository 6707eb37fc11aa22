"""Fault injection: every knob is observable and seeded; a fault before the handler means the
write never happened, a fault after it (drop_after, truncate, malformed) means it did."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from maasflow.common.errors import ConfigError
from maasflow.sim import Faults, MachineSpec, SimConfig, Simulator, serve_simulator
from maasflow.sim.faults import FaultInjector, exhausted, spoil
from maasflow.sim.http import Response
from tests.sim.helpers import FAST, api_client


@asynccontextmanager
async def faulty(faults: Faults) -> AsyncIterator[tuple[Simulator, httpx.AsyncClient, str]]:
    config = SimConfig(seed=8, time_factor=FAST, faults=faults, machines=[MachineSpec("victim")])
    async with serve_simulator(config) as sim, api_client(sim, sim.admin_key) as client:
        yield sim, client, sim.find("victim").system_id


async def commission(client: httpx.AsyncClient, system_id: str) -> httpx.Response:
    return await client.post(f"machines/{system_id}/", params={"op": "commission"})


async def test_500_rate_answers_500_and_skips_the_write() -> None:
    """error_500_rate=1 answers 500 text/plain and the commission does not happen."""
    async with faulty(Faults(error_500_rate=1.0)) as (sim, client, system_id):
        response = await commission(client, system_id)
        assert response.status_code == 500
        assert response.headers["content-type"].startswith("text/plain")
        assert sim.machines[system_id].status == 0
        assert sim.request_log[-1].fault == "error_500"
        assert sim.ops_for(system_id) == []


async def test_503_rate_carries_the_retry_after_knob() -> None:
    """error_503_rate answers 503 with Retry-After set to retry_after_503."""
    async with faulty(Faults(error_503_rate=1.0, retry_after_503=7)) as (sim, client, system_id):
        response = await commission(client, system_id)
        assert (response.status_code, response.headers["retry-after"]) == (503, "7")
        assert sim.machines[system_id].status == 0


async def test_409_rate_is_maas_html_conflict_page() -> None:
    """conflict_409_rate answers an HTML 409 with Retry-After, unlike a state conflict."""
    async with faulty(Faults(conflict_409_rate=1.0, retry_after_409=5)) as (sim, client, system_id):
        response = await commission(client, system_id)
        assert response.status_code == 409
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["retry-after"] == "5"
        assert "Conflict error. Try your request again" in response.text
        assert sim.machines[system_id].status == 0


async def test_drop_rate_closes_without_an_answer() -> None:
    """drop_rate=1 closes the connection: the client sees a transport error, no write."""
    async with faulty(Faults(drop_rate=1.0)) as (sim, client, system_id):
        with pytest.raises(httpx.TransportError):
            await commission(client, system_id)
        assert sim.machines[system_id].status == 0
        record = sim.request_log[-1]
        assert (record.status, record.fault, record.effective) == (None, "drop", False)


async def test_server_keeps_serving_after_drops() -> None:
    """After dropped connections a fresh request is served normally."""
    async with faulty(Faults(drop_rate=1.0)) as (sim, client, _):
        for _ in range(3):
            with pytest.raises(httpx.TransportError):
                await client.get("machines/")
        sim.injector.faults = Faults()
        assert (await client.get("machines/")).status_code == 200


@pytest.mark.parametrize("knob", ["truncate_rate", "malformed_rate"])
async def test_broken_json_rates(knob: str) -> None:
    """truncate/malformed answer 200 with a JSON body that does not parse."""
    knobs: dict[str, Any] = {knob: 1.0}
    async with faulty(Faults(**knobs)) as (_, client, system_id):
        listing = await client.get("machines/")
        assert listing.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(listing.content)
        written = await commission(client, system_id)
        assert written.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(written.content)


@pytest.mark.parametrize("knob", ["truncate_rate", "malformed_rate"])
async def test_spoiled_answer_to_a_write_means_the_write_happened(knob: str) -> None:
    """A truncated/malformed 200 to a commission comes after the commission took effect."""
    knobs: dict[str, Any] = {knob: 1.0}
    async with faulty(Faults(**knobs)) as (sim, client, system_id):
        await commission(client, system_id)
        assert sim.machines[system_id].status_name == "Commissioning"
        record = sim.request_log[-1]
        assert (record.status, record.outcome, record.effective) == (200, 200, True)
        assert record.fault == knob.removesuffix("_rate")
        assert sim.ops_for(system_id) == ["commission"]


async def test_spoiled_refusal_keeps_its_status_and_is_not_effective() -> None:
    """A write the handler refuses stays refused (same status, not effective) when spoiled."""
    async with faulty(Faults(truncate_rate=1.0)) as (sim, client, system_id):
        sim.machines[system_id].locked = True
        refused = await commission(client, system_id)
        assert refused.status_code == 403
        assert sim.request_log[-1].effective is False
        assert sim.ops_for(system_id) == []


async def test_drop_after_rate_drops_once_the_write_took_effect() -> None:
    """drop_after_rate=1: the client sees a transport error, yet the commission happened."""
    async with faulty(Faults(drop_after_rate=1.0)) as (sim, client, system_id):
        with pytest.raises(httpx.TransportError):
            await commission(client, system_id)
        assert sim.machines[system_id].status_name == "Commissioning"
        record = sim.request_log[-1]
        assert (record.status, record.fault, record.outcome) == (None, "drop_after", 200)
        assert record.effective is True
        assert sim.ops_for(system_id) == ["commission"]


def test_spoil_leaves_an_empty_body_alone() -> None:
    """A 204 has no body to truncate or mangle, so it is sent unchanged."""
    answer = Response(204, b"", "application/json")
    assert spoil("truncate", answer) == answer
    assert spoil("malformed", answer) == answer


async def test_version_endpoints_are_never_faulted() -> None:
    """Faults apply to API requests only, not to version/ or /MAAS/api/version/."""
    async with faulty(Faults(error_500_rate=1.0)) as (sim, client, _):
        assert (await client.get("version/")).status_code == 200
        assert (await client.get(sim.url + "/api/version/")).text == "2.0"


async def test_describe_is_never_faulted() -> None:
    """describe/, which a client reads once to connect, is exempt from faults like version/."""
    async with faulty(Faults(error_500_rate=1.0)) as (_, client, system_id):
        assert (await client.get("describe/")).status_code == 200
        assert (await client.get(f"machines/{system_id}/")).status_code == 500


async def test_latency_waits_before_answering() -> None:
    """latency_ms is handed to the injector's sleep once per API request."""
    waited: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waited.append(seconds)

    injector = FaultInjector(Faults(latency_ms=50), seed=1, sleep=fake_sleep)
    await injector.delay()
    assert waited == [0.05]


async def test_latency_is_applied_over_http() -> None:
    """A running simulator with latency still answers correctly."""
    async with faulty(Faults(latency_ms=5)) as (_, client, _):
        assert (await client.get("machines/")).status_code == 200


def test_picks_are_seeded() -> None:
    """The same seed gives the same fault sequence; another seed a different one."""
    faults = Faults(error_503_rate=0.1, conflict_409_rate=0.05, drop_rate=0.05)
    one, two, other = (FaultInjector(faults, seed=s) for s in (3, 3, 4))
    sequence = [one.pick() for _ in range(500)]
    assert sequence == [two.pick() for _ in range(500)]
    assert sequence != [other.pick() for _ in range(500)]


def test_rates_select_roughly_their_share() -> None:
    """Over many requests each fault shows up about as often as its rate says."""
    injector = FaultInjector(Faults(error_503_rate=0.10, conflict_409_rate=0.05), seed=9)
    picks = [injector.pick() for _ in range(4000)]
    assert 300 < picks.count("error_503") < 500
    assert 120 < picks.count("conflict_409") < 280
    assert picks.count(None) > 3000


@pytest.mark.parametrize(
    "bad",
    [
        {"error_500_rate": 1.5},
        {"drop_rate": -0.1},
        {"error_503_rate": 0.7, "drop_rate": 0.7},
        {"latency_ms": -1},
    ],
)
def test_bad_knobs_are_config_errors(bad: dict[str, Any]) -> None:
    """Rates outside 0..1, rates adding up past 1 and negative latency are refused."""
    with pytest.raises(ConfigError):
        Faults(**bad)


def test_describe_lists_changed_knobs() -> None:
    """describe() names only the knobs that differ from the defaults."""
    assert Faults().describe() == "none"
    assert Faults(drop_rate=0.5).describe() == "drop_rate=0.5"
    assert Faults(drop_after_rate=0.25).describe() == "drop_after_rate=0.25"


async def test_ip_exhaustion_refuses_the_same_machines_deploy_every_time() -> None:
    """ip_exhaustion_share picks machines by seed; their deploy always gets MAAS's 503."""
    specs = [MachineSpec(f"n{i}", status=4) for i in range(40)]
    faults = Faults(ip_exhaustion_share=0.25)
    config = SimConfig(seed=9, time_factor=FAST, faults=faults, machines=specs)
    async with serve_simulator(config) as sim, api_client(sim, sim.admin_key) as client:
        doomed = {sid for sid in sim.machines if exhausted(faults, 9, sid)}
        assert 0 < len(doomed) < len(specs)
        for system_id in sim.machines:
            for _ in range(2 if system_id in doomed else 1):
                answer = await client.post(f"machines/{system_id}/", params={"op": "deploy"})
                if system_id in doomed:
                    assert answer.status_code == 503 and "retry-after" not in answer.headers
                    assert answer.text.endswith(
                        "Unable to allocate static IP due to address exhaustion."
                    )
                else:
                    assert answer.status_code == 200
        assert {sid for sid, m in sim.machines.items() if m.status == 4} == doomed
        assert all(not sim.machines[sid].ip_addresses for sid in doomed)


def test_ip_exhaustion_share_is_a_share() -> None:
    """A share outside 0..1 is a ConfigError naming the knob."""
    with pytest.raises(ConfigError, match="ip_exhaustion_share"):
        Faults(ip_exhaustion_share=1.5)
