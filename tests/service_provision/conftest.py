"""Helpers for the provisioning-service tests: real scripts in tmp_path, a real service on
127.0.0.1, and polling that fails with a clear message instead of hanging.

Test modules cannot import conftest by name (importlib import mode), so the helpers come as
one `kit` fixture.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from maasflow.common.postgres import PostgresUrl
from maasflow.serve import ServiceConfig, serve_service
from maasflow.serve.postgres_records import PostgresRecords
from maasflow.serve.records import Records, RecordStore

DEADLINE = 20.0
POLL = 0.02


class Kit:
    """Scripts, a running service, request bodies and patient polling."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path

    def script(self, name: str, body: str) -> Path:
        """An executable /bin/sh script `name` in tmp_path running `body`."""
        path = self.tmp / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)
        return path

    def gated_script(self, name: str, body: str = "") -> Path:
        """A script that records its argv and pid, waits for `<name>.go`, then runs `body`."""
        base = self.tmp / name
        return self.script(
            name,
            f'echo "$@" >> {base}.runs\n'
            f"echo $$ > {base}.pid.new && mv {base}.pid.new {base}.pid\n"  # whole when seen
            f"while [ ! -e {base}.go ]; do sleep 0.02; done\n" + body,
        )

    def release(self, name: str) -> None:
        """Let the gated script `name` go on."""
        (self.tmp / f"{name}.go").touch()

    def runs(self, name: str) -> list[str]:
        """The argv lines the gated script `name` recorded, one per run."""
        path = self.tmp / f"{name}.runs"
        return path.read_text().splitlines() if path.exists() else []

    @asynccontextmanager
    async def running(self, config: ServiceConfig) -> AsyncIterator[httpx.AsyncClient]:
        """The service for `config` on 127.0.0.1, and a client aimed at it."""
        async with (
            serve_service(config, host="127.0.0.1", port=0) as svc,
            httpx.AsyncClient(base_url=svc.url, timeout=10) as client,
        ):
            yield client

    @staticmethod
    def machine(job_id: str = "abc123", **extra: Any) -> dict[str, Any]:
        """A valid provisioning request body, with `extra` fields merged in."""
        body = {"id": job_id, "name": "node-1", "ip": "10.0.0.7", "mac": "52:54:00:aa:bb:cc"}
        return body | extra

    @staticmethod
    async def wait_until(check: Callable[[], object], what: str) -> None:
        """Poll `check` until it is truthy; fail naming `what` after DEADLINE seconds."""
        deadline = time.monotonic() + DEADLINE
        while not check():
            if time.monotonic() > deadline:
                pytest.fail(f"gave up waiting for {what}")
            await asyncio.sleep(POLL)

    @staticmethod
    async def wait_record(client: httpx.AsyncClient, job_id: str, status: int) -> dict[str, Any]:
        """Poll GET /provision/<id> until its status is `status`; return the record."""
        deadline = time.monotonic() + DEADLINE
        while True:
            response = await client.get(f"/provision/{job_id}")
            body: dict[str, Any] = response.json()
            if response.status_code in (200, 202) and body["status"] == status:
                return body
            if time.monotonic() > deadline:
                pytest.fail(f"record {job_id} never reached status {status}: last {body}")
            await asyncio.sleep(POLL)

    @staticmethod
    def alive(pid: int) -> bool:
        """True if `pid` is a live process (a zombie counts as gone)."""
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return False
        return "\nState:\tZ" not in status


@pytest.fixture
def kit(tmp_path: Path) -> Kit:
    """The helpers above, writing into this test's tmp_path."""
    return Kit(tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def open_records(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Records]]:
    """Opens the record store under test, again on each call (a new connection to the same
    records): an SQLite file, or a PostgreSQL database of its own (`postgres_database`)."""
    opened: list[Records] = []
    if request.param == "sqlite":
        make: Callable[[], Records] = lambda: RecordStore(tmp_path / "r.sqlite")  # noqa: E731
    else:
        database = request.getfixturevalue("postgres_database")
        url = PostgresUrl.parse(database.url, "test")
        make = lambda: PostgresRecords(url, database.server.password)  # noqa: E731

    def open_one() -> Records:
        opened.append(make())
        return opened[-1]

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def records_db(request: pytest.FixtureRequest) -> dict[str, Any]:
    """`ServiceConfig` fields placing the records: SQLite in memory (one service), or a
    PostgreSQL database of its own (a replica's shared queue, heartbeat 1 s)."""
    if request.param == "sqlite":
        return {}
    database = request.getfixturevalue("postgres_database")
    url = PostgresUrl.parse(database.url, "test")
    return {"db": url, "db_password": database.server.password, "heartbeat": 1.0}
