"""Persistent provisioning records in one SQLite file, and the retry backoff they use.

One row per machine says where its provisioning stands (running, complete, failed), how
many attempts it took, when it may be retried and the evidence of the last failure. The
row is what lets a restart neither re-run a finished script nor POST twice for one deploy.
The lifecycle clears it when the machine leaves Deployed, so a redeploy provisions again.

The store is deliberately small and synchronous: one connection (WAL journal for a file,
so a reader such as `maasflow status` never blocks the daemon), a lock around every call,
and statements that each touch one row. The schema is versioned with `PRAGMA user_version`;
a file from a newer maasflow is refused rather than guessed at. Timestamps are seconds since
the epoch (wall clock), because they must survive a restart.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from maasflow.common.backoff import Backoff
from maasflow.common.errors import ConfigError

SCHEMA_VERSION = 1
TEXT_LIMIT = 4096  # bytes-ish bound on last_error / output_tail kept per record
INTERRUPTED = "interrupted by restart"

_SCHEMA = """
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
_COLUMNS = (
    "system_id, state, mode, attempts, started_at, updated_at, finished_at, "
    "next_attempt_at, last_error, output_tail, hostname"
)


@dataclass(frozen=True)
class ProvisionRecord:
    """Where one machine's provisioning stands."""

    system_id: str
    state: str  # "running" | "complete" | "failed"
    mode: str  # "script" | "url"
    attempts: int
    started_at: float
    updated_at: float
    finished_at: float | None
    next_attempt_at: float | None
    last_error: str
    output_tail: str
    hostname: str


def retry_delay(
    attempts: int,
    base: float = 30.0,
    cap: float = 3600.0,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after `attempts` failures: `maasflow.common.backoff`'s policy.

    The nominal delay d = min(cap, base·2^(attempts-1)) is equally jittered into [d/2, d],
    so it never exceeds `cap`.
    """
    return Backoff(base, cap, rand=rand).delay(attempts)


def _clip(text: str) -> str:
    """Keep the end of `text`: the tail is where a failure explains itself."""
    return text[-TEXT_LIMIT:]


class Store:
    """Provisioning records in SQLite; `":memory:"` for tests and previews."""

    def __init__(self, path: Path | str, clock: Callable[[], float] = time.time) -> None:
        self.path = str(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._db = self._connect(self.path)
        try:
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise ConfigError(f"state file {self.path}: not a maasflow database ({exc})") from exc

    @staticmethod
    def _connect(path: str) -> sqlite3.Connection:
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"state file {path}: cannot open ({exc}); set a writable path"
            ) from exc
        db.row_factory = sqlite3.Row
        return db

    def _migrate(self) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"state file {self.path}: schema version {version} is newer than this "
                f"maasflow understands ({SCHEMA_VERSION}); upgrade maasflow or move the file"
            )
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        if version == SCHEMA_VERSION:
            return  # current: write nothing (a preview opening the file must not change it)
        self._db.execute(_SCHEMA)
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def get(self, system_id: str) -> ProvisionRecord | None:
        """The record for `system_id`, or None."""
        with self._lock:
            return self._get(system_id)

    def _get(self, system_id: str) -> ProvisionRecord | None:
        sql = f"SELECT {_COLUMNS} FROM provision WHERE system_id = ?"  # noqa: S608 - constant columns
        row = self._db.execute(sql, (system_id,)).fetchone()
        return None if row is None else ProvisionRecord(**dict(row))

    def all(self) -> list[ProvisionRecord]:
        """Every record, ordered by system_id."""
        sql = f"SELECT {_COLUMNS} FROM provision ORDER BY system_id"  # noqa: S608 - constant columns
        with self._lock:
            return [ProvisionRecord(**dict(row)) for row in self._db.execute(sql)]

    def start(self, system_id: str, hostname: str, mode: str) -> ProvisionRecord:
        """Begin an attempt: state running, attempts + 1; keeps the previous last_error."""
        if mode not in ("script", "url"):
            raise ValueError(f"mode must be 'script' or 'url', not {mode!r}")
        now = self._clock()
        with self._lock:
            self._db.execute(
                "INSERT INTO provision (system_id, state, mode, attempts, started_at, updated_at,"
                " hostname) VALUES (?, 'running', ?, 1, ?, ?, ?)"
                " ON CONFLICT (system_id) DO UPDATE SET state = 'running', mode = excluded.mode,"
                " attempts = attempts + 1, started_at = excluded.started_at,"
                " updated_at = excluded.updated_at, finished_at = NULL, next_attempt_at = NULL,"
                " output_tail = '', hostname = excluded.hostname",
                (system_id, mode, now, now, hostname),
            )
            record = self._get(system_id)
        assert record is not None  # we just wrote it under the lock
        return record

    def complete(self, system_id: str, output_tail: str) -> ProvisionRecord | None:
        """Mark the attempt done; None (and nothing written) when the record was cleared."""
        return self._finish(system_id, "complete", "", output_tail, None)

    def fail(
        self, system_id: str, error: str, output_tail: str, next_attempt_at: float
    ) -> ProvisionRecord | None:
        """Mark the attempt failed, due again at `next_attempt_at`; None when cleared."""
        return self._finish(system_id, "failed", error, output_tail, next_attempt_at)

    def _finish(
        self, system_id: str, state: str, error: str, tail: str, next_at: float | None
    ) -> ProvisionRecord | None:
        now = self._clock()
        with self._lock:
            self._db.execute(
                "UPDATE provision SET state = ?, last_error = ?, output_tail = ?,"
                " next_attempt_at = ?, finished_at = ?, updated_at = ? WHERE system_id = ?",
                (state, _clip(error), _clip(tail), next_at, now, now, system_id),
            )
            return self._get(system_id)

    def clear(self, system_id: str) -> bool:
        """Forget `system_id`'s record; True when there was one."""
        with self._lock:
            cursor = self._db.execute("DELETE FROM provision WHERE system_id = ?", (system_id,))
            return cursor.rowcount > 0

    def mark_interrupted_scripts(self) -> int:
        """Script runs a crash left 'running' become failed, due now; returns how many."""
        now = self._clock()
        with self._lock:
            cursor = self._db.execute(
                "UPDATE provision SET state = 'failed', last_error = ?, next_attempt_at = ?,"
                " finished_at = ?, updated_at = ? WHERE state = 'running' AND mode = 'script'",
                (INTERRUPTED, now, now, now),
            )
            return cursor.rowcount

    def close(self) -> None:
        """Close the connection; the store is unusable afterwards."""
        with self._lock:
            self._db.close()
