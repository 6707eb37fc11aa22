"""Fixtures for the simulator tests: a running simulator, OAuth-signed clients, polling.

Clients sign with oauthlib's PLAINTEXT method, the way any MAAS client does, so the
simulator's OAuth check is exercised by every test. Everything talks to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Generator

import httpx
import pytest
from oauthlib import oauth1

from maasflow.sim import SimConfig, Simulator, demo_machines, serve_simulator

FAST = 0.001  # time factor: a 20 s commissioning takes 20 ms


class OAuth(httpx.Auth):
    """Signs each request with a MAAS API key (OAuth 1.0a PLAINTEXT, fresh nonce)."""

    def __init__(self, key: str) -> None:
        self.consumer, self.token, self.secret = key.split(":")

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        client = oauth1.Client(
            self.consumer,
            client_secret="",
            resource_owner_key=self.token,
            resource_owner_secret=self.secret,
            signature_method=oauth1.SIGNATURE_PLAINTEXT,
        )
        _, headers, _ = client.sign(str(request.url), request.method)
        request.headers["Authorization"] = headers["Authorization"]
        yield request


def api_client(sim: Simulator, key: str | None) -> httpx.AsyncClient:
    """An httpx client rooted at the simulator's /MAAS/api/2.0/, signed with `key`."""
    auth = OAuth(key) if key else None
    return httpx.AsyncClient(base_url=sim.url + "/api/2.0/", auth=auth, timeout=10.0)


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
