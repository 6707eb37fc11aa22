"""The shared SQLite helper: connection settings, versioned migrations, one-line open errors."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from maasflow.common.errors import ConfigError
from maasflow.common.sqlite import (
    MEMORY,
    Migration,
    Schema,
    open_database,
    open_read_only,
    transaction,
    user_version,
)

CREATE = Migration(
    1,
    "notes and a log of applied steps",
    (
        "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS applied (step INTEGER NOT NULL)",
        "INSERT INTO applied VALUES (1)",
    ),
)
ADD_COLUMN = Migration(
    2,
    "notes get an author",
    (
        "ALTER TABLE notes ADD COLUMN author TEXT NOT NULL DEFAULT 'nobody'",
        "INSERT INTO applied VALUES (2)",
    ),
)
V1 = Schema((CREATE,))
V2 = Schema((CREATE, ADD_COLUMN))


def raw(path: Path) -> sqlite3.Connection:
    """A plain connection that bypasses the helper, as another program would open the file."""
    return sqlite3.connect(path, isolation_level=None)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "db" / "test.sqlite"


@pytest.fixture
def label(path: Path) -> str:
    return f"--db {path}"


@contextmanager
def opened(path: Path, schema: Schema) -> Iterator[sqlite3.Connection]:
    """Open, yield, close: one run of a program on the file."""
    with closing(open_database(path, schema, label=f"--db {path}")) as db:
        yield db


def test_migrations_run_once_however_often_the_file_is_opened(path: Path) -> None:
    """Each step is applied exactly once; reopening a current file applies nothing again."""
    for _ in range(3):
        with opened(path, V2) as db:
            assert user_version(db) == 2
    with closing(raw(path)) as db:
        assert [row[0] for row in db.execute("SELECT step FROM applied ORDER BY step")] == [1, 2]


def test_an_older_file_gets_the_missing_steps_and_keeps_its_rows(path: Path) -> None:
    """A file at version 1 opened by code at version 2 gets step 2 only, every row intact."""
    with opened(path, V1) as db:
        db.executemany("INSERT INTO notes (text) VALUES (?)", [("a",), ("b",)])
    with opened(path, V2) as db:
        rows = db.execute("SELECT text, author FROM notes ORDER BY id").fetchall()
        assert rows == [("a", "nobody"), ("b", "nobody")]
        assert user_version(db) == 2
        assert db.execute("SELECT count(*) FROM applied WHERE step = 1").fetchone()[0] == 1


def test_a_failing_step_leaves_the_file_at_the_previous_version(path: Path) -> None:
    """A step that fails half-way is rolled back whole; the version stays at the last good step."""
    broken = Migration(
        2, "breaks half-way", (*ADD_COLUMN.statements, "INSERT INTO missing VALUES (1)")
    )
    with opened(path, V1) as db:
        db.execute("INSERT INTO notes (text) VALUES ('kept')")
    with pytest.raises(ConfigError, match="no such table: missing") as caught:
        open_database(path, Schema((CREATE, broken)), label=f"--db {path}")
    assert "\n" not in str(caught.value)
    with closing(raw(path)) as db:
        assert user_version(db) == 1
        columns = [row[1] for row in db.execute("PRAGMA table_info(notes)")]
        assert columns == ["id", "text"]
        assert db.execute("SELECT text FROM notes").fetchall() == [("kept",)]


def test_a_newer_file_is_refused_untouched_in_one_line(path: Path, label: str) -> None:
    """A version above the code's is a one-line ConfigError naming the file and the way out."""
    path.parent.mkdir()
    with closing(raw(path)) as db:
        db.execute("PRAGMA user_version = 7")
    before = path.read_bytes()
    with pytest.raises(ConfigError) as caught:
        open_database(path, V2, label=label)
    message = str(caught.value)
    assert message.startswith(f"{label}: schema version 7 is newer")
    assert "upgrade maasflow" in message and "\n" not in message
    assert path.read_bytes() == before
    with closing(raw(path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_an_unversioned_file_is_adopted_with_every_row(path: Path) -> None:
    """A file made before versioning (tables, user_version 0) is brought to the current version."""
    path.parent.mkdir()
    with closing(raw(path)) as db:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
        db.executemany("INSERT INTO notes (text) VALUES (?)", [("old",), ("older",)])
    with opened(path, V2) as db:
        assert user_version(db) == 2
        assert db.execute("SELECT text, author FROM notes ORDER BY id").fetchall() == [
            ("old", "nobody"),
            ("older", "nobody"),
        ]


def test_a_file_is_opened_with_the_chosen_settings(path: Path) -> None:
    """A file is in WAL mode, waits 5 s for locks, syncs fully and enforces foreign keys."""
    with opened(path, V1) as db:
        settings = [
            db.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("journal_mode", "busy_timeout", "synchronous", "foreign_keys")
        ]
        assert settings == ["wal", 5000, 2, 1]
        assert db.in_transaction is False  # autocommit between explicit transactions


def test_foreign_keys_are_enforced(path: Path) -> None:
    """A row naming a parent that does not exist is refused."""
    schema = Schema(
        (
            Migration(
                1,
                "parent and child",
                (
                    "CREATE TABLE parent (id INTEGER PRIMARY KEY)",
                    "CREATE TABLE child (parent INTEGER REFERENCES parent (id))",
                ),
            ),
        )
    )
    with opened(path, schema) as db, pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        db.execute("INSERT INTO child VALUES (42)")


def test_memory_databases_are_migrated_too() -> None:
    """`:memory:` gets the schema (and no file is created for it)."""
    with closing(open_database(MEMORY, V2, label="memory")) as db:
        assert user_version(db) == 2
        assert db.execute("SELECT count(*) FROM applied").fetchone()[0] == 2
    assert not Path(MEMORY).exists()


def test_a_transaction_is_rolled_back_on_error(path: Path) -> None:
    """What a failing `transaction()` block wrote is gone; what a good one wrote stays."""
    with opened(path, V1) as db:
        with transaction(db):
            db.execute("INSERT INTO notes (text) VALUES ('kept')")
        with pytest.raises(RuntimeError), transaction(db):
            db.execute("INSERT INTO notes (text) VALUES ('lost')")
            raise RuntimeError("half-way")
        assert db.execute("SELECT text FROM notes").fetchall() == [("kept",)]


def test_migrations_must_be_numbered_in_order() -> None:
    """A schema whose steps skip or repeat a number is a programming error, caught at import."""
    with pytest.raises(ValueError, match="numbered"):
        Schema((CREATE, Migration(3, "skips 2", ())))


# -- read-only --------------------------------------------------------------------------------


def test_read_only_open_cannot_write_and_changes_nothing(path: Path) -> None:
    """A read-only connection reads rows, refuses writes and leaves the file's bytes alone."""
    with opened(path, V1) as db:
        db.execute("INSERT INTO notes (text) VALUES ('x')")
    before = path.read_bytes()
    with closing(open_read_only(path, label="--db x")) as db:
        assert db.execute("SELECT text FROM notes").fetchall() == [("x",)]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            db.execute("INSERT INTO notes (text) VALUES ('y')")
    assert path.read_bytes() == before


def test_read_only_open_never_creates_a_file(tmp_path: Path) -> None:
    """Opening a missing file read-only is a one-line ConfigError, and no file appears."""
    missing = tmp_path / "missing.sqlite"
    with pytest.raises(ConfigError, match=r"^--db m: cannot open") as caught:
        open_read_only(missing, label="--db m")
    assert "\n" not in str(caught.value)
    assert not missing.exists()


# -- errors opening the file ------------------------------------------------------------------


@pytest.mark.parametrize("read_only", [False, True], ids=["read-write", "read-only"])
def test_a_file_that_is_not_sqlite_is_one_line(path: Path, label: str, read_only: bool) -> None:
    """A file of other bytes is "not a maasflow database", on one line, left as it was."""
    path.parent.mkdir()
    path.write_bytes(b"definitely not sqlite " * 50)
    with pytest.raises(ConfigError) as caught:
        open_read_only(path, label=label) if read_only else open_database(path, V1, label=label)
    assert str(caught.value).startswith(f"{label}: not a maasflow database (")
    assert "move it aside" in str(caught.value) and "\n" not in str(caught.value)
    assert path.read_bytes() == b"definitely not sqlite " * 50


def test_a_directory_is_one_line(tmp_path: Path) -> None:
    """A path naming a directory cannot be opened: one line saying what to check."""
    with pytest.raises(ConfigError, match=r"^--db d: cannot open \(unable to open") as caught:
        open_database(tmp_path, V1, label="--db d")
    assert "read and write" in str(caught.value) and "\n" not in str(caught.value)


def test_an_uncreatable_directory_is_one_line(tmp_path: Path) -> None:
    """A path under a regular file cannot be created: one line naming the directory."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"^--db b: cannot open \(.*file/sub\)") as caught:
        open_database(blocker / "sub" / "x.sqlite", V1, label="--db b")
    assert "writable directory" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may read and write any file")
def test_an_unreadable_file_is_one_line(path: Path, label: str) -> None:
    """A file this user may not read is "cannot open", on one line."""
    with opened(path, V1):
        pass
    path.chmod(0)
    with pytest.raises(ConfigError, match=r"cannot open") as caught:
        open_database(path, V1, label=label)
    assert str(caught.value).startswith(label) and "\n" not in str(caught.value)
