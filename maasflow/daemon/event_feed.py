"""Following MAAS's event log: which machines changed since the last look, or "list them all".

After one full listing the daemon reads only what MAAS's event log says changed: every
`poll_s` (about a second) it asks for the events after its cursor (`maas.event_log`: the
1000 oldest newer than it, fetched again while a page is full) and hands the loop the
machines they name, to re-read by id. A full listing is due instead (`full_due`):
- at the start, and every `relist_s` (`-relist`, default 5m): changes that write no event
  (a tag, a zone, a new machine enlisted without a status change, a deletion: MAAS 3.6's
  `pre_delete_update_events` unlinks a deleted node's events) are caught there;
- after any error reading the log, or a gap (no successful read for `GAP_S`);
- after more than `MAX_PAGES` full pages in one look: catching up costs more than a listing;
- when MAAS no longer has the cursor: an `after` past MAAS's newest id is no error, just an
  empty page forever (3.6 `api/events.py`: `filter(id__gt=after)`), which happens when its
  database is restored or replaced. An empty look checks the newest id (at most every
  `CURSOR_CHECK_S`); a newest id below the cursor means the log went back.

The cursor is taken just before a full listing (the newest id then), so an event between
the two is read again, never missed. It is written through to a `CursorStore` (the state
file) when it moves; a restart lists everything anyway, and warns when MAAS's log is now
behind the stored cursor. Full listings never come closer than `min_full_s` (the period)
when the log keeps failing: that is plain polling. The module knows nothing of the
lifecycle; the loop (`daemon.loop`) decides what to do with the machines.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Protocol

import structlog

from maasflow.common.clock import SYSTEM_CLOCK, Clock
from maasflow.common.errors import MaasError, StoreError
from maasflow.daemon.maas.event_log import EVENTS_LIMIT, EventPage

log = structlog.get_logger(__name__)

POLL_S = 1.0
DEFAULT_RELIST_S = 300.0
GAP_S = 60.0
MAX_PAGES = 10
CURSOR_CHECK_S = 30.0

EventQuery = Callable[[int | None, int], Awaitable[EventPage]]


class Relist(StrEnum):
    """Why the next pass lists every machine."""

    START = "first listing"
    SCHEDULE = "relist interval"
    ERROR = "event log unreadable"
    GAP = "gap in following the event log"
    FLOOD = "too many events to catch up"
    CURSOR_LOST = "MAAS no longer has the cursor"
    ASKED = "asked for"


class CursorStore(Protocol):
    """Where the cursor outlives the process (the daemon's state file)."""

    def event_cursor(self) -> int | None:
        """The stored cursor, or None."""
        ...

    def save_event_cursor(self, cursor: int) -> None:
        """Store `cursor` in place of the last one."""
        ...


class EventFeed:
    """The cursor into MAAS's event log and when the next full listing is due."""

    def __init__(
        self,
        query: EventQuery,
        *,
        relist_s: float = DEFAULT_RELIST_S,
        min_full_s: float = 0.0,
        store: CursorStore | None = None,
        clock: Clock = SYSTEM_CLOCK,
        page: int = EVENTS_LIMIT,
    ) -> None:
        self._query = query
        self._page = page  # events asked for at once (MAAS's most, but for tests)
        self.relist_s = relist_s
        self.min_full_s = min_full_s
        self._store = store
        self._clock = clock
        self.cursor: int | None = None
        self.relist: Relist | None = Relist.START
        self._listed_at: float | None = None  # monotonic start of the last full listing
        self._read_at = 0.0  # monotonic time of the last successful read of the log
        self._checked_at = 0.0  # monotonic time of the last check of MAAS's newest id

    def full_due(self) -> Relist | None:
        """Why the next pass must list every machine; None when reading events will do."""
        now = self._clock.monotonic()
        if self._listed_at is None:
            return self.relist or Relist.START
        since = now - self._listed_at
        if self.relist is not None:
            return self.relist if since >= self.min_full_s else None
        if since >= self.relist_s:
            return Relist.SCHEDULE
        if now - self._read_at >= GAP_S:
            return Relist.GAP
        return None

    def ask_full(self) -> None:
        """List every machine at the next pass (e.g. after a pause)."""
        self.relist = self.relist or Relist.ASKED

    def waiting(self) -> bool:
        """True while full listings wait out `min_full_s` after the log failed."""
        return self.relist is not None and self._listed_at is not None

    async def before_full_listing(self) -> None:
        """Take the cursor (MAAS's newest event id) just before a full listing.

        An unreadable log leaves the feed wanting a full listing again (plain polling
        until it heals); the listing goes ahead either way."""
        self._listed_at = now = self._clock.monotonic()
        try:
            newest = await self._newest()
        except MaasError as exc:
            self._failed(exc)
            return
        self._check_stored(newest)
        self._moved(newest)
        self.relist = None
        self._read_at = self._checked_at = now

    async def changes(self) -> set[str] | None:
        """The system_ids named by events since the cursor (the cursor moves past them);
        None when a full listing is due instead (`relist` says why)."""
        nodes: set[str] = set()
        for _ in range(MAX_PAGES):
            page = await self._read(self.cursor)
            if page is None:
                return None
            nodes |= page.nodes
            if page.newest is not None:
                self._moved(page.newest)
            if len(page.events) < self._page:
                return nodes if page.events or await self._cursor_held() else None
        self._want(Relist.FLOOD, f"more than {MAX_PAGES * self._page} events since the last look")
        return None

    async def _read(self, after: int | None) -> EventPage | None:
        try:
            page = await self._query(after, self._page)
        except MaasError as exc:
            self._failed(exc)
            return None
        self._read_at = self._clock.monotonic()
        return page

    async def _cursor_held(self) -> bool:
        """After an empty page: False (a full listing is due) when MAAS's newest event id
        is below the cursor; checked at most every CURSOR_CHECK_S."""
        now = self._clock.monotonic()
        if now - self._checked_at < CURSOR_CHECK_S:
            return True
        self._checked_at = now
        try:
            newest = await self._newest()
        except MaasError as exc:
            self._failed(exc)
            return False
        if self.cursor is not None and newest < self.cursor:
            detail = f"its newest event is {newest}, the cursor {self.cursor}"
            self._want(Relist.CURSOR_LOST, detail)
            return False
        return True

    async def _newest(self) -> int:
        page = await self._query(None, 1)
        return page.newest or 0

    def _check_stored(self, newest: int) -> None:
        stored = self._stored()
        if stored is not None and newest < stored:
            log.warning(
                "MAAS's event log is behind the stored cursor: was its database restored "
                "or replaced? Following it from its newest event",
                stored_cursor=stored,
                newest=newest,
            )

    def _stored(self) -> int | None:
        if self._store is None:
            return None
        try:
            return self._store.event_cursor()
        except StoreError as exc:
            log.warning("state store cannot read the event cursor", reason=str(exc))
            return None

    def _moved(self, cursor: int) -> None:
        if cursor == self.cursor:
            return
        self.cursor = cursor
        if self._store is None:
            return
        try:
            self._store.save_event_cursor(cursor)
        except StoreError as exc:  # the cursor in memory is the one followed
            log.warning("state store refused the event cursor", reason=str(exc))

    def _failed(self, exc: MaasError) -> None:
        self._want(Relist.ERROR, str(exc))

    def _want(self, why: Relist, detail: str) -> None:
        if self.relist is None:
            log.warning("full listing due", reason=str(why), detail=detail[:300])
        self.relist = why
