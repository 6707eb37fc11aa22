"""Helpers shared by the simulator tests: OAuth signing, API clients, time (fast or fake).

Clients sign with oauthlib's PLAINTEXT method, the way any MAAS client does, so the
simulator's OAuth check is exercised by every test. Everything talks to 127.0.0.1.
`FakeSimClock` replaces the simulator's real clock where a test must not race the wall clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager

import httpx
from oauthlib import oauth1

from maasflow.common.clock import FakeClock
from maasflow.sim import Simulator

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


class FakeSimClock(FakeClock):
    """`common.clock.FakeClock` with the simulator's timeouts (a `SimClock`).

    Sleeps return at once, advance the clock and are recorded in `slept`; each timeout's
    length is recorded in `timeouts`, and it fires only once the clock has moved past its
    deadline, so real I/O, however slow on a busy machine, never makes one expire.
    """

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float] = []
        self._deadlines: list[tuple[float, asyncio.Timeout]] = []

    @asynccontextmanager
    async def timeout(self, seconds: float) -> AsyncIterator[None]:
        self.timeouts.append(seconds)
        async with asyncio.timeout(None) as guard:
            entry = (self.monotonic() + seconds, guard)
            self._deadlines.append(entry)
            try:
                yield
            finally:
                self._deadlines.remove(entry)

    def advance(self, seconds: float) -> None:
        """Move time on; every timeout now past its deadline fires."""
        super().advance(seconds)
        loop = asyncio.get_running_loop()
        for deadline, guard in self._deadlines:
            if deadline <= self.monotonic():
                guard.reschedule(loop.time())
