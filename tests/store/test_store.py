"""The SQLite provisioning store: its file, schema versioning, files from before, backoff.

What every store must do is in test_contract.py; this is what only the SQLite one does.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maasflow.common.errors import ConfigError, StoreError
from maasflow.daemon.adoption import Sighting
from maasflow.daemon.history import Event
from maasflow.daemon.store import (
    SCHEMA_VERSION,
    ProvisionRecord,
    Store,
    retry_delay,
)
from maasflow.daemon.stored_desire import StoredDesire
from tests.common.full_disk import fill, small_filesystem
from tests.store.conftest import Clock

# The provision table exactly as maasflow created it before migrations existed.
TODAYS_DDL = """
CREATE TABLE IF NOT EXISTS provision (
    system_id       TEXT PRIMARY KEY,
    state           TEXT NOT NULL CHECK (state IN ('running', 'complete', 'failed')),
    mode            TEXT NOT NULL CHECK (mode IN ('script', 'url')),
    attempts        INTEGER NOT NULL,
    started_at      REAL NOT NULL,
    updated_at      REAL NOT NULL,
    finished_at     REAL,
    next_attempt_at REAL,
    last_error      TEXT NOT NULL DEFAULT '',
    output_tail     TEXT NOT NULL DEFAULT '',
    hostname        TEXT NOT NULL DEFAULT ''
)
"""
TODAYS_ROWS = [
    ProvisionRecord("a1", "running", "script", 1, 10.0, 10.0, None, None, "", "", "node-a"),
    ProvisionRecord("b2", "complete", "url", 2, 20.0, 25.0, 25.0, None, "old", "ok\n", "node-b"),
    ProvisionRecord("c3", "failed", "script", 3, 30.0, 31.0, 31.0, 90.0, "exit 1", "t", "node-c"),
]


def write_todays_file(path: Path, version: int) -> None:
    """A state file as the code before migrations wrote it: WAL, the table, rows, `version`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(TODAYS_DDL)
        if version:
            db.execute(f"PRAGMA user_version = {version}")
        db.executemany(
            "INSERT INTO provision VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [tuple(vars(row).values())[:11] for row in TODAYS_ROWS],  # the 11 columns of then
        )


@pytest.mark.parametrize("version", [1, 0], ids=["stamped", "crashed-before-stamping"])
def test_a_file_from_before_migrations_keeps_every_row(tmp_path: Path, version: int) -> None:
    """A state file the previous code wrote (stamped 1, or left at 0 by a crash) opens intact."""
    path = tmp_path / "maasflow.sqlite"
    write_todays_file(path, version)
    store = Store(path)
    assert store.all() == TODAYS_ROWS
    store.close()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_version_3_file_gains_the_history_and_keeps_its_records(tmp_path: Path) -> None:
    """A file of schema 3 (before histories) opens at the current version, rows intact, with an
    empty history that takes events."""
    path = tmp_path / "maasflow.sqlite"
    write_todays_file(path, 1)
    with closing(Store(path)) as store:  # migrates to the current version
        store.add_events([Event("a1", "node-a", 1.0, "action", "deploy", "ok")])
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("DROP TABLE event")
        db.execute("DROP TABLE applied_deploy")  # version 5's
        db.execute("DROP TABLE desire")  # version 6's
        db.execute("DROP TABLE sighting")  # version 7's
        db.execute("DROP TABLE event_cursor")  # version 8's
        db.execute("PRAGMA user_version = 3")
    with closing(Store(path)) as store:
        assert store.all() == TODAYS_ROWS and store.events("a1") == []
        store.add_events([Event("a1", "node-a", 2.0, "action", "deploy", "failed", "503")])
        assert [e.detail for e in store.events("a1")] == ["503"]
    assert SCHEMA_VERSION == 8


def test_a_version_4_file_gains_the_applied_deploys_and_keeps_its_records(tmp_path: Path) -> None:
    """A file of schema 4 (before applied deploy parameters) opens at the current version, rows
    intact, with no applied parameters, and takes them."""
    path = tmp_path / "maasflow.sqlite"
    write_todays_file(path, 1)
    Store(path).close()
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("DROP TABLE applied_deploy")
        db.execute("DROP TABLE desire")  # version 6's
        db.execute("DROP TABLE sighting")  # version 7's
        db.execute("DROP TABLE event_cursor")  # version 8's
        db.execute("PRAGMA user_version = 4")
    with closing(Store(path)) as store:
        assert store.all() == TODAYS_ROWS and store.applied_deploys() == {}
        store.save_applied("a1", {"distro_series": "jammy"})
        assert store.applied_deploys() == {"a1": {"distro_series": "jammy"}}


def test_a_version_5_file_gains_the_desires_and_keeps_its_history(tmp_path: Path) -> None:
    """A file of schema 5 (before stored desires) opens at the current version, its records and
    history intact, with no desire stored and room for one."""
    path = tmp_path / "maasflow.sqlite"
    write_todays_file(path, 1)
    with closing(Store(path)) as store:
        store.add_events([Event("a1", "node-a", 1.0, "action", "deploy", "ok")])
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("DROP TABLE desire")
        db.execute("DROP TABLE sighting")  # version 7's
        db.execute("DROP TABLE event_cursor")  # version 8's
        db.execute("PRAGMA user_version = 5")
    with closing(Store(path)) as store:
        assert store.all() == TODAYS_ROWS and store.desires() == []
        assert [e.at for e in store.events("a1")] == [1.0]
        store.save_desire(StoredDesire("a1", "node-a", {"target": "ready"}, 2.0, "cloud"))
        assert [d.desire for d in store.desires()] == [{"target": "ready"}]


def test_a_version_6_file_gains_first_sightings_and_keeps_its_records(tmp_path: Path) -> None:
    """A file of schema 6 (before sightings) opens at the current version, rows and history
    intact, with an empty sighting table that takes sightings."""
    path = tmp_path / "maasflow.sqlite"
    write_todays_file(path, 1)
    with closing(Store(path)) as store:
        store.add_events([Event("a1", "node-a", 1.0, "action", "deploy", "ok")])
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("DROP TABLE sighting")
        db.execute("DROP TABLE event_cursor")  # version 8's
        db.execute("PRAGMA user_version = 6")
    with closing(Store(path)) as store:
        assert store.all() == TODAYS_ROWS and len(store.events("a1")) == 1
        assert store.sightings() == []
        store.save_sighting(Sighting("a1", 6, 5.0, adopted=True))
        assert store.sightings() == [Sighting("a1", 6, 5.0, adopted=True)]


def test_a_version_7_file_gains_the_event_cursor_and_keeps_its_records(tmp_path: Path) -> None:
    """A file of schema 7 (before the event cursor) opens at the current version, rows and
    history intact, with no cursor until one is saved."""
    path = tmp_path / "maasflow.sqlite"
    write_todays_file(path, 1)
    with closing(Store(path)) as store:
        store.add_events([Event("a1", "node-a", 1.0, "action", "deploy", "ok")])
        store.save_event_cursor(7)
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("DROP TABLE event_cursor")
        db.execute("PRAGMA user_version = 7")
    with closing(Store(path)) as store:
        assert store.all() == TODAYS_ROWS and len(store.events("a1")) == 1
        assert store.event_cursor() is None
        store.save_event_cursor(42)
        assert store.event_cursor() == 42


def test_file_store_uses_wal_and_versions_its_schema(tmp_path: Path) -> None:
    """A file store is in WAL mode and stamps PRAGMA user_version with the schema version."""
    path = tmp_path / "state.db"
    Store(path).close()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    raw.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A state file from a newer maasflow is a ConfigError naming the file, not a guess."""
    path = tmp_path / "state.db"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(ConfigError, match=r"state\.db.*newer") as caught:
        Store(path)
    assert str(caught.value).startswith(f"state file {path}: schema version")
    assert "upgrade maasflow" in str(caught.value) and "\n" not in str(caught.value)


def test_garbage_file_is_a_config_error(tmp_path: Path) -> None:
    """A file that is not SQLite is a ConfigError naming the file."""
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database at all, just sixteen+ bytes of text" * 20)
    with pytest.raises(ConfigError, match="not a maasflow database"):
        Store(path)


def test_unwritable_location_is_a_config_error(tmp_path: Path) -> None:
    """A state path whose parent cannot be created is a ConfigError naming the path."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot open"):
        Store(blocker / "sub" / "state.db")


def test_retry_delay_doubles_then_caps() -> None:
    """At the top of its jitter the delay is base·2^(n-1), capped; at the bottom, half that."""
    assert [retry_delay(n, rand=lambda: 1.0) for n in (1, 2, 3, 4)] == [30.0, 60.0, 120.0, 240.0]
    assert retry_delay(50, rand=lambda: 1.0) == 3600.0
    assert retry_delay(3, rand=lambda: 0.0) == pytest.approx(60.0)
    assert retry_delay(0, rand=lambda: 1.0) == 30.0


@given(st.integers(min_value=-3, max_value=10_000), st.floats(min_value=0.0, max_value=1.0))
def test_retry_delay_is_bounded(attempts: int, jitter: float) -> None:
    """For any attempt count the delay stays within [nominal / 2, nominal] and never above cap."""
    delay = retry_delay(attempts, base=30.0, cap=3600.0, rand=lambda: jitter)
    nominal = min(3600.0, 30.0 * 2.0 ** min(max(attempts, 1) - 1, 62))
    assert 0.5 * nominal - 1e-9 <= delay <= nominal <= 3600.0


def test_reopening_a_current_file_writes_nothing(tmp_path: Path, clock: Clock) -> None:
    """Opening an up-to-date state file (as a preview does) leaves its bytes unchanged."""
    path = tmp_path / "state.db"
    db = Store(path, clock=clock)
    db.start("abc", "n", "script")
    db.close()
    before = path.read_bytes()
    Store(path, clock=clock).close()
    assert path.read_bytes() == before


def test_a_full_disk_is_a_store_error_and_the_record_is_unchanged(
    tmp_path: Path, clock: Clock
) -> None:
    """On a full filesystem a write raises StoreError naming the file; the row stays as it was."""
    with small_filesystem(tmp_path / "state") as state:
        store = Store(state / "maasflow.sqlite", clock=clock)
        running = store.start("abc", "node1", "script")
        filler = fill(state)
        with pytest.raises(StoreError, match=r"^state file .*maasflow\.sqlite: .*full"):
            store.complete("abc", "the script's last words")
        assert store.get("abc") == running
        filler.unlink()
        done = store.complete("abc", "the script's last words")
        assert done is not None and done.state == "complete"
        store.close()
