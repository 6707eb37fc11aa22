"""A throwaway PostgreSQL server for the tests: one cluster per test session, a database per test.

The cluster is made with Debian's own binaries (`/usr/lib/postgresql/<version>/bin`: initdb,
pg_ctl), in a temporary directory, listening on a free loopback port and on a socket in that
directory, and is stopped and deleted when the session ends. PostgreSQL refuses to run as
root, so as root the cluster belongs to the `postgres` user (or `nobody`) and its programs
run as that user. Durability is switched off (fsync, synchronous_commit): the data is thrown
away, and the suite stays fast. Password authentication (scram-sha-256) is on even over
loopback, so the stores' password handling is exercised for real.

`postgres_server` (session scope) starts it once; `postgres_database` gives each test a new,
empty database and drops it afterwards. Where PostgreSQL cannot be started (no binaries, say)
the tests that need it skip with the reason, except when `MAASFLOW_REQUIRE_POSTGRES=1` (CI
sets it): then they fail, so CI never passes by skipping them.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest

REQUIRE_ENV = "MAASFLOW_REQUIRE_POSTGRES"
BIN_GLOB = "/usr/lib/postgresql/*/bin"
SUPERUSER = "maasflow_test"
HOST = "127.0.0.1"
_RUN_AS = ("postgres", "nobody")  # who owns the cluster when the tests run as root
_SETTINGS = (
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=200",
    "shared_buffers=32MB",
)


class PostgresUnavailable(Exception):
    """PostgreSQL cannot be started here; the message says why."""


@dataclass(frozen=True)
class PostgresServer:
    """A running cluster: where it listens and the superuser's credentials."""

    host: str
    port: int
    user: str
    password: str
    password_file: Path

    def url(self, database: str = "postgres") -> str:
        """A connection URL without the password (it comes from `password_file`)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit superuser connection to `database`."""
        return psycopg.connect(self.url(database), password=self.password, autocommit=True)


@dataclass(frozen=True)
class _Owner:
    """The user the cluster's programs run as (None: the current user)."""

    uid: int | None
    gid: int | None

    def run(self, argv: list[str], cwd: Path) -> None:
        try:
            subprocess.run(
                argv, cwd=cwd, user=self.uid, group=self.gid,
                extra_groups=[] if self.uid is not None else None,
                env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
                check=True, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            tail = (exc.stderr or exc.stdout or "").strip().splitlines()[-3:]
            raise PostgresUnavailable(f"{Path(argv[0]).name} failed: {' | '.join(tail)}") from None


def find_bin_dir() -> Path:
    """The newest Debian PostgreSQL binary directory that has initdb and pg_ctl."""
    found = sorted(
        (p for p in Path("/").glob(BIN_GLOB.lstrip("/")) if (p / "initdb").exists()),
        key=lambda p: _version_key(p.parent.name),
    )
    if not found:
        raise PostgresUnavailable(
            f"no PostgreSQL server binaries in {BIN_GLOB}; apt-get install postgresql"
        )
    return found[-1]


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _owner() -> _Owner:
    if os.geteuid() != 0:
        return _Owner(None, None)
    for name in _RUN_AS:
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return _Owner(entry.pw_uid, entry.pw_gid)
    raise PostgresUnavailable("running as root and no 'postgres' or 'nobody' user to run as")


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class Cluster:
    """One initdb'd cluster in a temporary directory; `start()` then `stop()`."""

    def __init__(self) -> None:
        self.bin_dir = find_bin_dir()
        self.owner = _owner()
        self.root = Path(tempfile.mkdtemp(prefix="maasflow-pg-"))
        self.data = self.root / "data"
        self.password = secrets.token_hex(16)
        self.password_file = self.root / "password"
        self._started = False

    def start(self) -> PostgresServer:
        """initdb, then pg_ctl start on a free port (a second port if the first was taken)."""
        self.password_file.write_text(self.password + "\n")
        if self.owner.uid is not None:
            os.chown(self.root, self.owner.uid, self.owner.gid or 0)
            os.chown(self.password_file, self.owner.uid, self.owner.gid or 0)
        self._initdb()
        for attempt in range(3):
            port = free_port()
            try:
                self._pg_ctl_start(port)
            except PostgresUnavailable:
                if attempt == 2:
                    raise
                continue
            self._started = True
            return PostgresServer(HOST, port, SUPERUSER, self.password, self.password_file)
        raise AssertionError("unreachable")

    def _initdb(self) -> None:
        self.owner.run(
            [str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
             "--auth=scram-sha-256", f"--pwfile={self.password_file}", "-E", "UTF8",
             "--no-sync", "--no-instructions"],
            cwd=self.root,
        )  # fmt: skip

    def _pg_ctl_start(self, port: int) -> None:
        options = [f"-c listen_addresses={HOST}", f"-p {port}", f"-k {self.root}"]
        options += [f"-c {setting}" for setting in _SETTINGS]
        self.owner.run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
             "-o", " ".join(options), "-w", "-t", "60", "start"],
            cwd=self.root,
        )  # fmt: skip

    def stop(self) -> None:
        """Stop the server at once (its data is thrown away) and delete the directory."""
        if self._started:
            with contextlib.suppress(PostgresUnavailable, subprocess.TimeoutExpired):
                self.owner.run(
                    [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                     "-w", "stop"],
                    cwd=self.root,
                )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)


def _unavailable(reason: str) -> NoReturn:
    """Fail where PostgreSQL is required (CI), skip with the reason elsewhere."""
    message = f"PostgreSQL cannot be started: {reason}"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{message} ({REQUIRE_ENV}=1, so this fails instead of skipping)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server, started on first use and removed at the end."""
    try:
        cluster = Cluster()
    except PostgresUnavailable as exc:
        _unavailable(str(exc))
    try:
        server = cluster.start()
    except (PostgresUnavailable, OSError, subprocess.TimeoutExpired) as exc:
        cluster.stop()
        _unavailable(str(exc))
    try:
        yield server
    finally:
        cluster.stop()


@dataclass(frozen=True)
class PostgresDatabase:
    """One test's own database on the session's server."""

    server: PostgresServer
    name: str

    @property
    def url(self) -> str:
        return self.server.url(self.name)

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        return self.server.connect(self.name)


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[PostgresDatabase]:
    """A new, empty database for this test, dropped (its sessions ended) afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with postgres_server.connect() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PostgresDatabase(postgres_server, name)
    finally:
        with postgres_server.connect() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
