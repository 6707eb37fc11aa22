"""The power target's series on `maasflow serve`'s /metrics, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from maasflow.serve import ServiceConfig, serve_service
from maasflow.serve.power_api import build_power_component
from maasflow.serve.power_config import PowerAuth, PowerConfig
from tests.service_power.helpers import TOKEN, wol_config


def power_samples(text: str) -> dict[tuple[str, str, str], float]:
    """(backend, action, outcome) -> count of maasflow_power_requests_total."""
    return {
        (s.labels["backend"], s.labels["action"], s.labels["outcome"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "maasflow_power_requests_total"
    }


def gauge(text: str, name: str) -> float:
    (value,) = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]
    return value


async def test_power_requests_are_counted_by_backend_action_and_outcome(udp_catcher: Any) -> None:
    """An on and a query answered, an unknown machine and a wrong token refused, each counted."""
    config = PowerConfig.model_validate(wol_config(udp_catcher.port))
    power = build_power_component(config, PowerAuth(token=TOKEN), None)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        serve_service(ServiceConfig(), power=power) as svc,
        httpx.AsyncClient(base_url=svc.url, headers=auth) as client,
    ):
        assert (await client.post("/power/desk1/on")).status_code == 200
        assert (await client.get("/power/desk1")).status_code == 200
        assert (await client.post("/power/nosuch/on")).status_code == 400
        wrong = await client.post("/power/desk1/off", headers={"Authorization": "Bearer x"})
        assert wrong.status_code == 401
        text = (await client.get("/metrics")).text
    assert power_samples(text) == {
        ("wol", "on", "ok"): 1,
        ("wol", "query", "ok"): 1,
        ("none", "on", "refused"): 1,
        ("none", "off", "refused"): 1,
    }


async def test_a_power_off_waiting_for_its_ack_is_counted_until_acknowledged(
    udp_catcher: Any,
) -> None:
    """maasflow_power_acks_waiting is 1 while a Wake-on-LAN off waits for a person, then 0."""
    config = PowerConfig.model_validate(wol_config(udp_catcher.port))
    power = build_power_component(config, PowerAuth(), None)
    async with serve_service(ServiceConfig(), power=power) as svc:
        power.store.set("desk1", "on")
        async with httpx.AsyncClient(base_url=svc.url) as client:
            off = asyncio.create_task(client.post("/power/desk1/off"))
            while not power.acks.is_pending("desk1"):
                await asyncio.sleep(0.005)
            waiting = (await client.get("/metrics")).text
            assert (await client.post("/power/desk1/ack")).status_code == 200
            assert (await off).status_code == 200
            after = (await client.get("/metrics")).text
    assert gauge(waiting, "maasflow_power_acks_waiting") == 1
    assert gauge(after, "maasflow_power_acks_waiting") == 0
    assert power_samples(after)[("wol", "off", "ok")] == 1
