"""Per-machine backoff: an action that keeps failing for one machine waits longer each time.

When MAAS refuses an action for a machine (a 503 that will not heal, a 400 for a bad
distro_series, a 500, no answer), the daemon records a `Setback` for that machine: which
action failed, how many times in a row, the last error, and when it may be sent again. Until
then the daemon does not send that action for that machine, so a doomed machine costs one
request per backoff step, not one per pass, and never holds an action slot while it waits;
every other machine goes on as before. The delay is `maasflow.common.backoff`'s policy
(exponential, equal jitter, capped), so the step after n failures lies in
``[d/2, d]`` with ``d = min(cap, base * 2**(n-1))``.

A different action for the machine (MAAS moved it on) is not held; any action that
succeeds for the machine clears its setback. Setbacks are written through to a
`SetbackStore` (the daemon's state file), so a restart, `-preview` and `maasflow status
--db` all see them. Times are wall-clock seconds, because they outlive the process.
This module decides only *when*; which failures count is the daemon's business.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from maasflow.common.backoff import Backoff

ERROR_LIMIT = 500  # characters of the last error kept with a setback


@dataclass(frozen=True)
class Setback:
    """One machine whose `action` failed `failures` times in a row; held until `retry_at`."""

    system_id: str
    action: str
    failures: int
    retry_at: float  # wall-clock seconds
    last_error: str


class SetbackStore(Protocol):
    """Where setbacks outlive the process (the daemon's state file)."""

    def setbacks(self) -> list[Setback]:
        """Every stored setback."""
        ...

    def save_setback(self, setback: Setback) -> None:
        """Insert or replace the setback of `setback.system_id`."""
        ...

    def clear_setback(self, system_id: str) -> None:
        """Forget the setback of `system_id`, if any."""
        ...


class Setbacks:
    """The setbacks of every machine, kept in memory and written through to a store."""

    def __init__(self, store: SetbackStore | None, backoff: Backoff) -> None:
        self._store = store
        self._backoff = backoff
        self._by_id = {s.system_id: s for s in (store.setbacks() if store else [])}

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Setback]:
        return iter(list(self._by_id.values()))

    def get(self, system_id: str) -> Setback | None:
        return self._by_id.get(system_id)

    def holds(self, system_id: str, action: str, now: float) -> Setback | None:
        """The setback that keeps `action` from being sent for the machine now, if any."""
        setback = self._by_id.get(system_id)
        if setback is None or setback.action != action or setback.retry_at <= now:
            return None
        return setback

    def failed(self, system_id: str, action: str, error: str, now: float) -> Setback:
        """Record one more failure of `action`; the count restarts when the action differs."""
        previous = self._by_id.get(system_id)
        same = previous is not None and previous.action == action
        failures = previous.failures + 1 if same and previous is not None else 1
        retry_at = now + self._backoff.delay(failures)
        setback = Setback(system_id, action, failures, retry_at, error[:ERROR_LIMIT])
        self._by_id[system_id] = setback
        if self._store is not None:
            self._store.save_setback(setback)
        return setback

    def cleared(self, system_id: str) -> None:
        """An action succeeded for the machine (or it left MAAS): forget its setback."""
        if self._by_id.pop(system_id, None) is not None and self._store is not None:
            self._store.clear_setback(system_id)

    def waiting(self, now: float) -> int:
        """How many machines are held right now."""
        return sum(1 for s in self._by_id.values() if s.retry_at > now)
