"""Stopping `maasflow serve` while a power-off waits for a person's acknowledgement."""

from __future__ import annotations

import asyncio

import httpx

from maasflow.serve import ServiceConfig, serve_service
from maasflow.serve.power_api import build_power_component
from maasflow.serve.power_config import PowerAuth, PowerConfig

CONFIG = {
    "wol": {"broadcast": "127.0.0.1", "port": 9, "off_ack_timeout": 600},
    "machines": {"desk1": {"backend": "wol", "mac": "52:54:00:ab:cd:ef"}},
}


async def test_waiting_power_off_gets_503_json_at_shutdown_not_500() -> None:
    """A power-off still waiting when the service stops is answered 503 JSON, never a 500."""
    power = build_power_component(PowerConfig.model_validate(CONFIG), PowerAuth(), None)
    power.store.set("desk1", "on")
    async with httpx.AsyncClient(timeout=30) as client:
        async with serve_service(ServiceConfig(), power=power) as service:
            off = asyncio.create_task(client.post(f"{service.url}/power/desk1/off"))
            for _ in range(1000):
                if power.acks.is_pending("desk1") or off.done():
                    break
                await asyncio.sleep(0.005)
            assert power.acks.is_pending("desk1")
        response = await off
    assert response.status_code == 503
    assert response.json() == {"error": "the service is shutting down"}
