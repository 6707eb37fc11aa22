"""Helpers shared by the simulator tests: OAuth signing, API clients, the fast time factor.

Clients sign with oauthlib's PLAINTEXT method, the way any MAAS client does, so the
simulator's OAuth check is exercised by every test. Everything talks to 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Generator

import httpx
from oauthlib import oauth1

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
