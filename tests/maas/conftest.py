"""Shared fixtures for the MAAS client tests: a key, a respx router and a client on it.

The router mocks every request, so nothing leaves the process (and unmatched requests
fail the test); the base URL names 127.0.0.1 all the same. Sleeps are injected and
recorded, never slept. Helpers are fixtures because pytest runs with --import-mode=importlib,
where test modules cannot import each other.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import respx

from maasflow.daemon.maas.client import MaasClient, RequestRecord

MAAS = "http://127.0.0.1:5240/MAAS"
API = f"{MAAS}/api/2.0/"
_OAUTH_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Key:
    """A MAAS API key in its three parts, lengths 18:18:32 like real ones."""

    consumer: str = "cK7pQm2xZr9Lw4Tn8v"
    token: str = "tH3sJd6Fg1Ka5Pz0Qy"
    secret: str = "sEcReTs3cr3tS3CRETs3cretSECRET32"

    @property
    def full(self) -> str:
        return f"{self.consumer}:{self.token}:{self.secret}"


class Recorder:
    """Collects what the client hands to its hooks: sleeps and request records."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.records: list[RequestRecord] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def on_response(self, record: RequestRecord) -> None:
        self.records.append(record)


def _oauth_params(header: str) -> dict[str, str]:
    assert header.startswith("OAuth ")
    return dict(_OAUTH_PARAM.findall(header))


def _machine(system_id: str = "abc123", status: int = 4, **fields: Any) -> dict[str, Any]:
    return {"system_id": system_id, "hostname": f"host-{system_id}", "status": status, **fields}


@pytest.fixture
def key() -> Key:
    return Key()


@pytest.fixture
def oauth_params() -> Callable[[str], dict[str, str]]:
    """Parse an ``Authorization: OAuth k="v", ...`` header into a dict."""
    return _oauth_params


@pytest.fixture
def machine() -> Callable[..., dict[str, Any]]:
    """Build a small machine object in MAAS 2.0 shape."""
    return _machine


@pytest.fixture
def fixture_json() -> Callable[[str], Any]:
    """Load one of our own JSON fixtures under tests/maas/fixtures/."""
    folder = Path(__file__).parent / "fixtures"
    return lambda name: json.loads((folder / name).read_text())


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=API, assert_all_called=False) as mocked:
        yield mocked


@pytest.fixture
def make_client(key: Key, recorder: Recorder) -> Callable[..., MaasClient]:
    """Build a client on the mocked API with recorded sleeps and request records."""

    def make(**options: Any) -> MaasClient:
        options.setdefault("sleep", recorder.sleep)
        options.setdefault("on_response", recorder.on_response)
        options.setdefault("max_attempts", 4)
        return MaasClient(options.pop("base_url", MAAS), key.full, **options)

    return make


@pytest.fixture
async def client(
    router: respx.MockRouter, make_client: Callable[..., MaasClient]
) -> AsyncIterator[MaasClient]:
    async with make_client() as maas:
        yield maas
