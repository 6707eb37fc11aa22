"""The daemon's provisioning records in PostgreSQL: `ProvisionStore` for more than one host.

The same tables as the SQLite store (`daemon.store`: provision, setback, recovery, event,
applied_deploy, desire, sighting),
with the same columns and meaning, created by this module's own versioned migrations
(`common.postgres.migrate`, component "daemon") when the store opens. One connection, used
by one caller at a time (a lock), keeps the contract's "each call atomic": every write is
one statement or one transaction, and `start`'s insert-or-count is one `INSERT ... ON
CONFLICT DO UPDATE`, which PostgreSQL makes atomic across hosts too. A connection that broke
(the server restarted, the network was cut) is a `StoreError` for the call that found it,
and the next call connects again. Where the rows come from is all this module knows: who
may write (leadership, fencing) is decided elsewhere.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from maasflow.common.postgres import Connection, PostgresUrl, Session
from maasflow.common.sqlite import Migration, Schema
from maasflow.common.supervision import RunHandle
from maasflow.daemon.adoption import Sighting
from maasflow.daemon.history import HISTORY_LIMIT, Event, clip
from maasflow.daemon.lifecycle import ProvisionState
from maasflow.daemon.retry_budget import Recovery
from maasflow.daemon.setbacks import Setback
from maasflow.daemon.store import (
    DESIRE_COLUMNS,
    ProvisionRecord,
    ProvisionStore,
    _clip,  # one clipping rule for both stores
    _mode,  # one check of `mode` for both stores
    desire_row,
    new_deploy_id,
)
from maasflow.daemon.stored_desire import StoredDesire

COMPONENT = "daemon"
_TABLES = (
    """CREATE TABLE provision (
        system_id       TEXT PRIMARY KEY,
        state           TEXT NOT NULL CHECK (state IN ('running', 'complete', 'failed')),
        mode            TEXT NOT NULL CHECK (mode IN ('script', 'url')),
        attempts        INTEGER NOT NULL,
        started_at      DOUBLE PRECISION NOT NULL,
        updated_at      DOUBLE PRECISION NOT NULL,
        finished_at     DOUBLE PRECISION,
        next_attempt_at DOUBLE PRECISION,
        last_error      TEXT NOT NULL DEFAULT '',
        output_tail     TEXT NOT NULL DEFAULT '',
        hostname        TEXT NOT NULL DEFAULT '',
        deploy_id       TEXT NOT NULL DEFAULT '',
        run_pid         INTEGER,
        run_pgid        INTEGER,
        run_start_ticks BIGINT,
        run_file        TEXT NOT NULL DEFAULT ''
    )""",
    """CREATE TABLE setback (
        system_id  TEXT PRIMARY KEY,
        action     TEXT NOT NULL,
        failures   INTEGER NOT NULL,
        retry_at   DOUBLE PRECISION NOT NULL,
        last_error TEXT NOT NULL DEFAULT ''
    )""",
    """CREATE TABLE recovery (
        system_id   TEXT PRIMARY KEY,
        retries     INTEGER NOT NULL,
        quarantined BOOLEAN NOT NULL DEFAULT FALSE
    )""",
)
_LEADER = (
    """CREATE TABLE maasflow_leader (
        id     INTEGER PRIMARY KEY CHECK (id = 1),
        epoch  BIGINT NOT NULL,
        holder TEXT NOT NULL,
        since  DOUBLE PRECISION NOT NULL
    )""",
)
_EVENT = (
    """CREATE TABLE event (
        id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        system_id TEXT NOT NULL,
        hostname  TEXT NOT NULL DEFAULT '',
        at        DOUBLE PRECISION NOT NULL,
        kind      TEXT NOT NULL,
        action    TEXT NOT NULL,
        outcome   TEXT NOT NULL,
        detail    TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX event_by_machine ON event (system_id, id)",
)
_APPLIED = (
    """CREATE TABLE applied_deploy (
        system_id TEXT PRIMARY KEY,
        params    TEXT NOT NULL
    )""",
)
_DESIRE = (
    """CREATE TABLE desire (
        system_id TEXT PRIMARY KEY,
        hostname  TEXT NOT NULL DEFAULT '',
        desire    TEXT NOT NULL,
        set_at    DOUBLE PRECISION NOT NULL,
        set_by    TEXT NOT NULL DEFAULT ''
    )""",
)
_SIGHTING = (
    """CREATE TABLE sighting (
        system_id    TEXT PRIMARY KEY,
        first_status INTEGER NOT NULL,
        first_seen   DOUBLE PRECISION NOT NULL,
        adopted      BOOLEAN NOT NULL
    )""",
)
_CURSOR = "CREATE TABLE event_cursor (id INTEGER PRIMARY KEY CHECK (id = 1), after BIGINT NOT NULL)"
SCHEMA = Schema(
    (
        Migration(1, "provision records (deploy id, run), setbacks and retry counts", _TABLES),
        Migration(2, "the leader row: fencing epoch and holder (`daemon.leadership`)", _LEADER),
        Migration(3, "each machine's recent history (`daemon.history`)", _EVENT),
        Migration(4, "the deploy parameters maasflow last sent each machine", _APPLIED),
        Migration(5, "desires stored over HTTP (`daemon.stored_desire`)", _DESIRE),
        Migration(6, "each machine's first sighting (`daemon.adoption`)", _SIGHTING),
        Migration(7, "the cursor into MAAS's event log (`daemon.event_feed`)", (_CURSOR,)),
    )
)
_COLUMNS = (
    "system_id, state, mode, attempts, started_at, updated_at, finished_at, "
    "next_attempt_at, last_error, output_tail, hostname, deploy_id, "
    "run_pid, run_pgid, run_start_ticks, run_file"
)
_EVENT_COLUMNS = "system_id, hostname, at, kind, action, outcome, detail"
_NO_RUN = "run_pid = NULL, run_pgid = NULL, run_start_ticks = NULL, run_file = ''"
_START = (
    "INSERT INTO provision (system_id, state, mode, attempts, started_at, updated_at,"  # noqa: S608 - constant text
    " hostname, deploy_id) VALUES (%s, 'running', %s, 1, %s, %s, %s, %s)"
    " ON CONFLICT (system_id) DO UPDATE SET state = 'running', mode = excluded.mode,"
    " attempts = provision.attempts + 1, started_at = excluded.started_at,"
    " updated_at = excluded.updated_at, finished_at = NULL, next_attempt_at = NULL,"
    " output_tail = '', hostname = excluded.hostname,"
    " deploy_id = CASE provision.deploy_id WHEN '' THEN excluded.deploy_id"
    f" ELSE provision.deploy_id END, {_NO_RUN} RETURNING {_COLUMNS}"
)


class PostgresStore(ProvisionStore):
    """Provisioning records in one PostgreSQL database, shared by every host that opens it."""

    def __init__(
        self, url: PostgresUrl, password: str | None, clock: Callable[[], float] = time.time
    ) -> None:
        self.url = url
        self._clock = clock
        self._session = Session(url, password, SCHEMA, COMPONENT, f"-db {url}")

    def _locked(self) -> AbstractContextManager[Connection]:
        """The connection, to one caller at a time (`common.postgres.Session`)."""
        return self._session.locked()

    def _one(self, db: Connection, sql: str, params: tuple[Any, ...]) -> ProvisionRecord | None:
        row = db.execute(sql, params).fetchone()
        return None if row is None else ProvisionRecord(**row)

    def get(self, system_id: str) -> ProvisionRecord | None:
        with self._locked() as db:
            return self._get(db, system_id)

    def _get(self, db: Connection, system_id: str) -> ProvisionRecord | None:
        sql = f"SELECT {_COLUMNS} FROM provision WHERE system_id = %s"  # noqa: S608 - constant columns
        return self._one(db, sql, (system_id,))

    def all(self) -> list[ProvisionRecord]:
        sql = f'SELECT {_COLUMNS} FROM provision ORDER BY system_id COLLATE "C"'  # noqa: S608 - constant columns
        with self._locked() as db:
            return [ProvisionRecord(**row) for row in db.execute(sql)]

    def start(self, system_id: str, hostname: str, mode: str) -> ProvisionRecord:
        checked = _mode(mode)
        now = self._clock()
        params = (system_id, checked.value, now, now, hostname, new_deploy_id())
        with self._locked() as db:
            record = self._one(db, _START, params)
        assert record is not None  # RETURNING gives the row just written
        return record

    def set_run(self, system_id: str, run: RunHandle) -> ProvisionRecord | None:
        now = self._clock()
        with self._locked() as db, db.transaction():
            db.execute(
                "UPDATE provision SET run_pid = %s, run_pgid = %s, run_start_ticks = %s,"
                " run_file = %s, updated_at = %s WHERE system_id = %s AND state = 'running'",
                (run.pid, run.pgid, run.start_ticks, run.result_file, now, system_id),
            )
            return self._get(db, system_id)

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
        sql = (
            "UPDATE provision SET state = %s, last_error = %s, output_tail = %s,"  # noqa: S608 - constant text
            f" next_attempt_at = %s, finished_at = %s, updated_at = %s, {_NO_RUN}"
            f" WHERE system_id = %s RETURNING {_COLUMNS}"
        )
        params = (state.value, _clip(error), _clip(tail), next_at, now, now, system_id)
        with self._locked() as db:
            return self._one(db, sql, params)

    def clear(self, system_id: str) -> bool:
        with self._locked() as db:
            cursor = db.execute("DELETE FROM provision WHERE system_id = %s", (system_id,))
            return cursor.rowcount > 0

    def retry_now(self, system_id: str) -> ProvisionRecord | None:
        now = self._clock()
        sql = (
            "UPDATE provision SET next_attempt_at = %s, updated_at = %s"  # noqa: S608 - constant text
            f" WHERE system_id = %s AND state = 'failed' RETURNING {_COLUMNS}"
        )
        with self._locked() as db:
            return self._one(db, sql, (now, now, system_id))

    # -- machines' histories (as in `daemon.store`) --------------------------------------------

    def add_events(self, events: Sequence[Event]) -> None:
        rows = [
            (e.system_id, e.hostname, e.at, e.kind, e.action, e.outcome, clip(e.detail))
            for e in events
        ]
        machines = list(dict.fromkeys(e.system_id for e in events))
        with self._locked() as db, db.transaction(), db.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO event ({_EVENT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)",  # noqa: S608 - constant columns
                rows,
            )
            cursor.executemany(
                "DELETE FROM event WHERE system_id = %s AND id <= (SELECT id FROM event"
                " WHERE system_id = %s ORDER BY id DESC LIMIT 1 OFFSET %s)",
                [(sid, sid, HISTORY_LIMIT) for sid in machines],
            )

    def events(self, system_id: str, limit: int = HISTORY_LIMIT) -> list[Event]:
        sql = (
            f"SELECT {_EVENT_COLUMNS} FROM event WHERE system_id = %s"  # noqa: S608 - constant columns
            " ORDER BY id DESC LIMIT %s"
        )
        with self._locked() as db:
            rows = list(db.execute(sql, (system_id, max(limit, 0))))
        return [Event(**row) for row in reversed(rows)]

    def histories(self) -> list[Event]:
        sql = f"SELECT {_EVENT_COLUMNS} FROM event ORDER BY system_id, id"  # noqa: S608 - constant columns
        with self._locked() as db:
            return [Event(**row) for row in db.execute(sql)]

    # -- desires stored over HTTP (as in `daemon.store`) -------------------------------------

    def desires(self) -> list[StoredDesire]:
        sql = f'SELECT {DESIRE_COLUMNS} FROM desire ORDER BY system_id COLLATE "C"'  # noqa: S608 - constant columns
        with self._locked() as db:
            return [StoredDesire.decoded(**row) for row in db.execute(sql)]

    def save_desire(self, stored: StoredDesire) -> None:
        with self._locked() as db:
            db.execute(
                f"INSERT INTO desire ({DESIRE_COLUMNS}) VALUES (%s, %s, %s, %s, %s)"  # noqa: S608 - constant columns
                " ON CONFLICT (system_id) DO UPDATE SET hostname = excluded.hostname,"
                " desire = excluded.desire, set_at = excluded.set_at, set_by = excluded.set_by",
                desire_row(stored),
            )

    def clear_desire(self, system_id: str) -> bool:
        with self._locked() as db:
            cursor = db.execute("DELETE FROM desire WHERE system_id = %s", (system_id,))
            return cursor.rowcount > 0

    # -- setbacks and retry counts (as in `daemon.store`) -------------------------------------

    def setbacks(self) -> list[Setback]:
        sql = "SELECT system_id, action, failures, retry_at, last_error FROM setback"
        with self._locked() as db:
            return [Setback(**row) for row in db.execute(sql)]

    def save_setback(self, setback: Setback) -> None:
        with self._locked() as db:
            db.execute(
                "INSERT INTO setback (system_id, action, failures, retry_at, last_error)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (system_id) DO UPDATE SET"
                " action = excluded.action, failures = excluded.failures,"
                " retry_at = excluded.retry_at, last_error = excluded.last_error",
                (setback.system_id, setback.action, setback.failures, setback.retry_at,
                 _clip(setback.last_error)),
            )  # fmt: skip

    def clear_setback(self, system_id: str) -> None:
        with self._locked() as db:
            db.execute("DELETE FROM setback WHERE system_id = %s", (system_id,))

    def recoveries(self) -> list[Recovery]:
        sql = "SELECT system_id, retries, quarantined FROM recovery"
        with self._locked() as db:
            return [Recovery(**row) for row in db.execute(sql)]

    def save_recovery(self, recovery: Recovery) -> None:
        with self._locked() as db:
            db.execute(
                "INSERT INTO recovery (system_id, retries, quarantined) VALUES (%s, %s, %s)"
                " ON CONFLICT (system_id) DO UPDATE SET retries = excluded.retries,"
                " quarantined = excluded.quarantined",
                (recovery.system_id, recovery.retries, recovery.quarantined),
            )

    def clear_recovery(self, system_id: str) -> None:
        with self._locked() as db:
            db.execute("DELETE FROM recovery WHERE system_id = %s", (system_id,))

    # -- applied deploy parameters (as in `daemon.store`) --------------------------------------

    def applied_deploys(self) -> dict[str, dict[str, str]]:
        with self._locked() as db:
            rows = list(db.execute("SELECT system_id, params FROM applied_deploy"))
        return {row["system_id"]: json.loads(row["params"]) for row in rows}

    def save_applied(self, system_id: str, params: Mapping[str, str]) -> None:
        with self._locked() as db:
            db.execute(
                "INSERT INTO applied_deploy (system_id, params) VALUES (%s, %s)"
                " ON CONFLICT (system_id) DO UPDATE SET params = excluded.params",
                (system_id, json.dumps(dict(params), sort_keys=True)),
            )

    # -- first sightings (as in `daemon.store`) -------------------------------------------------

    def sightings(self) -> list[Sighting]:
        sql = "SELECT system_id, first_status, first_seen, adopted FROM sighting"
        with self._locked() as db:
            return [Sighting(**row) for row in db.execute(sql)]

    def save_sighting(self, sighting: Sighting) -> None:
        with self._locked() as db:
            db.execute(
                "INSERT INTO sighting (system_id, first_status, first_seen, adopted)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (system_id) DO UPDATE SET"
                " first_status = excluded.first_status, first_seen = excluded.first_seen,"
                " adopted = excluded.adopted",
                (sighting.system_id, sighting.first_status, sighting.first_seen,
                 sighting.adopted),
            )  # fmt: skip

    def event_cursor(self) -> int | None:
        with self._locked() as db:
            row = db.execute("SELECT after FROM event_cursor WHERE id = 1").fetchone()
        return None if row is None else int(row["after"])

    def save_event_cursor(self, cursor: int) -> None:
        with self._locked() as db:
            db.execute(
                "INSERT INTO event_cursor (id, after) VALUES (1, %s)"
                " ON CONFLICT (id) DO UPDATE SET after = excluded.after",
                (cursor,),
            )

    # -- filling a new store (`maasflow migrate-store`) ----------------------------------------

    def fill(
        self,
        records: list[ProvisionRecord],
        setbacks: list[Setback],
        recoveries: list[Recovery],
        events: list[Event],
        applied: Mapping[str, Mapping[str, str]] | None = None,
        desires: Sequence[StoredDesire] = (),
        sightings: Sequence[Sighting] = (),
    ) -> None:
        """Write these rows, exactly as they are, into this empty store: all of them or none.

        A store already holding a row is refused (ValueError) and left as it was, so two
        installations are never mixed by accident.
        """
        with self._locked() as db, db.transaction():
            db.execute(
                "LOCK TABLE provision, setback, recovery, event, applied_deploy, desire, sighting"
                " IN EXCLUSIVE MODE"
            )
            held = _row_count(db)
            if held:
                raise ValueError(f"it already holds {held} rows; give an empty database")
            _insert(db, "provision", _COLUMNS, [_values(r) for r in records])
            _insert(db, "setback", "system_id, action, failures, retry_at, last_error",
                    [_values(s) for s in setbacks])  # fmt: skip
            _insert(db, "recovery", "system_id, retries, quarantined",
                    [_values(r) for r in recoveries])  # fmt: skip
            _insert(db, "event", _EVENT_COLUMNS, [_values(e) for e in events])  # in id order
            rows = [
                (sid, json.dumps(dict(p), sort_keys=True)) for sid, p in (applied or {}).items()
            ]
            _insert(db, "applied_deploy", "system_id, params", rows)
            _insert(db, "desire", DESIRE_COLUMNS, [desire_row(d) for d in desires])
            _insert(db, "sighting", "system_id, first_status, first_seen, adopted",
                    [_values(s) for s in sightings])  # fmt: skip

    def close(self) -> None:
        self._session.close()


def _row_count(db: Connection) -> int:
    row = db.execute(
        "SELECT (SELECT count(*) FROM provision) + (SELECT count(*) FROM setback)"
        " + (SELECT count(*) FROM recovery) + (SELECT count(*) FROM event)"
        " + (SELECT count(*) FROM applied_deploy) + (SELECT count(*) FROM desire)"
        " + (SELECT count(*) FROM sighting) AS n"
    ).fetchone()
    return 0 if row is None else int(row["n"])


def _values(row: ProvisionRecord | Setback | Recovery | Event | Sighting) -> tuple[Any, ...]:
    return dataclasses.astuple(row)


def _insert(db: Connection, table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
    """COPY `rows` into `table` (constant names from this module)."""
    with db.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
