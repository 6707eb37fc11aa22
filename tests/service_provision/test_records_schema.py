"""serve's records file is versioned: new files are stamped, older unversioned ones adopted."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from maasflow.common.errors import ConfigError
from maasflow.serve.records import SCHEMA, JobRequest, Record, RecordStore, Status

# The records table exactly as `maasflow serve` created it before it had a schema version.
TODAYS_DDL = """
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    role TEXT,
    worker INTEGER,
    status INTEGER NOT NULL,
    message TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    output TEXT NOT NULL DEFAULT ''
)
"""
M1 = JobRequest("m1", "node1", "10.0.0.1", "aa:bb")
M2 = JobRequest("m2", "node2", "10.0.0.2", "", role="gpu")
M3 = JobRequest("m3", "node3", "10.0.0.3", "", script="wipe")
TODAYS_RECORDS = [
    Record(M1, Status.COMPLETE, 1, "done", 100, None, "ok\n"),
    Record(M2, Status.FAILED, 2, "exit 1", 200, "gpu", ""),
    Record(M3, Status.PENDING, None, "queued", 300),
]


def version_of(path: Path) -> int:
    with closing(sqlite3.connect(path)) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def write_todays_file(path: Path) -> None:
    """A records file as serve wrote it before versioning: WAL, the table, rows, version 0."""
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(TODAYS_DDL)
        for r in TODAYS_RECORDS:
            request = json.dumps(r.request.to_json())
            row = (r.id, request, r.role, r.worker, int(r.status), r.message, r.timestamp, r.output)
            db.execute("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)


def test_a_new_records_file_carries_the_schema_version(tmp_path: Path) -> None:
    """A records file serve creates is stamped with its schema version."""
    path = tmp_path / "serve.sqlite"
    RecordStore(path).close()
    assert version_of(path) == SCHEMA.version >= 1


def test_an_unversioned_records_file_keeps_every_row(tmp_path: Path) -> None:
    """A records file from before versioning is adopted: stamped, and every record reads back."""
    path = tmp_path / "serve.sqlite"
    write_todays_file(path)
    assert version_of(path) == 0
    store = RecordStore(path)
    assert store.all() == TODAYS_RECORDS
    store.close()
    assert version_of(path) == SCHEMA.version


def test_a_newer_records_file_is_refused_in_one_line(tmp_path: Path) -> None:
    """A records file from a newer maasflow is a one-line ConfigError naming --db and the fix."""
    path = tmp_path / "serve.sqlite"
    with closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA.version + 1}")
    with pytest.raises(ConfigError, match=rf"^--db {path}: schema version \d+ is newer") as caught:
        RecordStore(path)
    assert "upgrade maasflow" in str(caught.value) and "\n" not in str(caught.value)
