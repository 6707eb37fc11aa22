"""PostgreSQL access for the daemon's store and serve's jobs: URL, password, connection, schema.

Where more than one host runs maasflow, its state lives in PostgreSQL, through psycopg 3.
This module is the one place that knows how maasflow reaches it:

- `PostgresUrl.parse` checks a `postgresql://user@host:port/database` URL as given by an
  option. A password in it (`user:secret@`, or `?password=`) is refused: a URL is shown in
  process listings and logs, so the password comes from a file instead.
- `read_password` reads that file: the one named by an option, else systemd's credential
  `$CREDENTIALS_DIRECTORY/maasflow_db_password`, else none (libpq's own ~/.pgpass then
  applies), by `common.secrets`' one rule for secret files. It is handed to libpq as a
  connection parameter, never through the environment or a command line.
- `connect` (and `connect_async`) opens one autocommit connection (rows as dicts, TCP
  keepalives so that a cut network is noticed); any failure is one `ConfigError` line.
- `migrate` brings one component's tables (the daemon's, serve's) up to its `Schema` (the
  same `Migration` steps `common.sqlite` uses), each step one transaction under an advisory
  lock, so processes starting at once never apply a step twice; the versions live in the
  table `maasflow_schema`, one row per component. A newer version than the code knows is
  refused; nothing is ever dropped.
- `store_error` turns a failure after opening into a one-line `StoreError`.

It knows nothing of the tables themselves: their owners do.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
from psycopg.rows import DictRow, dict_row

from maasflow.common.errors import ConfigError, StoreError
from maasflow.common.secrets import read_secret_file
from maasflow.common.sqlite import Schema

SCHEMES = ("postgresql", "postgres")
CREDENTIAL_NAME = "maasflow_db_password"  # systemd LoadCredential= name
CONNECT_TIMEOUT_S = 10
MIGRATION_LOCK = 0x6D616173  # "maas": the advisory lock key that serialises migrations
_KEEPALIVES = "keepalives=1 keepalives_idle=5 keepalives_interval=2 keepalives_count=3"
_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS maasflow_schema ("
    " component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
)

Connection = psycopg.Connection[DictRow]
AsyncConnection = psycopg.AsyncConnection[DictRow]


def is_postgres_url(text: str) -> bool:
    """Whether `text` names a PostgreSQL database rather than a file."""
    return text.strip().split("://", 1)[0].lower() in SCHEMES and "://" in text


@dataclass(frozen=True)
class PostgresUrl:
    """A checked PostgreSQL URL, holding no password; `str()` is safe to show."""

    url: str

    @classmethod
    def parse(cls, text: str, origin: str) -> PostgresUrl:
        """Check `text` (as given by `origin`) or raise a one-line ConfigError."""
        value = text.strip()
        try:
            parts = urlsplit(value)
            _ = parts.port  # raises ValueError on a bad port
        except ValueError as exc:
            raise ConfigError(f"{origin}: not a valid PostgreSQL URL: {exc}") from None
        if parts.scheme.lower() not in SCHEMES or " " in value:
            raise ConfigError(f"{origin}: not a postgresql://user@host/database URL")
        if parts.password is not None or "password" in parse_qs(parts.query):
            raise ConfigError(
                f"{origin}: the URL holds a password, which process listings and logs would "
                "show; remove it and put the password in a file (-db-password-file, or the "
                f"systemd credential {CREDENTIAL_NAME})"
            )
        return cls(value)

    def __str__(self) -> str:
        return self.url


def read_password(
    file: Path | None, origin: str, environ: Mapping[str, str] | None = None
) -> str | None:
    """The database password: from `file` (named by `origin`), else systemd's credential."""
    if file is not None:
        return read_secret_file(file, origin, "database password")
    directory = (os.environ if environ is None else environ).get("CREDENTIALS_DIRECTORY")
    credential = Path(directory) / CREDENTIAL_NAME if directory else None
    if credential is not None and credential.is_file():
        return read_secret_file(credential, "CREDENTIALS_DIRECTORY", "database password")
    return None


def connect(url: PostgresUrl, password: str | None, *, label: str) -> Connection:
    """One autocommit connection to `url`, or a ConfigError naming `label`."""
    extra: dict[str, Any] = {"password": password} if password is not None else {}
    try:
        return psycopg.connect(
            url.url, autocommit=True, row_factory=dict_row, connect_timeout=CONNECT_TIMEOUT_S,
            application_name="maasflow", **_keepalives(), **extra,
        )  # fmt: skip
    except psycopg.Error as exc:
        raise ConfigError(f"{label}: cannot connect ({_reason(exc)})") from None


async def connect_async(url: PostgresUrl, password: str | None, *, label: str) -> AsyncConnection:
    """`connect`, for asyncio (the daemon's leadership session)."""
    extra: dict[str, Any] = {"password": password} if password is not None else {}
    try:
        return await psycopg.AsyncConnection.connect(
            url.url, autocommit=True, row_factory=dict_row, connect_timeout=CONNECT_TIMEOUT_S,
            application_name="maasflow", **_keepalives(), **extra,
        )  # fmt: skip
    except psycopg.Error as exc:
        raise ConfigError(f"{label}: cannot connect ({_reason(exc)})") from None


def open_database(
    url: PostgresUrl, password: str | None, schema: Schema, *, component: str, label: str
) -> Connection:
    """A connection to `url` with `component`'s tables migrated to `schema`."""
    db = connect(url, password, label=label)
    try:
        migrate(db, schema, component, label)
    except psycopg.Error as exc:
        db.close()
        raise ConfigError(f"{label}: cannot set up its tables ({_reason(exc)})") from None
    except ConfigError:
        db.close()
        raise
    return db


class Session:
    """One component's connection to its database, to one caller at a time, made again when it
    broke: opened (and migrated) at once, so a database it cannot use is a ConfigError then;
    any failure after that, a reconnection included, is a StoreError naming `label`."""

    def __init__(
        self, url: PostgresUrl, password: str | None, schema: Schema, component: str, label: str
    ) -> None:
        self.url, self.label = url, label
        self._password = password
        self._lock = threading.Lock()
        self._db = open_database(url, password, schema, component=component, label=label)

    @contextmanager
    def locked(self) -> Iterator[Connection]:
        """The connection, held for the block; a psycopg error becomes a StoreError."""
        with self._lock:
            try:
                if self._db.closed:
                    self._db = self._reconnect()
                yield self._db
            except psycopg.Error as exc:
                if self._db.broken:
                    self._db.close()  # the next call connects again
                raise store_error(self.label, exc) from exc

    def _reconnect(self) -> Connection:
        try:
            return connect(self.url, self._password, label=self.label)
        except ConfigError as exc:  # the database went away after it was opened
            raise StoreError(str(exc)) from None

    def close(self) -> None:
        with self._lock:
            self._db.close()


def migrate(db: Connection, schema: Schema, component: str, label: str) -> int:
    """Apply the steps `component` lacks, one transaction each; return its version."""
    while True:
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            db.execute(_VERSION_TABLE)
            version = schema_version(db, component)
            if version > schema.version:
                raise ConfigError(
                    f"{label}: the {component} schema is version {version}, newer than this "
                    f"maasflow understands ({schema.version}); upgrade maasflow"
                )
            if version == schema.version:
                return version
            step = schema.migrations[version]
            for statement in step.statements:
                db.execute(statement)
            db.execute(
                "INSERT INTO maasflow_schema (component, version) VALUES (%s, %s)"
                " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (component, step.version),
            )


def schema_version(db: Connection, component: str) -> int:
    """The version `component`'s tables are at (0: none yet)."""
    row = db.execute(
        "SELECT version FROM maasflow_schema WHERE component = %s", (component,)
    ).fetchone()
    return 0 if row is None else int(row["version"])


def store_error(label: str, exc: psycopg.Error) -> StoreError:
    """A failure after opening, as one line naming `label`."""
    return StoreError(f"{label}: {_reason(exc)}")


def _keepalives() -> dict[str, Any]:
    """libpq's TCP keepalives: a peer gone without a word is noticed within ~11 s."""
    return dict(pair.split("=") for pair in _KEEPALIVES.split())


def _reason(exc: psycopg.Error) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
