"""Provisioning records of `maasflow serve`, kept in SQLite.

One record per machine id: the request as accepted (with the deploy id a client sent, the
key of idempotent POSTs), where its job stands (pending, running, complete, failed), which
worker ran it, a one-line message, when it last changed, the tail of the job's output, and
while it runs, its supervised run (`common.supervision`: pid, group, start time, result
file). A new run for an id replaces the old record.

The store is the service's memory across restarts: the pool (`jobs`) reads the unfinished
records when it starts, adopts the runs that outlived the last service, and fails the rest
("interrupted by restart"): a job is never silently dropped, nor silently run twice.

The file is opened by `maasflow.common.sqlite`: WAL, schema version in `PRAGMA user_version`,
migrations applied at start-up, a file from a newer maasflow refused. Version 1 is the table
as it was before versioning, word for word, so an unversioned records file is adopted with
every row; version 2 adds the run's columns.

`Records` is what the pool needs of a store; `RecordStore` (here) is the SQLite one, the
default, and `postgres_records.PostgresRecords` the one replicas share.

What this module stops at: it knows nothing of HTTP or processes. It is synchronous and used
from one event-loop thread; each write is one statement, so one small transaction.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from enum import IntEnum
from pathlib import Path
from typing import Any, Protocol

from maasflow.common.sqlite import MEMORY, Migration, Schema, open_database
from maasflow.common.supervision import RunHandle

__all__ = ["MEMORY", "SCHEMA", "JobRequest", "Record", "RecordStore", "Records", "Status"]

_SCHEMA = """
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
_RUN = (
    "ALTER TABLE records ADD COLUMN run_pid INTEGER",
    "ALTER TABLE records ADD COLUMN run_pgid INTEGER",
    "ALTER TABLE records ADD COLUMN run_start_ticks INTEGER",
    "ALTER TABLE records ADD COLUMN run_file TEXT NOT NULL DEFAULT ''",
)
SCHEMA = Schema(
    (
        Migration(1, "the records table", (_SCHEMA,)),
        Migration(2, "the supervised run of a running job", _RUN),
    )
)
_FIELDS = (
    "id, request, role, worker, status, message, timestamp, output,"
    " run_pid, run_pgid, run_start_ticks, run_file"
)
_INSERT = f"INSERT OR REPLACE INTO records ({_FIELDS}) VALUES ({', '.join('?' * 12)})"  # noqa: S608 - constant text
_SELECT = f"SELECT {_FIELDS} FROM records"  # noqa: S608 - constant text


class Status(IntEnum):
    """Where a job stands; the numbers are the opencord provisioner's."""

    PENDING = 0
    RUNNING = 1
    COMPLETE = 2
    FAILED = 3


@dataclass(frozen=True)
class JobRequest:
    """A validated provisioning request: what the script will be told."""

    id: str
    name: str
    ip: str
    mac: str
    role: str | None = None
    script: str | None = None
    deploy_id: str | None = None  # a repeated POST with it answers the record it made

    def to_json(self) -> dict[str, str | None]:
        """The request as the API shows it; `deploy_id` only when the client sent one."""
        data = asdict(self)
        if data["deploy_id"] is None:
            del data["deploy_id"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRequest:
        return cls(
            id=str(data.get("id") or ""),
            name=str(data.get("name") or ""),
            ip=str(data.get("ip") or ""),
            mac=str(data.get("mac") or ""),
            role=_optional(data.get("role")),
            script=_optional(data.get("script")),
            deploy_id=_optional(data.get("deploy_id")),
        )


@dataclass(frozen=True)
class Record:
    """The state of one machine's provisioning, as the API shows it."""

    request: JobRequest
    status: Status = Status.PENDING
    worker: int | None = None
    message: str = "queued"
    timestamp: int = 0
    role: str | None = None
    output: str = ""
    run: RunHandle | None = None  # while running: how a restarted service finds the run
    claim: str | None = None  # a shared queue's token of the run that may write it (else None)

    @property
    def id(self) -> str:
        return self.request.id

    @property
    def finished(self) -> bool:
        return self.status in (Status.COMPLETE, Status.FAILED)

    def moved(self, status: Status, message: str, **changes: Any) -> Record:
        """This record in a new status, stamped now."""
        return replace(self, status=status, message=message, timestamp=int(time.time()), **changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "request": self.request.to_json(),
            "worker": self.worker,
            "status": int(self.status),
            "status_name": self.status.name.lower(),
            "message": self.message,
            "timestamp": self.timestamp,
            "role": self.role,
        }


class Records(Protocol):
    """Where records are kept: this module's SQLite file, or PostgreSQL for replicas
    (`postgres_records`). Every call is atomic; `put` of a record holding a `claim` writes
    only while the stored record still holds that claim (SQLite has no claims)."""

    def put(self, record: Record) -> None: ...
    def get(self, job_id: str) -> Record | None: ...
    def all(self) -> list[Record]: ...
    def counts(self) -> dict[Status, int]: ...
    def delete(self, job_id: str) -> bool: ...
    def fail_unfinished(self, message: str) -> int: ...
    def close(self) -> None: ...


class RecordStore:
    """Records in one SQLite file (or in memory for `:memory:`)."""

    def __init__(self, path: Path | str = MEMORY) -> None:
        self.path = str(path)
        self._db = open_database(path, SCHEMA, label=f"--db {self.path}")

    def put(self, record: Record) -> None:
        """Insert or replace the record for its id."""
        row = row_of(record)
        self._write(_INSERT, row)

    def get(self, job_id: str) -> Record | None:
        cursor = self._db.execute(_SELECT + " WHERE id = ?", (job_id,))
        row = cursor.fetchone()
        return None if row is None else record_of(row)

    def all(self) -> list[Record]:
        cursor = self._db.execute(_SELECT + " ORDER BY timestamp, id")
        return [record_of(row) for row in cursor.fetchall()]

    def counts(self) -> dict[Status, int]:
        """How many records stand in each status (statuses with none left out)."""
        rows = self._db.execute("SELECT status, COUNT(*) FROM records GROUP BY status")
        return {Status(status): int(count) for status, count in rows.fetchall()}

    def delete(self, job_id: str) -> bool:
        return self._write("DELETE FROM records WHERE id = ?", (job_id,)) > 0

    def fail_unfinished(self, message: str) -> int:
        """Mark every pending or running record failed with `message`; return how many."""
        sql = (
            "UPDATE records SET status = ?, message = ?, timestamp = ?, run_pid = NULL,"
            " run_pgid = NULL, run_start_ticks = NULL, run_file = '' WHERE status IN (?, ?)"
        )
        args = (Status.FAILED, message, int(time.time()), Status.PENDING, Status.RUNNING)
        return self._write(sql, args)

    def close(self) -> None:
        self._db.close()

    def _write(self, sql: str, args: tuple[Any, ...]) -> int:
        return self._db.execute(sql, args).rowcount  # autocommit: one statement, one transaction


def _optional(value: Any) -> str | None:
    return None if value is None else str(value)


def row_of(record: Record) -> tuple[Any, ...]:
    """The record as the 12 columns of `_FIELDS` (its claim is not among them)."""
    request = json.dumps(record.request.to_json())
    run = record.run
    return (
        record.id,
        request,
        record.role,
        record.worker,
        int(record.status),
        record.message,
        record.timestamp,
        record.output,
        None if run is None else run.pid,
        None if run is None else run.pgid,
        None if run is None else run.start_ticks,
        "" if run is None else run.result_file,
    )


def record_of(row: tuple[Any, ...]) -> Record:
    """The record 12 columns in `_FIELDS`' order hold."""
    job_id, request, role, worker, status, message, timestamp, output = row[:8]
    pid, pgid, ticks, run_file = row[8:]
    data = json.loads(request)
    data["id"] = job_id
    return Record(
        request=JobRequest.from_json(data),
        status=Status(status),
        worker=worker,
        message=message,
        timestamp=timestamp,
        role=role,
        output=output,
        run=None if None in (pid, pgid, ticks) else RunHandle(pid, pgid, ticks, run_file),
    )
