"""Serve's job records in PostgreSQL: one queue shared by every `maasflow serve` replica.

The same record as the SQLite store (`records`), one row per machine id in `serve_records`,
plus what sharing needs, created by this module's versioned migrations (`common.postgres`,
component "serve"):

- `claim`: the token of the run allowed to write the row. A replica takes a pending job with
  `claim` (`UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED)`), so each job is
  taken by exactly one replica; every later write of that run is `WHERE claim = <its token>`,
  so a run whose record was deleted, retried or given up on writes nothing.
- `replica`, `host`, `runs_dir`: who runs it, and where its supervised run can be found.
- `serve_replicas`: one row per live replica, `seen` stamped by its heartbeat with the
  database's clock (`now()`), so no two hosts' clocks are ever compared.

`enqueue` is the POST: one `INSERT ... ON CONFLICT (id) DO UPDATE ... WHERE` the stored job
is finished and is not the completed run of the same deploy id. The primary key makes it
atomic across replicas: of two POSTs at once, one queues a run, the other answers its record.

`sweep` is how the dead are found: in one transaction, replicas silent for longer than the
bound lose their row, and each running job no live replica holds is either adopted (its run
is on this host, in this runs directory: the new claim is this replica's) or failed
"interrupted: replica <id> lost" (its run may live on another host; it cannot be watched by
pid, so it is never run again by itself).

What this module stops at: SQL. When to claim, beat and sweep is `shared_pool`'s business.
One connection, used by one caller at a time (a lock); a broken one is reconnected at the
next call, the failed call being a `StoreError`.
"""

from __future__ import annotations

import socket
import time
import uuid
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, replace
from pathlib import Path

from psycopg.rows import DictRow

from maasflow.common.postgres import Connection, PostgresUrl, Session
from maasflow.common.sqlite import Migration, Schema
from maasflow.serve.records import (
    JobRequest,
    Record,
    Status,
    record_of,
    row_of,
)

COMPONENT = "serve"
_TABLES = (
    """CREATE TABLE serve_records (
        id              TEXT PRIMARY KEY,
        request         TEXT NOT NULL,
        role            TEXT,
        worker          INTEGER,
        status          INTEGER NOT NULL CHECK (status BETWEEN 0 AND 3),
        message         TEXT NOT NULL,
        timestamp       BIGINT NOT NULL,
        output          TEXT NOT NULL DEFAULT '',
        run_pid         INTEGER,
        run_pgid        INTEGER,
        run_start_ticks BIGINT,
        run_file        TEXT NOT NULL DEFAULT '',
        deploy_id       TEXT NOT NULL DEFAULT '',
        queued_at       DOUBLE PRECISION NOT NULL,
        claim           TEXT,
        replica         TEXT,
        host            TEXT NOT NULL DEFAULT '',
        runs_dir        TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX serve_records_queue ON serve_records (status, queued_at)",
    """CREATE TABLE serve_replicas (
        id       TEXT PRIMARY KEY,
        host     TEXT NOT NULL,
        runs_dir TEXT NOT NULL,
        seen     TIMESTAMPTZ NOT NULL DEFAULT now()
    )""",
)
SCHEMA = Schema((Migration(1, "the shared job queue and its replicas", _TABLES),))
_FIELDS = (
    "id, request, role, worker, status, message, timestamp, output,"
    " run_pid, run_pgid, run_start_ticks, run_file"
)
_NAMES = tuple(name.strip() for name in _FIELDS.split(","))
_RETURNING = f"RETURNING {_FIELDS}, claim"
_NO_RUN = "run_pid = NULL, run_pgid = NULL, run_start_ticks = NULL, run_file = ''"
_NOW = "extract(epoch FROM clock_timestamp())"
_UPSERT = (
    f"INSERT INTO serve_records ({_FIELDS}, deploy_id, queued_at)"  # noqa: S608 - constant text
    f" VALUES ({', '.join(['%s'] * 14)}) ON CONFLICT (id) DO UPDATE SET"
    " request = excluded.request, role = excluded.role, worker = excluded.worker,"
    " status = excluded.status, message = excluded.message, timestamp = excluded.timestamp,"
    " output = excluded.output, run_pid = excluded.run_pid, run_pgid = excluded.run_pgid,"
    " run_start_ticks = excluded.run_start_ticks, run_file = excluded.run_file,"
    " deploy_id = excluded.deploy_id, queued_at = excluded.queued_at,"
    " claim = NULL, replica = NULL, host = '', runs_dir = ''"
)
_CLAIMED_WRITE = (
    "UPDATE serve_records SET request = %s, role = %s, worker = %s, status = %s,"
    " message = %s, timestamp = %s, output = %s, run_pid = %s, run_pgid = %s,"
    " run_start_ticks = %s, run_file = %s WHERE id = %s AND claim = %s"
)
_ENQUEUE = (
    "INSERT INTO serve_records (id, request, status, message, timestamp, deploy_id, queued_at)"  # noqa: S608 - constant text
    f" VALUES (%s, %s, 0, 'queued', %s, %s, {_NOW}) ON CONFLICT (id) DO UPDATE SET"
    " request = excluded.request, role = NULL, worker = NULL, status = 0, message = 'queued',"
    " timestamp = excluded.timestamp, output = '', deploy_id = excluded.deploy_id,"
    f" queued_at = excluded.queued_at, claim = NULL, replica = NULL, host = '', runs_dir = '',"
    f" {_NO_RUN} WHERE serve_records.status IN (2, 3) AND NOT (serve_records.status = 2"
    " AND excluded.deploy_id <> '' AND serve_records.deploy_id = excluded.deploy_id)"
    f" {_RETURNING}"
)
_CLAIM = (
    "UPDATE serve_records SET status = 1, message = 'claimed', worker = %s, timestamp = %s,"  # noqa: S608 - constant text
    " claim = %s, replica = %s, host = %s, runs_dir = %s WHERE id = (SELECT id FROM"
    " serve_records WHERE status = 0 ORDER BY queued_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)"
    f" {_RETURNING}"
)
_ORPHANS = (
    f"SELECT {_FIELDS}, claim, replica, host, runs_dir FROM serve_records j"  # noqa: S608 - constant text
    " WHERE status = 1 AND NOT EXISTS (SELECT 1 FROM serve_replicas r WHERE r.id = j.replica)"
    " ORDER BY id FOR UPDATE SKIP LOCKED"
)


@dataclass(frozen=True)
class Replica:
    """One `maasflow serve` process sharing the queue: its id, host and runs directory."""

    id: str
    host: str
    runs_dir: str

    @classmethod
    def here(cls, runs_dir: Path) -> Replica:
        """This process: a new id (host name and a random part), this host, `runs_dir`."""
        name = socket.gethostname() or "serve"
        return cls(f"{name}-{uuid.uuid4().hex[:8]}", host_identity(), str(runs_dir))


def host_identity() -> str:
    """The host name, with the boot id where readable: a pid is only meaningful within one
    boot of one host (under systemd's ProcSubset=pid, /proc/sys is hidden: the name alone)."""
    name = socket.gethostname()
    with suppress(OSError):
        return f"{name}/{Path('/proc/sys/kernel/random/boot_id').read_text().strip()}"
    return name


class PostgresRecords:
    """Serve's records in PostgreSQL, shared by every replica that opens the database."""

    def __init__(self, url: PostgresUrl, password: str | None) -> None:
        self.url = url
        self._session = Session(url, password, SCHEMA, COMPONENT, f"--db {url}")

    def _locked(self) -> AbstractContextManager[Connection]:
        """The connection, to one caller at a time (`common.postgres.Session`)."""
        return self._session.locked()

    # -- the `Records` contract ---------------------------------------------------------------

    def put(self, record: Record) -> None:
        """Write `record`: in place of any row when it holds no claim, else only over the row
        its claim still holds (a deleted, retried or given-up job is left alone)."""
        row = row_of(record)
        with self._locked() as db:
            if record.claim is None:
                db.execute(_UPSERT, (*row, record.request.deploy_id or "", time.time()))
            else:
                db.execute(_CLAIMED_WRITE, (*row[1:], record.id, record.claim))

    def get(self, job_id: str) -> Record | None:
        sql = f"SELECT {_FIELDS}, claim FROM serve_records WHERE id = %s"  # noqa: S608 - constant text
        with self._locked() as db:
            row = db.execute(sql, (job_id,)).fetchone()
        return None if row is None else _record(row)

    def all(self) -> list[Record]:
        sql = f'SELECT {_FIELDS}, claim FROM serve_records ORDER BY timestamp, id COLLATE "C"'  # noqa: S608 - constant text
        with self._locked() as db:
            return [_record(row) for row in db.execute(sql)]

    def counts(self) -> dict[Status, int]:
        """How many records stand in each status (statuses with none left out)."""
        sql = "SELECT status, count(*) AS n FROM serve_records GROUP BY status"
        with self._locked() as db:
            return {Status(row["status"]): int(row["n"]) for row in db.execute(sql)}

    def delete(self, job_id: str) -> bool:
        with self._locked() as db:
            return db.execute("DELETE FROM serve_records WHERE id = %s", (job_id,)).rowcount > 0

    def fail_unfinished(self, message: str) -> int:
        """Mark every pending or running record failed with `message`; return how many."""
        sql = (
            "UPDATE serve_records SET status = 3, message = %s, timestamp = %s, claim = NULL,"  # noqa: S608 - constant text
            f" {_NO_RUN} WHERE status IN (0, 1)"
        )
        with self._locked() as db:
            return db.execute(sql, (message, int(time.time()))).rowcount

    def close(self) -> None:
        self._session.close()

    # -- the shared queue ---------------------------------------------------------------------

    def enqueue(self, request: JobRequest) -> tuple[Record, bool]:
        """Queue a run for `request` unless its id is active, or its deploy completed; the
        record, and whether a run was queued. Atomic across replicas (see the docstring)."""
        params = (request.id, _request_json(request), int(time.time()), request.deploy_id or "")
        sql = f"SELECT {_FIELDS}, claim FROM serve_records WHERE id = %s"  # noqa: S608 - constant text
        with self._locked() as db:
            while True:  # again only if the row that kept it out was deleted meanwhile
                row = db.execute(_ENQUEUE, params).fetchone()
                if row is not None:
                    return _record(row), True
                row = db.execute(sql, (request.id,)).fetchone()
                if row is not None:
                    return _record(row), False

    def pending(self) -> int:
        with self._locked() as db:
            row = db.execute("SELECT count(*) AS n FROM serve_records WHERE status = 0").fetchone()
        return 0 if row is None else int(row["n"])

    def claim(self, replica: Replica, worker: int) -> Record | None:
        """Take the oldest pending job for `replica` (running, with a new claim), if any."""
        params = (worker, int(time.time()), uuid.uuid4().hex, replica.id, replica.host)
        with self._locked() as db:
            row = db.execute(_CLAIM, (*params, replica.runs_dir)).fetchone()
        return None if row is None else _record(row)

    def held(self, claims: list[str]) -> set[str]:
        """Which of `claims` still hold a running record."""
        sql = "SELECT claim FROM serve_records WHERE status = 1 AND claim = ANY(%s)"
        with self._locked() as db:
            return {row["claim"] for row in db.execute(sql, (claims,))}

    def running_files(self) -> set[str]:
        """The result files running records name (every replica's)."""
        sql = "SELECT run_file FROM serve_records WHERE status = 1 AND run_file <> ''"
        with self._locked() as db:
            return {row["run_file"] for row in db.execute(sql)}

    # -- replicas -----------------------------------------------------------------------------

    def register(self, replica: Replica) -> None:
        """Add (or renew) `replica`'s row, seen now."""
        with self._locked() as db:
            db.execute(
                "INSERT INTO serve_replicas (id, host, runs_dir) VALUES (%s, %s, %s)"
                " ON CONFLICT (id) DO UPDATE SET seen = now()",
                (replica.id, replica.host, replica.runs_dir),
            )

    def beat(self, replica: Replica) -> bool:
        """Stamp `replica` seen now; False when its row is gone (it was found dead)."""
        with self._locked() as db:
            sql = "UPDATE serve_replicas SET seen = now() WHERE id = %s"
            return db.execute(sql, (replica.id,)).rowcount == 1

    def leave(self, replica: Replica, message: str) -> int:
        """Fail `replica`'s running records with `message`, remove its row; how many failed."""
        sql = (
            "UPDATE serve_records SET status = 3, message = %s, timestamp = %s, claim = NULL,"  # noqa: S608 - constant text
            f" {_NO_RUN} WHERE status = 1 AND replica = %s"
        )
        with self._locked() as db, db.transaction():
            failed = db.execute(sql, (message, int(time.time()), replica.id)).rowcount
            db.execute("DELETE FROM serve_replicas WHERE id = %s", (replica.id,))
        return failed

    def sweep(self, replica: Replica, bound: float) -> tuple[list[Record], list[Record]]:
        """Forget replicas silent for `bound` seconds; of the running jobs no live replica
        holds, adopt those `replica` can watch and fail the others. (adopted, failed)."""
        adopted: list[Record] = []
        failed: list[Record] = []
        with self._locked() as db, db.transaction():
            db.execute(
                "DELETE FROM serve_replicas WHERE seen < now() - make_interval(secs => %s)",
                (bound,),
            )
            for row in db.execute(_ORPHANS).fetchall():
                record = _record(row)
                if _watchable(row, replica) and record.run is not None:
                    adopted.append(_adopt(db, record, replica))
                else:
                    failed.append(
                        _give_up(db, record, f"interrupted: replica {row['replica']} lost")
                    )
        return adopted, failed


def _watchable(row: DictRow, replica: Replica) -> bool:
    """Whether `replica` can watch the row's run by pid: same host (and boot), same runs_dir."""
    return bool(row["host"] == replica.host and row["runs_dir"] == replica.runs_dir)


def _adopt(db: Connection, record: Record, replica: Replica) -> Record:
    claim = uuid.uuid4().hex
    db.execute(
        "UPDATE serve_records SET claim = %s, replica = %s WHERE id = %s",
        (claim, replica.id, record.id),
    )
    return replace(record, claim=claim)


def _give_up(db: Connection, record: Record, message: str) -> Record:
    now = int(time.time())
    db.execute(
        "UPDATE serve_records SET status = 3, message = %s, timestamp = %s, claim = NULL,"  # noqa: S608 - constant text
        f" {_NO_RUN} WHERE id = %s",
        (message, now, record.id),
    )
    return replace(record.moved(Status.FAILED, message, run=None, claim=None), timestamp=now)


def _record(row: DictRow) -> Record:
    return replace(record_of(tuple(row[name] for name in _NAMES)), claim=row["claim"])


def _request_json(request: JobRequest) -> str:
    return row_of(Record(request))[1]  # type: ignore[no-any-return]  # the JSON column
