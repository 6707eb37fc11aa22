"""Leadership: of the daemons sharing one PostgreSQL database, exactly one acts.

Any number of daemons may run against one database (`-db postgresql://...`); each holds a
dedicated session (its own connection, not the store's) and tries, every quarter lease,
`pg_try_advisory_lock` on one key. PostgreSQL grants a session-level advisory lock to one
session at a time and drops it when that session ends, however it ends. The one that gets
it leads: it bumps the epoch in the `maasflow_leader` row (the fencing token, with the
holder's host:pid and since when, which a standby reads to say who leads), and acts; the
others are standbys, healthy and idle.

The lease. The session is opened with `idle_session_timeout` = the lease, so PostgreSQL
itself ends it (and so frees the lock) once the leader has been silent for a lease: a
leader SIGKILLed (its socket closes: freed at once), paused (SIGSTOP), on a host gone or
behind a cut network all lose the lock within a lease, and a standby takes it at its next
try. The leader heartbeats (`SELECT 1`) every quarter lease, and counts its leadership
valid only until the lease after the *sending* of its last answered heartbeat: the server's
idle clock started after that moment, so the leader's own deadline always falls before the
server's. Failover bound: a lease plus a quarter lease (the standby's next try).

Fencing. Every write the daemon makes to MAAS (the client's `before_write`) or to a
provisioner (`Attempts`) first calls `fence()`, which raises `NotLeader` unless this daemon
leads and its lease has not run out by its own monotonic clock. So a leader whose session
broke, or that was paused past its lease and woke up, refuses its next write instead of
sending it; it then reports the loss (`lost`), and the daemon stops and exits 1 (systemd
restarts it, as a standby). A thread (`watch`) ends the process the same way when the lease
runs out while the event loop is stuck (a store call on a network gone dark never returns).
What this cannot close: a write already past its fence check when the process is frozen
goes out when it thaws; each such write is one request, the lifecycle reads MAAS's state
before deciding, and a provisioner keys jobs by deploy id.

Where it stops: it knows nothing of passes or machines; the daemon's wiring campaigns,
keeps the heartbeat running (`hold`), and stops on `lost`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

import psycopg
import structlog

from maasflow.common.backoff import interruptible_sleep
from maasflow.common.errors import ConfigError, NotLeader
from maasflow.common.postgres import AsyncConnection, PostgresUrl, connect_async

log = structlog.get_logger(__name__)

LOCK_KEY = 0x6D666C64  # "mfld": the advisory lock the leader holds
MIN_SERVER_VERSION = 140000  # idle_session_timeout came with PostgreSQL 14
BEATS_PER_LEASE = 4
_TAKE_OFFICE = (
    "INSERT INTO maasflow_leader (id, epoch, holder, since) VALUES (1, 1, %s, %s)"
    " ON CONFLICT (id) DO UPDATE SET epoch = maasflow_leader.epoch + 1,"
    " holder = excluded.holder, since = excluded.since RETURNING epoch"
)


class Role(StrEnum):
    """Where this daemon stands: acting, waiting to act, or no longer allowed to act."""

    LEADER = "leader"
    STANDBY = "standby"
    LOST = "lost"


def holder_name() -> str:
    """How this daemon is named as leader: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Leadership:
    """This daemon's claim to lead, on its own PostgreSQL session."""

    def __init__(
        self,
        url: PostgresUrl,
        password: str | None,
        *,
        lease: float,
        holder: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.url = url
        self.lease = lease
        self.holder = holder or holder_name()
        self.role = Role.STANDBY
        self.epoch: int | None = None
        self.leader = ""  # who leads, as last seen (this daemon's holder when it leads)
        self.lost = asyncio.Event()
        self.on_change: Callable[[Role], None] = lambda role: None
        # Told after each try, with the wait before the next (the watchdog's `Liveness`):
        # a standby campaigns for as long as the leader lives, and that is no hang.
        self.on_try: Callable[[float], None] = lambda wait: None
        self._password = password
        self._clock = clock
        self._sleep = sleep
        self._db: AsyncConnection | None = None
        self._valid_until = 0.0
        self._closed = False

    @property
    def beat(self) -> float:
        """Seconds between heartbeats, and between a standby's tries."""
        return self.lease / BEATS_PER_LEASE

    def describe(self) -> dict[str, Any]:
        """Role, who leads and the epoch, for /healthz, /state and `maasflow status`."""
        return {"role": str(self.role), "leader": self.leader, "epoch": self.epoch}

    # -- becoming leader ----------------------------------------------------------------

    async def campaign(self, stop: asyncio.Event) -> bool:
        """Try every beat until this daemon leads (True) or `stop` is set (False)."""
        while not stop.is_set():
            try:
                if await self._try():
                    return True
            except psycopg.Error as exc:
                log.warning("cannot reach PostgreSQL to campaign; retrying", reason=_why(exc))
                await self._drop()
            self.on_try(self.beat)
            await interruptible_sleep(self.beat, stop, self._sleep)
        return False

    async def _try(self) -> bool:
        db = await self._session()
        sent = self._clock()
        cursor = await db.execute("SELECT pg_try_advisory_lock(%s) AS got", (LOCK_KEY,))
        row = await cursor.fetchone()
        if row is None or not row["got"]:
            self.leader = await _current_leader(db)
            return False
        cursor = await db.execute(_TAKE_OFFICE, (self.holder, time.time()))
        taken = await cursor.fetchone()
        self.epoch = None if taken is None else int(taken["epoch"])
        self._valid_until = sent + self.lease
        self.leader = self.holder
        self._become(Role.LEADER)
        log.info("leading", holder=self.holder, epoch=self.epoch, lease_s=self.lease)
        return True

    async def _session(self) -> AsyncConnection:
        """The dedicated session, opened (with the lease as its idle timeout) when needed."""
        if self._db is not None and not self._db.closed:
            return self._db
        db = await connect_async(self.url, self._password, label=f"-db {self.url}")
        if db.info.server_version < MIN_SERVER_VERSION:
            await db.close()
            raise ConfigError(
                f"-db {self.url}: leadership needs PostgreSQL 14 or newer "
                f"(idle_session_timeout); this server is {db.info.server_version}"
            )
        timeout_ms = str(int(self.lease * 1000))
        await db.execute("SELECT set_config('idle_session_timeout', %s, false)", (timeout_ms,))
        self._db = db
        return db

    # -- leading ------------------------------------------------------------------------

    async def hold(self) -> None:
        """Heartbeat every beat while leading; on a failed one, lose (run it as a task)."""
        while self.role is Role.LEADER:
            await self._sleep(self.beat)
            sent = self._clock()
            try:
                await asyncio.wait_for(self._heartbeat(), self.beat)
            except (psycopg.Error, TimeoutError) as exc:
                self._lose(f"heartbeat failed: {_why(exc)}")
                return
            if self._clock() >= sent + self.lease or sent >= self._valid_until:
                self._lose("the lease ran out before the heartbeat was answered")
                return
            self._valid_until = sent + self.lease

    async def _heartbeat(self) -> None:
        if self._db is None:
            raise psycopg.OperationalError("no session")
        await self._db.execute("SELECT 1")

    def fence(self) -> None:
        """Return only while this daemon leads within its lease; else raise NotLeader."""
        if self.role is Role.LEADER and self._clock() < self._valid_until:
            return
        if self.role is Role.LEADER:
            self._lose("the lease ran out without an answered heartbeat")
        raise NotLeader(f"not the leader ({self.role}): this daemon must not act")

    def watch(self, on_expired: Callable[[], None]) -> threading.Thread:
        """Call `on_expired` from a thread of its own once this daemon may no longer act.

        That is: the lease ran out by the clock, or the leadership was lost. It does not rely
        on the event loop, which a blocked call (a store query on a dark network) can hold
        longer than a lease: the process is then ended from this thread (the caller's
        `on_expired`), so nothing it was blocked in can write afterwards.
        """

        def run() -> None:
            while not self._closed:
                time.sleep(self.beat / 2)
                if self.role is Role.LOST or (
                    self.role is Role.LEADER and self._clock() >= self._valid_until
                ):
                    on_expired()
                    return

        thread = threading.Thread(target=run, name="lease-watch", daemon=True)
        thread.start()
        return thread

    def _lose(self, reason: str) -> None:
        if self.role is not Role.LEADER:
            return
        self._become(Role.LOST)
        log.error("leadership lost: no more writes; stopping", reason=reason, epoch=self.epoch)
        self.lost.set()

    def _become(self, role: Role) -> None:
        self.role = role
        self.on_change(role)

    async def close(self) -> None:
        """End the session (and so give up the lock, if held); the watch ends too."""
        self._closed = True
        await self._drop()

    async def _drop(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await db.close()


async def _current_leader(db: AsyncConnection) -> str:
    cursor = await db.execute("SELECT holder, epoch FROM maasflow_leader WHERE id = 1")
    row = await cursor.fetchone()
    return "" if row is None else f"{row['holder']} (epoch {row['epoch']})"


def _why(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
