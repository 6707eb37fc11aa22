"""`maasflow migrate-store`: an SQLite installation's every record moves into PostgreSQL, as is.

Each test runs against the session's real PostgreSQL (tests/postgres_cluster.py), on a new
database, with the password from a file as an operator would give it.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from maasflow.cli import main
from maasflow.common.instance_lock import InstanceLock
from maasflow.common.postgres import PostgresUrl
from maasflow.common.supervision import RunHandle
from maasflow.daemon.adoption import Sighting
from maasflow.daemon.history import Event, EventKind
from maasflow.daemon.postgres_store import PostgresStore
from maasflow.daemon.retry_budget import Recovery
from maasflow.daemon.setbacks import Setback
from maasflow.daemon.store import SqliteStore
from maasflow.daemon.store_transfer import Snapshot
from maasflow.daemon.stored_desire import StoredDesire
from tests.postgres_cluster import PostgresDatabase
from tests.store.conftest import Clock

RUN = RunHandle(pid=4242, pgid=4242, start_ticks=2**40, result_file="/state/runs/x.json")


def _installation(path: Path, clock: Clock) -> Snapshot:
    """An SQLite file holding one of each kind of record; what it holds."""
    with closing(SqliteStore(path, clock=clock)) as store:
        store.start("running", "n1", "script")
        store.set_run("running", RUN)
        store.start("done", "n2", "url")
        clock.now += 12.25
        store.complete("done", "all good\n")
        store.start("failed", "n3", "url")
        store.fail("failed", "HTTP 502", "tail", clock.now + 30.5)
        store.save_setback(Setback("sb", "deploy", 3, clock.now + 99.125, "HTTP 503"))
        store.save_recovery(Recovery("rq", 2, quarantined=True))
        store.save_applied("done", {"distro_series": "jammy", "user_data": "(9 bytes, sha256 1)"})
        store.save_sighting(Sighting("legacy", 6, clock.now + 0.5, adopted=True))
        store.add_events([Event("done", "n2", clock.now, EventKind.ACTION, "deploy", "ok"),
                          Event("sb", "n4", clock.now + 1, EventKind.ACTION, "deploy", "failed",
                                "HTTP 503"),
                          Event("done", "n2", clock.now + 2, EventKind.PROVISIONING,
                                "provision", "ok")])  # fmt: skip
        store.save_desire(StoredDesire("done", "n2", {"target": "ready"}, clock.now, "cloud"))
        return Snapshot.of(store)


def _argv(db: PostgresDatabase, source: Path) -> list[str]:
    return ["migrate-store", "--from", f"sqlite:{source}", "--to", db.url,
            "--password-file", str(db.server.password_file)]  # fmt: skip


def _held(db: PostgresDatabase) -> Snapshot:
    url = PostgresUrl.parse(db.url, "-db")
    with closing(PostgresStore(url, db.server.password)) as store:
        return Snapshot.of(store)


def test_every_record_moves_unchanged(postgres_database: PostgresDatabase, tmp_path: Path) -> None:
    """The command (a real process) copies every row, field for field; SQLite is untouched."""
    source = tmp_path / "maasflow.sqlite"
    before = _installation(source, Clock())
    env = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
    done = subprocess.run(
        [sys.executable, "-m", "maasflow", *_argv(postgres_database, source)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "moved 3 provisioning records, 1 setbacks, 1 retry counts, 3 history events" in (
        done.stdout
    )
    assert "1 applied deploys" in done.stdout
    assert "1 stored desires" in done.stdout
    assert "1 first sightings" in done.stdout
    assert postgres_database.server.password not in done.stdout + done.stderr
    assert _held(postgres_database) == before
    by_id = {record.system_id: record for record in before.records}
    assert by_id["running"].run == RUN and by_id["failed"].next_attempt_at is not None
    with closing(SqliteStore(source)) as again:
        assert Snapshot.of(again) == before


def test_a_database_already_in_use_is_refused_and_left_alone(
    postgres_database: PostgresDatabase, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A target holding any record is refused in one line (exit 2), and keeps only its own."""
    source = tmp_path / "maasflow.sqlite"
    _installation(source, Clock())
    url = PostgresUrl.parse(postgres_database.url, "-db")
    with closing(PostgresStore(url, postgres_database.server.password)) as other:
        other.save_recovery(Recovery("theirs", 1))
    assert main(_argv(postgres_database, source)) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("maasflow: --to ") and "already holds 1 rows" in line
    assert _held(postgres_database) == Snapshot([], [], [Recovery("theirs", 1)], [])


def test_a_file_a_daemon_holds_is_refused(
    postgres_database: PostgresDatabase, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """While a daemon holds the SQLite file, nothing moves: stop it first (exit 2)."""
    source = tmp_path / "maasflow.sqlite"
    _installation(source, Clock())
    with InstanceLock.hold(source, hint="daemon"):
        assert main(_argv(postgres_database, source)) == 2
    assert "stop the daemon" in capsys.readouterr().err
    assert _held(postgres_database) == Snapshot([], [], [], [])


def test_a_file_from_before_migrations_moves_too(
    postgres_database: PostgresDatabase, tmp_path: Path
) -> None:
    """An old file (schema version 0, the first table only) is brought up to date and moved."""
    source = tmp_path / "old.sqlite"
    with closing(sqlite3.connect(source)) as db:
        db.execute(
            "CREATE TABLE provision (system_id TEXT PRIMARY KEY, state TEXT NOT NULL,"
            " mode TEXT NOT NULL, attempts INTEGER NOT NULL, started_at REAL NOT NULL,"
            " updated_at REAL NOT NULL, finished_at REAL, next_attempt_at REAL,"
            " last_error TEXT NOT NULL DEFAULT '', output_tail TEXT NOT NULL DEFAULT '',"
            " hostname TEXT NOT NULL DEFAULT '')"
        )
        db.execute(
            "INSERT INTO provision VALUES ('old', 'complete', 'script', 2, 1.5, 2.5, 2.5,"
            " NULL, 'once failed', 'ok', 'n-old')"
        )
        db.commit()
    assert main(_argv(postgres_database, source)) == 0
    (record,) = _held(postgres_database).records
    assert (record.system_id, record.attempts, record.last_error, record.deploy_id) == (
        "old",
        2,
        "once failed",
        "",
    )


@pytest.mark.parametrize(
    ("source", "words"),
    [("/var/lib/x.sqlite", "expected sqlite:PATH"), ("sqlite:/no/such/file", "no such file")],
)
def test_a_bad_source_is_one_line_and_exit_2(
    source: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --from that is not sqlite:PATH of an existing file is refused before anything opens."""
    argv = ["migrate-store", "--from", source, "--to", "postgresql://u@127.0.0.1:1/x"]
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("maasflow: --from ") and words in line
