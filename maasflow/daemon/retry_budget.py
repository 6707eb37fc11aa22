"""`-retry-failed N`: how many retries each failed machine has left, and when the next is due.

With N > 0, a machine MAAS lists as Failed commissioning or Failed deployment gets up to N
retries (the lifecycle decides what a retry is: commission again, or release and deploy
again), each one due a backoff after the daemon first saw the machine in its current
status: retry k waits `maasflow.common.backoff`'s delay for attempt k. With the budget
spent, the lifecycle asks for the quarantine tag; once a listing shows the tag the machine
is left alone, and removing the tag in MAAS gives it a fresh budget. Reaching Deployed
gives it a fresh budget too: the next failure is a new story.

A retry is counted when it is sent (before the request leaves), so a daemon that dies
right after sending never retries more than N times; one MAAS certainly refused (an error
answer) is given back. The counts and the "seen quarantined" mark are written through to a
`RetryStore` (the daemon's state file); when each status was first seen is kept in memory
only (after a restart the backoff starts again, which only ever waits longer). This module
reads the listing's tags and status and keeps the books; it decides no action.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import structlog

from maasflow.common.backoff import Backoff
from maasflow.daemon.lifecycle import DEPLOYED, RetryView
from maasflow.daemon.maas.listing import MachineData

log = structlog.get_logger(__name__)

DEFAULT_TAG = "maasflow-quarantine"


@dataclass(frozen=True)
class Recovery:
    """One machine's retries so far, and whether a listing has shown it quarantined."""

    system_id: str
    retries: int
    quarantined: bool = False


class RetryStore(Protocol):
    """Where retry counts outlive the process (the daemon's state file)."""

    def recoveries(self) -> list[Recovery]:
        """Every stored count."""
        ...

    def save_recovery(self, recovery: Recovery) -> None:
        """Insert or replace the count of `recovery.system_id`."""
        ...

    def clear_recovery(self, system_id: str) -> None:
        """Forget the count of `system_id`, if any."""
        ...


@dataclass(frozen=True, slots=True)
class _Since:
    status: int
    retries: int
    seen_at: float  # monotonic
    wait: float  # the backoff drawn for the next retry


class RetryBudgets:
    """Every machine's retry budget; `view()` is what one pass hands the lifecycle."""

    def __init__(
        self,
        store: RetryStore | None,
        limit: int,
        tag: str,
        backoff: Backoff,
        *,
        read_only: bool = False,
    ) -> None:
        self.limit = limit
        self.tag = tag
        self._backoff = backoff
        self._by_id = {r.system_id: r for r in (store.recoveries() if store else [])}
        self._store = None if read_only else store  # a preview reads the books, never writes
        self._since: dict[str, _Since] = {}
        self._due_now: set[str] = set()  # retried by an operator: no backoff before the next

    def get(self, system_id: str) -> Recovery | None:
        return self._by_id.get(system_id)

    def view(self, machine: MachineData, now: float) -> tuple[bool, RetryView | None]:
        """(quarantined, retry view) for `machine` as listed now; keeps the books first."""
        quarantined = self.tag in machine.tag_names
        self._follow_tag(machine, quarantined)
        if self.limit <= 0:
            return quarantined, None
        if machine.status == DEPLOYED and not quarantined:
            self.forget(machine.system_id, keep_since=True)
        used = self.used(machine.system_id)
        due = self._due(machine, used, now)
        return quarantined, RetryView(self.limit, used, due, self.tag)

    def used(self, system_id: str) -> int:
        record = self._by_id.get(system_id)
        return 0 if record is None else record.retries

    def spend(self, system_id: str) -> int:
        """Count one retry before it is sent; returns the retries used now."""
        record = self._by_id.get(system_id) or Recovery(system_id, 0)
        self._save(replace(record, retries=record.retries + 1))
        return record.retries + 1

    def refund(self, system_id: str) -> None:
        """MAAS certainly refused the retry: it does not count."""
        record = self._by_id.get(system_id)
        if record is not None and record.retries > 0:
            self._save(replace(record, retries=record.retries - 1))

    def forget(self, system_id: str, *, keep_since: bool = False) -> None:
        """A fresh budget (Deployed, quarantine lifted, or gone from MAAS)."""
        if not keep_since:
            self._since.pop(system_id, None)
            self._due_now.discard(system_id)
        if self._by_id.pop(system_id, None) is not None and self._store is not None:
            self._store.clear_recovery(system_id)

    def reset(self, system_id: str) -> bool:
        """An operator's retry: a fresh budget, the next retry due at once (not after a
        backoff); True when there was a budget to clear."""
        had = system_id in self._by_id
        self.forget(system_id)
        self._due_now.add(system_id)
        return had

    def _follow_tag(self, machine: MachineData, quarantined: bool) -> None:
        record = self._by_id.get(machine.system_id)
        if quarantined and (record is None or not record.quarantined):
            retries = 0 if record is None else record.retries
            self._save(Recovery(machine.system_id, retries, quarantined=True))
        elif not quarantined and record is not None and record.quarantined:
            log.warning(
                "quarantine lifted: fresh retry budget",
                system_id=machine.system_id,
                hostname=machine.hostname,
                tag=self.tag,
            )
            self.forget(machine.system_id)

    def _due(self, machine: MachineData, used: int, now: float) -> bool:
        if machine.system_id in self._due_now:
            self._due_now.discard(machine.system_id)
            self._since[machine.system_id] = _Since(machine.status, used, now, 0.0)
        since = self._since.get(machine.system_id)
        if since is None or since.status != machine.status or since.retries != used:
            since = _Since(machine.status, used, now, self._backoff.delay(used + 1))
            self._since[machine.system_id] = since
        return now - since.seen_at >= since.wait

    def _save(self, record: Recovery) -> None:
        self._by_id[record.system_id] = record
        if self._store is not None:
            self._store.save_recovery(record)
