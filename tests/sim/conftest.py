"""Fixtures for the simulator tests: a running simulator, OAuth-signed clients, polling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from maasflow.sim import SimConfig, Simulator, demo_machines, serve_simulator
from tests.sim.helpers import FAST, api_client


@pytest.fixture
def config() -> SimConfig:
    """The default scenario: the demo dozen, moving fast."""
    return SimConfig(seed=7, time_factor=FAST, machines=demo_machines(7))


@pytest.fixture
async def sim(config: SimConfig) -> AsyncIterator[Simulator]:
    async with serve_simulator(config) as running:
        yield running


@pytest.fixture
async def admin(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(sim, sim.admin_key) as client:
        yield client


@pytest.fixture
async def user(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(sim, sim.user_key) as client:
        yield client


@pytest.fixture
async def anonymous(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(sim, None) as client:
        yield client


Predicate = Callable[[], bool]


@pytest.fixture
def wait_until() -> Callable[[Predicate], Awaitable[None]]:
    """Poll a condition every few milliseconds; fail the test after 5 s."""

    async def wait(condition: Predicate, timeout: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            if loop.time() > deadline:
                raise AssertionError("condition not reached in time")
            await asyncio.sleep(0.005)

    return wait
