"""The daemon's persistent provisioning records: their contract, and the SQLite store.

One row per machine says where its provisioning stands (running, complete, failed), how
many attempts it took, when it may be retried and the evidence of the last failure. The
row is what lets a restart neither re-run a finished script nor POST twice for one deploy.
The lifecycle clears it when the machine leaves Deployed, so a redeploy provisions again.
Two small tables beside it keep the daemon's per-machine setbacks (`daemon.setbacks`: an
action backing off after failures) and retry counts (`daemon.retry_budget`), so a restart,
a preview and `maasflow status --db` see them too (schema version 2; version 3 adds the
deploy id and the run). Version 4 adds each machine's recent history (`daemon.history`), a
bounded table of events that `maasflow status <machine>` reads. Version 5 adds the deploy
parameters maasflow last sent each machine (`daemon.applied`, for a rule's `redeploy`).
Version 6 adds the desires an orchestrator stored over HTTP (`daemon.stored_desire`), one
row per machine; version 7 each machine's first sighting (`daemon.adoption`: was it already
Deployed, is that deploy adopted).
Version 8 adds the cursor into MAAS's event log (`daemon.event_feed`): one row, the id of
the last event read.

Each row names its deploy: `start` gives a new record a fresh `deploy_id` and keeps it for
every retry, so the id is sent with each POST and a provisioner can tell a repeated request
for this deploy from a redeploy (which, its record cleared, gets a new id). A script run
is recorded by `set_run` before the script may begin: its supervisor's pid, process group,
start time (kernel clock ticks) and result file (`common.supervision`), so a restarted
daemon finds the run and waits for it instead of starting a second one.

`ProvisionStore` is the contract the daemon codes against (a Protocol naming no database);
tests/store/test_contract.py checks it against every implementation. `SqliteStore` (also
`Store`, the name the wiring uses) is the embedded one: one connection opened by
`maasflow.common.sqlite` (WAL, so `maasflow status` never blocks the daemon; schema migrated
at start-up, a file from a newer maasflow refused), a lock around every call, and writes
that each touch one row in one transaction. A database error after opening (disk full, I/O
error) is a `StoreError`, and the write it interrupted changed nothing. A PostgreSQL store
for several hosts belongs beside it, behind the same contract. Timestamps are seconds since
the epoch (wall clock), because they must survive a restart. The retry backoff the records
use lives here too.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from maasflow.common.backoff import Backoff
from maasflow.common.errors import StoreError
from maasflow.common.sqlite import Migration, Schema, open_database, transaction
from maasflow.common.supervision import RunHandle
from maasflow.daemon.adoption import Sighting, SightingStore
from maasflow.daemon.applied import AppliedStore
from maasflow.daemon.event_feed import CursorStore
from maasflow.daemon.history import HISTORY_LIMIT, Event, HistoryStore, clip
from maasflow.daemon.lifecycle import ProvisionState  # a record is RUNNING, COMPLETE or FAILED
from maasflow.daemon.retry_budget import Recovery, RetryStore
from maasflow.daemon.setbacks import Setback, SetbackStore
from maasflow.daemon.stored_desire import BY_LIMIT, DesireStore, StoredDesire

TEXT_LIMIT = 4096  # bytes-ish bound on last_error / output_tail kept per record


class ProvisionMode(StrEnum):
    """How it is provisioned (a record's `mode`): a local script, or a POST to a URL."""

    SCRIPT = "script"
    URL = "url"


# Version 1 is the table as it was before migrations existed, kept word for word: its
# IF NOT EXISTS adopts such a file (version 0 if a crash hit between creating and stamping).
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
_SETBACK = """
CREATE TABLE setback (
    system_id  TEXT PRIMARY KEY,
    action     TEXT NOT NULL,
    failures   INTEGER NOT NULL,
    retry_at   REAL NOT NULL,
    last_error TEXT NOT NULL DEFAULT ''
)
"""
_RECOVERY = """
CREATE TABLE recovery (
    system_id   TEXT PRIMARY KEY,
    retries     INTEGER NOT NULL,
    quarantined INTEGER NOT NULL DEFAULT 0
)
"""
_DEPLOY_AND_RUN = (
    "ALTER TABLE provision ADD COLUMN deploy_id TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE provision ADD COLUMN run_pid INTEGER",
    "ALTER TABLE provision ADD COLUMN run_pgid INTEGER",
    "ALTER TABLE provision ADD COLUMN run_start_ticks INTEGER",
    "ALTER TABLE provision ADD COLUMN run_file TEXT NOT NULL DEFAULT ''",
)
_EVENT = (
    """
CREATE TABLE event (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    system_id TEXT NOT NULL,
    hostname  TEXT NOT NULL DEFAULT '',
    at        REAL NOT NULL,
    kind      TEXT NOT NULL,
    action    TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    detail    TEXT NOT NULL DEFAULT ''
)
""",
    "CREATE INDEX event_by_machine ON event (system_id, id)",
)
_APPLIED = """
CREATE TABLE applied_deploy (
    system_id TEXT PRIMARY KEY,
    params    TEXT NOT NULL
)
"""
_DESIRE = """
CREATE TABLE desire (
    system_id TEXT PRIMARY KEY,
    hostname  TEXT NOT NULL DEFAULT '',
    desire    TEXT NOT NULL,
    set_at    REAL NOT NULL,
    set_by    TEXT NOT NULL DEFAULT ''
)
"""
_SIGHTING = """
CREATE TABLE sighting (
    system_id    TEXT PRIMARY KEY,
    first_status INTEGER NOT NULL,
    first_seen   REAL NOT NULL,
    adopted      INTEGER NOT NULL
)
"""
_CURSOR = (
    "CREATE TABLE event_cursor (id INTEGER PRIMARY KEY CHECK (id = 1), after INTEGER NOT NULL)"
)
SCHEMA = Schema(
    (
        Migration(1, "the provision table", (_SCHEMA,)),
        Migration(2, "per-machine setbacks and retry counts", (_SETBACK, _RECOVERY)),
        Migration(3, "each record's deploy id and its script run", _DEPLOY_AND_RUN),
        Migration(4, "each machine's recent history", _EVENT),
        Migration(5, "the deploy parameters maasflow last sent each machine", (_APPLIED,)),
        Migration(6, "desires stored over HTTP", (_DESIRE,)),
        Migration(7, "each machine's first sighting (`daemon.adoption`)", (_SIGHTING,)),
        Migration(8, "the cursor into MAAS's event log", (_CURSOR,)),
    )
)
SCHEMA_VERSION = SCHEMA.version
_COLUMNS = (
    "system_id, state, mode, attempts, started_at, updated_at, finished_at, "
    "next_attempt_at, last_error, output_tail, hostname, deploy_id, "
    "run_pid, run_pgid, run_start_ticks, run_file"
)
_EVENT_COLUMNS = "system_id, hostname, at, kind, action, outcome, detail"
DESIRE_COLUMNS = "system_id, hostname, desire, set_at, set_by"
_INSERT_EVENT = f"INSERT INTO event ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"  # noqa: S608 - constant columns
_NO_RUN = "run_pid = NULL, run_pgid = NULL, run_start_ticks = NULL, run_file = ''"


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
    deploy_id: str = ""
    run_pid: int | None = None
    run_pgid: int | None = None
    run_start_ticks: int | None = None
    run_file: str = ""

    @property
    def run(self) -> RunHandle | None:
        """The recorded script run of this attempt, or None (none yet, or URL mode)."""
        if self.run_pid is None or self.run_pgid is None or self.run_start_ticks is None:
            return None
        return RunHandle(self.run_pid, self.run_pgid, self.run_start_ticks, self.run_file)


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


class ProvisionStore(
    SetbackStore,
    RetryStore,
    HistoryStore,
    AppliedStore,
    DesireStore,
    SightingStore,
    CursorStore,
    Protocol,
):
    """What the daemon needs from its provisioning records, whatever keeps them.

    It keeps the daemon's setbacks, retry counts, machines' recent histories, the deploy
    parameters last sent, the desires stored over HTTP and the event log's cursor too
    (`SetbackStore`, `RetryStore`, `HistoryStore`, `AppliedStore`, `DesireStore`,
    `CursorStore`).

    The contract, for every implementation:
    - each call is atomic and safe from several threads at once (no update is lost);
    - records survive `close()` and a new store opened on the same database;
    - times are the store's clock (wall-clock seconds), text is clipped to its last
      TEXT_LIMIT characters, and `mode` is a `ProvisionMode` (anything else: ValueError);
    - a database the store cannot use (unreachable, not its schema, a newer schema) is a
      `ConfigError` when the store is opened, never later; a read or write that fails after
      that (disk full, I/O error, connection lost) is a `StoreError` and changes nothing;
    - a record's `deploy_id` is set by its first `start` and kept until `clear`;
    - a machine's history keeps its newest HISTORY_LIMIT events, each detail clipped to
      its last DETAIL_LIMIT characters.
    """

    def get(self, system_id: str) -> ProvisionRecord | None:
        """The record for `system_id`, or None."""
        ...

    def all(self) -> list[ProvisionRecord]:
        """Every record, ordered by system_id."""
        ...

    def start(self, system_id: str, hostname: str, mode: str) -> ProvisionRecord:
        """Begin an attempt: running, attempts + 1, timing and run reset; keeps the last
        error and the deploy id (a new record gets a new one)."""
        ...

    def set_run(self, system_id: str, run: RunHandle) -> ProvisionRecord | None:
        """Record the running attempt's script run; None (nothing written) when cleared."""
        ...

    def complete(self, system_id: str, output_tail: str) -> ProvisionRecord | None:
        """Mark the attempt done; None (and nothing written) when the record was cleared."""
        ...

    def fail(
        self, system_id: str, error: str, output_tail: str, next_attempt_at: float
    ) -> ProvisionRecord | None:
        """Mark the attempt failed, due again at `next_attempt_at`; None when cleared."""
        ...

    def clear(self, system_id: str) -> bool:
        """Forget `system_id`'s record; True when there was one."""
        ...

    def retry_now(self, system_id: str) -> ProvisionRecord | None:
        """Make a failed record due now (an operator's retry; its deploy id is kept);
        None, and nothing written, unless the record is failed."""
        ...

    def close(self) -> None:
        """Release the database; the store is unusable afterwards."""
        ...


class SqliteStore(ProvisionStore):
    """Provisioning records in one SQLite file; `":memory:"` for tests and previews."""

    def __init__(self, path: Path | str, clock: Callable[[], float] = time.time) -> None:
        self.path = str(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._db = open_database(path, SCHEMA, label=f"state file {self.path}")
        self._db.row_factory = sqlite3.Row

    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        """The connection, to one caller at a time; SQLite's errors become StoreErrors."""
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as exc:
                reason = " ".join(str(exc).split())
                raise StoreError(f"state file {self.path}: {reason}") from exc

    def get(self, system_id: str) -> ProvisionRecord | None:
        with self._locked():
            return self._get(system_id)

    def _get(self, system_id: str) -> ProvisionRecord | None:
        sql = f"SELECT {_COLUMNS} FROM provision WHERE system_id = ?"  # noqa: S608 - constant columns
        row = self._db.execute(sql, (system_id,)).fetchone()
        return None if row is None else ProvisionRecord(**dict(row))

    def all(self) -> list[ProvisionRecord]:
        sql = f"SELECT {_COLUMNS} FROM provision ORDER BY system_id"  # noqa: S608 - constant columns
        with self._locked() as db:
            return [ProvisionRecord(**dict(row)) for row in db.execute(sql)]

    def start(self, system_id: str, hostname: str, mode: str) -> ProvisionRecord:
        checked = _mode(mode)
        now = self._clock()
        with self._locked() as db, transaction(db):
            db.execute(
                "INSERT INTO provision (system_id, state, mode, attempts, started_at, updated_at,"  # noqa: S608 - constant text
                " hostname, deploy_id) VALUES (?, 'running', ?, 1, ?, ?, ?, ?)"
                " ON CONFLICT (system_id) DO UPDATE SET state = 'running', mode = excluded.mode,"
                " attempts = attempts + 1, started_at = excluded.started_at,"
                " updated_at = excluded.updated_at, finished_at = NULL, next_attempt_at = NULL,"
                " output_tail = '', hostname = excluded.hostname,"
                " deploy_id = CASE provision.deploy_id WHEN '' THEN excluded.deploy_id"
                f" ELSE provision.deploy_id END, {_NO_RUN}",
                (system_id, checked, now, now, hostname, new_deploy_id()),
            )
            record = self._get(system_id)
        assert record is not None  # we just wrote it in this transaction
        return record

    def set_run(self, system_id: str, run: RunHandle) -> ProvisionRecord | None:
        now = self._clock()
        with self._locked() as db, transaction(db):
            db.execute(
                "UPDATE provision SET run_pid = ?, run_pgid = ?, run_start_ticks = ?,"
                " run_file = ?, updated_at = ? WHERE system_id = ? AND state = 'running'",
                (run.pid, run.pgid, run.start_ticks, run.result_file, now, system_id),
            )
            return self._get(system_id)

    def complete(self, system_id: str, output_tail: str) -> ProvisionRecord | None:
        return self._finish(system_id, ProvisionState.COMPLETE, "", output_tail, None)

    def fail(
        self, system_id: str, error: str, output_tail: str, next_attempt_at: float
    ) -> ProvisionRecord | None:
        return self._finish(system_id, ProvisionState.FAILED, error, output_tail, next_attempt_at)

    def _finish(
        self, system_id: str, state: ProvisionState, error: str, tail: str, next_at: float | None
    ) -> ProvisionRecord | None:
        now = self._clock()
        with self._locked() as db, transaction(db):
            db.execute(
                "UPDATE provision SET state = ?, last_error = ?, output_tail = ?,"  # noqa: S608 - constant text
                f" next_attempt_at = ?, finished_at = ?, updated_at = ?, {_NO_RUN}"
                " WHERE system_id = ?",
                (state, _clip(error), _clip(tail), next_at, now, now, system_id),
            )
            return self._get(system_id)

    def clear(self, system_id: str) -> bool:
        with self._locked() as db:
            cursor = db.execute("DELETE FROM provision WHERE system_id = ?", (system_id,))
            return cursor.rowcount > 0

    def retry_now(self, system_id: str) -> ProvisionRecord | None:
        now = self._clock()
        with self._locked() as db, transaction(db):
            cursor = db.execute(
                "UPDATE provision SET next_attempt_at = ?, updated_at = ?"
                " WHERE system_id = ? AND state = 'failed'",
                (now, now, system_id),
            )
            return self._get(system_id) if cursor.rowcount else None

    # -- machines' histories (`daemon.history`) --------------------------------------------

    def add_events(self, events: Sequence[Event]) -> None:
        rows = [
            (e.system_id, e.hostname, e.at, e.kind, e.action, e.outcome, clip(e.detail))
            for e in events
        ]
        trim = [(sid, sid, HISTORY_LIMIT) for sid in dict.fromkeys(e.system_id for e in events)]
        with self._locked() as db, transaction(db):
            db.executemany(_INSERT_EVENT, rows)
            db.executemany(
                "DELETE FROM event WHERE system_id = ? AND id <= (SELECT id FROM event"
                " WHERE system_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                trim,
            )

    def events(self, system_id: str, limit: int = HISTORY_LIMIT) -> list[Event]:
        sql = (
            f"SELECT {_EVENT_COLUMNS} FROM event WHERE system_id = ?"  # noqa: S608 - constant columns
            " ORDER BY id DESC LIMIT ?"
        )
        with self._locked() as db:
            rows = list(db.execute(sql, (system_id, max(limit, 0))))
        return [Event(**dict(row)) for row in reversed(rows)]

    def histories(self) -> list[Event]:
        sql = f"SELECT {_EVENT_COLUMNS} FROM event ORDER BY system_id, id"  # noqa: S608 - constant columns
        with self._locked() as db:
            return [Event(**dict(row)) for row in db.execute(sql)]

    # -- desires stored over HTTP (`daemon.stored_desire`) ------------------------------------

    def desires(self) -> list[StoredDesire]:
        sql = f"SELECT {DESIRE_COLUMNS} FROM desire ORDER BY system_id"  # noqa: S608 - constant columns
        with self._locked() as db:
            return [StoredDesire.decoded(**dict(row)) for row in db.execute(sql)]

    def save_desire(self, stored: StoredDesire) -> None:
        with self._locked() as db:
            db.execute(
                f"INSERT OR REPLACE INTO desire ({DESIRE_COLUMNS}) VALUES (?, ?, ?, ?, ?)",  # noqa: S608 - constant columns
                desire_row(stored),
            )

    def clear_desire(self, system_id: str) -> bool:
        with self._locked() as db:
            return db.execute("DELETE FROM desire WHERE system_id = ?", (system_id,)).rowcount > 0

    # -- setbacks and retry counts (see the module docstring) --------------------------------

    def setbacks(self) -> list[Setback]:
        sql = "SELECT system_id, action, failures, retry_at, last_error FROM setback"
        with self._locked() as db:
            return [Setback(**dict(row)) for row in db.execute(sql)]

    def save_setback(self, setback: Setback) -> None:
        with self._locked() as db:
            db.execute(
                "INSERT OR REPLACE INTO setback (system_id, action, failures, retry_at,"
                " last_error) VALUES (?, ?, ?, ?, ?)",
                (setback.system_id, setback.action, setback.failures, setback.retry_at,
                 _clip(setback.last_error)),
            )  # fmt: skip

    def clear_setback(self, system_id: str) -> None:
        with self._locked() as db:
            db.execute("DELETE FROM setback WHERE system_id = ?", (system_id,))

    def recoveries(self) -> list[Recovery]:
        sql = "SELECT system_id, retries, quarantined FROM recovery"
        with self._locked() as db:
            rows = list(db.execute(sql))
        return [Recovery(r["system_id"], r["retries"], bool(r["quarantined"])) for r in rows]

    def save_recovery(self, recovery: Recovery) -> None:
        with self._locked() as db:
            db.execute(
                "INSERT OR REPLACE INTO recovery (system_id, retries, quarantined)"
                " VALUES (?, ?, ?)",
                (recovery.system_id, recovery.retries, int(recovery.quarantined)),
            )

    def clear_recovery(self, system_id: str) -> None:
        with self._locked() as db:
            db.execute("DELETE FROM recovery WHERE system_id = ?", (system_id,))

    # -- applied deploy parameters (`daemon.applied`) ------------------------------------------

    def applied_deploys(self) -> dict[str, dict[str, str]]:
        with self._locked() as db:
            rows = list(db.execute("SELECT system_id, params FROM applied_deploy"))
        return {row["system_id"]: json.loads(row["params"]) for row in rows}

    def save_applied(self, system_id: str, params: Mapping[str, str]) -> None:
        with self._locked() as db:
            db.execute(
                "INSERT OR REPLACE INTO applied_deploy (system_id, params) VALUES (?, ?)",
                (system_id, json.dumps(dict(params), sort_keys=True)),
            )

    # -- first sightings (`daemon.adoption`) ---------------------------------------------------

    def sightings(self) -> list[Sighting]:
        sql = "SELECT system_id, first_status, first_seen, adopted FROM sighting"
        with self._locked() as db:
            rows = list(db.execute(sql))
        return [
            Sighting(r["system_id"], r["first_status"], r["first_seen"], bool(r["adopted"]))
            for r in rows
        ]

    def save_sighting(self, sighting: Sighting) -> None:
        with self._locked() as db:
            db.execute(
                "INSERT OR REPLACE INTO sighting (system_id, first_status, first_seen, adopted)"
                " VALUES (?, ?, ?, ?)",
                (sighting.system_id, sighting.first_status, sighting.first_seen,
                 int(sighting.adopted)),
            )  # fmt: skip

    def event_cursor(self) -> int | None:
        with self._locked() as db:
            row = db.execute("SELECT after FROM event_cursor WHERE id = 1").fetchone()
        return None if row is None else int(row["after"])

    def save_event_cursor(self, cursor: int) -> None:
        with self._locked() as db:
            db.execute("INSERT OR REPLACE INTO event_cursor (id, after) VALUES (1, ?)", (cursor,))

    def close(self) -> None:
        with self._lock:
            self._db.close()


Store = SqliteStore  # the name the wiring and the tests construct; SQLite is the default


def new_deploy_id() -> str:
    """A fresh id for one deploy's provisioning: 32 hex digits, unique without coordination."""
    return uuid.uuid4().hex


def desire_row(stored: StoredDesire) -> tuple[str, str, str, float, str]:
    """`stored` as the desire table's row (DESIRE_COLUMNS), `set_by` clipped."""
    by = stored.set_by[:BY_LIMIT]
    return (stored.system_id, stored.hostname, stored.encoded(), stored.set_at, by)


def _mode(mode: str) -> ProvisionMode:
    try:
        return ProvisionMode(mode)
    except ValueError:
        raise ValueError(f"mode must be 'script' or 'url', not {mode!r}") from None
