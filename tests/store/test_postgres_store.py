"""The PostgreSQL store: its URL and password, its migrations, and a connection that breaks.

What every store must do is in test_contract.py (run against this store too); this is what
only the PostgreSQL one does. Every test runs against a real server (tests/postgres_cluster.py).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from maasflow.common.errors import ConfigError, StoreError
from maasflow.common.postgres import (
    PostgresUrl,
    connect,
    is_postgres_url,
    read_password,
    schema_version,
)
from maasflow.daemon.postgres_store import COMPONENT, SCHEMA, PostgresStore
from tests.postgres_cluster import PostgresDatabase
from tests.store.conftest import Clock


def _open(database: PostgresDatabase, clock: Clock | None = None) -> PostgresStore:
    url = PostgresUrl.parse(database.url, "-db")
    return PostgresStore(url, database.server.password, clock or Clock())


@pytest.mark.parametrize(
    "text",
    ["postgresql://u:secret@db/maasflow", "postgres://u@db/maasflow?password=secret"],
)
def test_a_password_in_the_url_is_refused(text: str) -> None:
    """A URL holding a password is refused in one line that names the file to use instead."""
    with pytest.raises(ConfigError) as caught:
        PostgresUrl.parse(text, "-db")
    message = str(caught.value)
    assert message.startswith("-db: ") and "secret" not in message
    assert "-db-password-file" in message and "\n" not in message


def test_only_postgres_urls_name_a_database() -> None:
    """postgresql:// and postgres:// name a database; a path, even with a colon, does not."""
    assert is_postgres_url("postgresql://u@h/d") and is_postgres_url("postgres://h/d")
    assert not is_postgres_url("/var/lib/maasflow/maasflow.sqlite")
    assert not is_postgres_url("sqlite:/x")


def test_the_password_comes_from_the_named_file_or_the_credential(tmp_path: Path) -> None:
    """The named file wins; without one, systemd's credential; without both, none (libpq's)."""
    named = tmp_path / "pw"
    named.write_text("from-file\n")
    (tmp_path / "maasflow_db_password").write_text("from-credential\n")
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert read_password(named, "-db-password-file", env) == "from-file"
    assert read_password(None, "-db-password-file", env) == "from-credential"
    assert read_password(None, "-db-password-file", {}) is None


def test_a_wrong_password_is_a_config_error_at_opening(postgres_database: PostgresDatabase) -> None:
    """A store opened with the wrong password fails at once, naming the URL, not the password."""
    url = PostgresUrl.parse(postgres_database.url, "-db")
    with pytest.raises(ConfigError) as caught:
        PostgresStore(url, "not-the-password")
    assert str(caught.value).startswith(f"-db {url}: cannot connect")
    assert "not-the-password" not in str(caught.value)


def test_a_newer_schema_is_refused(postgres_database: PostgresDatabase) -> None:
    """A database whose daemon tables are newer than this code knows is refused at opening."""
    _open(postgres_database).close()
    with postgres_database.connect() as admin:
        admin.execute("UPDATE maasflow_schema SET version = 99 WHERE component = 'daemon'")
    with pytest.raises(ConfigError, match="version 99, newer than this maasflow"):
        _open(postgres_database)


def test_stores_opening_at_once_migrate_once(postgres_database: PostgresDatabase) -> None:
    """Several stores opening one new database at once all open it, at the current version."""
    opened: list[PostgresStore] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            opened.append(_open(postgres_database))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in opened:
        store.close()
    assert errors == [] and len(opened) == 4
    with postgres_database.connect() as admin:
        row = admin.execute(
            "SELECT version FROM maasflow_schema WHERE component = %s", (COMPONENT,)
        ).fetchone()
    assert row == (SCHEMA.version,)


def test_a_lost_connection_fails_one_call_and_the_next_reconnects(
    postgres_database: PostgresDatabase,
) -> None:
    """A connection the server ended is a StoreError once; the next call connects again."""
    store = _open(postgres_database)
    try:
        store.start("a", "n", "url")
        with postgres_database.connect() as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND application_name = 'maasflow'",
                (postgres_database.name,),
            )
        with pytest.raises(StoreError, match=f"^-db {postgres_database.url}: "):
            store.get("a")
        record = store.get("a")
        assert record is not None and record.attempts == 1
    finally:
        store.close()


def test_a_database_that_refuses_a_reconnection_is_a_store_error_not_a_config_error(
    postgres_database: PostgresDatabase,
) -> None:
    """After opening, a database that is away (it refuses the reconnection too) fails each
    call with a StoreError, as the store contract says; once it is back, calls work again."""
    store = _open(postgres_database)
    name = postgres_database.name
    try:
        store.start("a", "n", "url")
        with postgres_database.server.connect() as admin:  # from the postgres database
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND application_name = 'maasflow'",
                (name,),
            )
        for _ in range(2):  # the broken connection, then the refused reconnection
            with pytest.raises(StoreError, match=f"^-db {postgres_database.url}: "):
                store.get("a")
        with postgres_database.server.connect() as admin:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        record = store.get("a")
        assert record is not None and record.attempts == 1
    finally:
        store.close()


def test_schema_version_is_zero_before_the_first_migration(
    postgres_database: PostgresDatabase,
) -> None:
    """A component whose tables were never made reads as version 0."""
    store = _open(postgres_database)
    store.close()
    url = PostgresUrl.parse(postgres_database.url, "-db")
    with connect(url, postgres_database.server.password, label="-db") as db:
        assert schema_version(db, "serve") == 0
        assert schema_version(db, COMPONENT) == SCHEMA.version
