"""Pending power-off acknowledgements: a person confirms that a machine is really off.

Wake-on-LAN can wake a machine but not stop it, so (as in MAAS's maas-wol example) a
power-off request waits here until someone acknowledges it, from `POST
/power/<machine>/ack` or the `/power/acks` page, or until its deadline passes. Every request
for the same machine that arrives while one is pending joins it: MAAS re-POSTs, and two
requests must never need two acknowledgements. The deadline is the first request's.

A pending entry ends one way: acknowledged, timed out (`AckTimeout`), replaced by a power-on
(`Superseded`), or the service shutting down (`BackendUnavailable`). All its waiters see the
same outcome.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from maasflow.serve.backends import AckTimeout, BackendUnavailable, PowerError, Target

_Outcome = PowerError | None


@dataclass
class PendingAck:
    """One machine's power-off waiting for a person."""

    target: Target
    since: float  # wall clock, for display
    deadline: float  # event-loop clock
    outcome: asyncio.Future[_Outcome]


class AckBoard:
    """The machines whose power-off waits for an acknowledgement, by name."""

    def __init__(self) -> None:
        self._pending: dict[str, PendingAck] = {}
        self._closed = False

    def pending(self) -> list[PendingAck]:
        """Entries still waiting, oldest first (entries past their deadline are timed out)."""
        now = asyncio.get_running_loop().time()
        for name, entry in list(self._pending.items()):
            if entry.deadline <= now:
                self._finish(name, entry, AckTimeout(f"power-off of {name} timed out"))
        return sorted(self._pending.values(), key=lambda entry: entry.since)

    def is_pending(self, name: str) -> bool:
        return name in self._pending

    async def wait(self, target: Target, timeout: float) -> None:
        """Wait for the acknowledgement of `target`'s power-off; raise how it ended if not."""
        if self._closed:
            raise BackendUnavailable("the service is shutting down")
        entry = self._pending.get(target.name) or self._open(target, timeout)
        remaining = max(entry.deadline - asyncio.get_running_loop().time(), 0.0)
        try:
            outcome = await asyncio.wait_for(asyncio.shield(entry.outcome), remaining)
        except TimeoutError:
            late = AckTimeout(f"power-off of {target.name} was not acknowledged in time")
            self._finish(target.name, entry, late)
            outcome = entry.outcome.result()
        if outcome is not None:
            raise outcome

    def ack(self, name: str) -> bool:
        """Acknowledge `name`'s pending power-off; False if none was pending."""
        entry = self._pending.get(name)
        return entry is not None and self._finish(name, entry, None)

    def cancel(self, name: str, error: PowerError) -> bool:
        """End `name`'s pending power-off with `error`; False if none was pending."""
        entry = self._pending.get(name)
        return entry is not None and self._finish(name, entry, error)

    def close(self) -> None:
        """Fail every pending wait (shutdown) and refuse new ones."""
        self._closed = True
        for name, entry in list(self._pending.items()):
            self._finish(name, entry, BackendUnavailable("the service is shutting down"))

    def _open(self, target: Target, timeout: float) -> PendingAck:
        loop = asyncio.get_running_loop()
        entry = PendingAck(target, time.time(), loop.time() + timeout, loop.create_future())
        self._pending[target.name] = entry
        return entry

    def _finish(self, name: str, entry: PendingAck, outcome: _Outcome) -> bool:
        if self._pending.get(name) is entry:
            del self._pending[name]
        if entry.outcome.done():
            return False
        entry.outcome.set_result(outcome)
        return True
