"""Opening maasflow's SQLite files, and bringing their schema up to date with migrations.

Every SQLite file maasflow keeps (the daemon's provisioning store, serve's job records) is
opened here, so the connection settings are chosen once:

- `journal_mode=WAL` (files only): a reader such as `maasflow status --db` never blocks the
  writer, nor the writer it. Set after the schema version was checked, so a file from a newer
  maasflow is refused untouched.
- `busy_timeout=5000`: a second connection (a preview, `maasflow status`, a migration in
  another process) waits up to 5 s for a lock instead of failing at once with "locked".
- `synchronous=FULL`: every commit reaches the disk before it returns. Writes are rare (a few
  per machine per deploy) and each one records a decision a restart must not repeat (a script
  run, a POST), so durability across a power loss is worth the fsync.
- `foreign_keys=ON`: SQLite leaves them off for compatibility; on, any key a migration
  declares is enforced.
- autocommit (`isolation_level=None`): a statement is its own transaction; `transaction()`
  groups several explicitly with `BEGIN IMMEDIATE`, which takes the write lock up front.

The schema is a `Schema`: an ordered list of `Migration` steps numbered 1, 2, 3, ... The
number of the last step applied is kept in `PRAGMA user_version`; opening a file applies the
missing steps, each in its own transaction together with the new version number, so a crash
leaves the file at a step boundary. A file whose version is newer than the code's last step
is refused with a `ConfigError`. Step 1 is written with `IF NOT EXISTS`, so an unversioned
file from before versioning (version 0, tables present) is adopted by running it: nothing is
dropped and every row stays. `open_read_only()` is for readers that must never write (no
migration, no journal-mode change, `query_only`).

Every failure to open is one `ConfigError` line naming the file (by the caller's `label`,
e.g. `--db /path`) and what to do. Where this module stops: it knows no table of its own;
the stores own their SQL and their migrations.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from maasflow.common.errors import ConfigError

MEMORY = ":memory:"
BUSY_TIMEOUT_MS = 5000
_CONNECTION_PRAGMAS = (
    f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
)
_CANNOT_OPEN = frozenset(
    {"SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_READONLY", "SQLITE_AUTH", "SQLITE_IOERR"}
)
_NOT_A_DATABASE = frozenset({"SQLITE_NOTADB", "SQLITE_CORRUPT"})


@dataclass(frozen=True)
class Migration:
    """One step of a schema: the statements that take it from `version - 1` to `version`."""

    version: int
    summary: str
    statements: tuple[str, ...]


@dataclass(frozen=True)
class Schema:
    """The ordered migrations of one database; its version is the last step's number."""

    migrations: tuple[Migration, ...]

    def __post_init__(self) -> None:
        numbers = [step.version for step in self.migrations]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"migrations must be numbered 1, 2, 3, ... in order, not {numbers}")

    @property
    def version(self) -> int:
        return len(self.migrations)


def open_database(path: Path | str, schema: Schema, *, label: str) -> sqlite3.Connection:
    """A read-write connection to `path` (created if missing) with `schema` migrated in.

    `label` is how the user names the file in errors, e.g. "--db /var/lib/x.sqlite".
    """
    name = str(path)
    if name != MEMORY:
        _make_parent(Path(name), label)
    db = _connect(name, label, uri=False)
    try:
        migrate(db, schema, label)
        if name != MEMORY:
            db.execute("PRAGMA journal_mode = WAL")
    except sqlite3.Error as exc:
        db.close()
        raise _config_error(label, exc) from None
    except ConfigError:
        db.close()
        raise
    return db


def open_read_only(path: Path | str, *, label: str) -> sqlite3.Connection:
    """A connection to an existing file that cannot write it, nor create it, nor migrate it."""
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    db = _connect(uri, label, uri=True)
    try:
        db.execute("PRAGMA query_only = ON")
        db.execute("PRAGMA user_version").fetchone()  # the first read: fails on a non-database
    except sqlite3.Error as exc:
        db.close()
        raise _config_error(label, exc) from None
    return db


def user_version(db: sqlite3.Connection) -> int:
    """The schema version stamped in the file (0 for a new or unversioned one)."""
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection, schema: Schema, label: str) -> int:
    """Apply the steps `db` lacks, one transaction each; return the version it ends at.

    The version is read inside each step's write transaction, so two processes opening one
    file at once never apply a step twice. A current file is only read, never written.
    """
    while True:
        with transaction(db):
            version = user_version(db)
            _refuse_newer(version, schema, label)
            if version == schema.version:
                return version
            step = schema.migrations[version]
            for statement in step.statements:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {step.version}")


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block in one write transaction: committed on success, rolled back on error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _connect(target: str, label: str, *, uri: bool) -> sqlite3.Connection:
    try:
        db = sqlite3.connect(target, uri=uri, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise _config_error(label, exc) from None
    try:
        for pragma in _CONNECTION_PRAGMAS:
            db.execute(pragma)
    except sqlite3.Error as exc:
        db.close()
        raise _config_error(label, exc) from None
    return db


def _make_parent(path: Path, label: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise ConfigError(
            f"{label}: cannot open ({reason}: {path.parent}); give a path in a writable directory"
        ) from None


def _refuse_newer(version: int, schema: Schema, label: str) -> None:
    if version > schema.version:
        raise ConfigError(
            f"{label}: schema version {version} is newer than this maasflow understands "
            f"({schema.version}); upgrade maasflow, or move the file aside to start afresh"
        )


def _config_error(label: str, exc: sqlite3.Error) -> ConfigError:
    """One line naming the file, what went wrong and what to do."""
    reason = " ".join(str(exc).split())
    code = getattr(exc, "sqlite_errorname", "")
    if code in _NOT_A_DATABASE:
        return ConfigError(
            f"{label}: not a maasflow database ({reason}); move it aside or give another path"
        )
    if code in _CANNOT_OPEN:
        return ConfigError(
            f"{label}: cannot open ({reason}); check that it is an SQLite file this user may "
            "read and write, in a directory it may write"
        )
    if code in ("SQLITE_BUSY", "SQLITE_LOCKED"):
        return ConfigError(
            f"{label}: cannot open ({reason} for {BUSY_TIMEOUT_MS // 1000} s); "
            "another process holds it: stop that process or give another path"
        )
    return ConfigError(f"{label}: cannot open ({reason})")
