"""Fixtures for the provisioning-store tests: a settable clock, and every store implementation.

`open_store` is parametrized over the implementations of `ProvisionStore`. Each parameter
names a backend fixture (`<name>_backend`) that gives a function opening a store on one
database, the same database every time within a test, so a restart is a second call. The
contract suite (test_contract.py) asks only for `store`, `open_store` and `clock`, so a new
implementation runs it by adding its name to BACKENDS and a `<name>_backend` fixture (which
may skip where its server is not configured). Every store opened is closed after the test.
The PostgreSQL backend opens its stores on a new database of the session's real server
(tests/postgres_cluster.py), with the password read from a file, as the daemon reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from maasflow.common.postgres import PostgresUrl, read_password
from maasflow.daemon.postgres_store import PostgresStore
from maasflow.daemon.store import ProvisionStore, SqliteStore
from tests.postgres_cluster import PostgresDatabase

BACKENDS = ("sqlite", "postgresql")


class Clock:
    """A settable wall clock."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


OpenStore = Callable[[Clock], ProvisionStore]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sqlite_backend(tmp_path: Path) -> OpenStore:
    """SQLite stores on one file in a directory the store has to create."""
    path = tmp_path / "state" / "maasflow.sqlite"
    return lambda clock: SqliteStore(path, clock=clock)


@pytest.fixture
def postgresql_backend(postgres_database: PostgresDatabase) -> OpenStore:
    """PostgreSQL stores on one new database, the password from a file."""
    url = PostgresUrl.parse(postgres_database.url, "-db")
    password_file = postgres_database.server.password_file
    return lambda clock: PostgresStore(
        url, read_password(password_file, "-db-password-file"), clock
    )


@pytest.fixture(params=BACKENDS)
def open_store(request: pytest.FixtureRequest) -> Iterator[OpenStore]:
    """Opens stores of one implementation on one database; closes them all afterwards."""
    backend: OpenStore = request.getfixturevalue(f"{request.param}_backend")
    opened: list[ProvisionStore] = []

    def open_one(clock: Clock) -> ProvisionStore:
        opened.append(backend(clock))
        return opened[-1]

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: OpenStore, clock: Clock) -> ProvisionStore:
    return open_store(clock)
