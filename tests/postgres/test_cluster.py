"""The tests' PostgreSQL server is real, private to the session, and new per test."""

from __future__ import annotations

import psycopg
import pytest

from tests.postgres_cluster import PostgresDatabase, PostgresServer


def test_the_server_wants_the_password(postgres_server: PostgresServer) -> None:
    """The session's server accepts its superuser's password over loopback and refuses another."""
    with postgres_server.connect() as conn:
        row = conn.execute("SELECT current_user, inet_server_addr()::text").fetchone()
    assert row is not None and row[0] == postgres_server.user
    assert str(row[1]).startswith("127.0.0.1")
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(postgres_server.url(), password="wrong").close()


def test_each_test_gets_a_new_empty_database(postgres_database: PostgresDatabase) -> None:
    """A test's database exists, is named for it alone, and has no tables of its own yet."""
    with postgres_database.connect() as conn:
        name = conn.execute("SELECT current_database()").fetchone()
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
    assert name == (postgres_database.name,)
    assert tables == (0,)
