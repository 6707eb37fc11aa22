"""Pending power-off acknowledgements: a person confirms that a machine is really off.

Wake-on-LAN can wake a machine but not stop it, so (as in MAAS's maas-wol example) a
power-off request waits here until someone acknowledges it, from `POST
/power/<machine>/ack` or the `/power/acks` page, or until its deadline passes. Every request
for the same machine that arrives while one is pending joins it: MAAS re-POSTs, and two
requests must never need two acknowledgements. The deadline is the first request's.

A pending entry ends one way: acknowledged, timed out (`AckTimeout`), replaced by a power-on
(`Superseded`), or the service shutting down (`BackendUnavailable`). All its waiters see the
same outcome.

The deadline is meant to span MAAS's whole power action. MAAS 3.5/3.6 runs it as a workflow
of 3 attempts, each at most 5 minutes and 1 s then 2 s apart
(`src/maastemporalworker/workflow/power.py`); each attempt runs MAAS's power CLI, whose
confirm loop re-POSTs the off after every error (waits 1, 2, 2, 4, 6, 8, 12 s). Those
re-POSTs join the entry, so the machine stays listed once for as long as MAAS waits. Once an
entry times out, further power-offs of that machine are refused at once (`AckTimeout`) until
MAAS's window since the entry opened (`MAAS_ACTION_WINDOW`) has passed, or a power-on comes:
MAAS then learns of the failure within its confirm loops' ~35 s per attempt, and the machine
does not reappear on the page with nobody waiting for it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from maasflow.serve.backends import AckTimeout, BackendUnavailable, PowerError, Target

_Outcome = PowerError | None

# MAAS 3.5/3.6: 3 attempts of at most 300 s, retried 1 s then 2 s apart (Temporal's default
# backoff), plus a few seconds for its power CLI to start each time.
MAAS_ACTION_WINDOW = 3 * 300.0 + 1 + 2 + 30


@dataclass
class PendingAck:
    """One machine's power-off waiting for a person."""

    target: Target
    since: float  # wall clock, for display
    opened: float  # event-loop clock
    deadline: float  # event-loop clock
    outcome: asyncio.Future[_Outcome]


class AckBoard:
    """The machines whose power-off waits for an acknowledgement, by name."""

    def __init__(self, window: float = MAAS_ACTION_WINDOW) -> None:
        self._window = window
        self._pending: dict[str, PendingAck] = {}
        self._refused_until: dict[str, float] = {}  # name → event-loop time (after a timeout)
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
        if self._refused_until.get(target.name, 0.0) > asyncio.get_running_loop().time():
            raise AckTimeout(
                f"power-off of {target.name} was not acknowledged in time; MAAS's retries "
                "of it are refused until its power action ends"
            )
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
        """End `name`'s pending power-off with `error` (and forget a timed-out one, so the
        next power-off waits afresh); False if none was pending."""
        self._refused_until.pop(name, None)
        entry = self._pending.get(name)
        return entry is not None and self._finish(name, entry, error)

    def close(self) -> None:
        """Fail every pending wait (shutdown) and refuse new ones."""
        self._closed = True
        for name, entry in list(self._pending.items()):
            self._finish(name, entry, BackendUnavailable("the service is shutting down"))

    def _open(self, target: Target, timeout: float) -> PendingAck:
        now = asyncio.get_running_loop().time()
        future = asyncio.get_running_loop().create_future()
        entry = PendingAck(target, time.time(), now, now + timeout, future)
        self._pending[target.name] = entry
        return entry

    def _finish(self, name: str, entry: PendingAck, outcome: _Outcome) -> bool:
        if self._pending.get(name) is entry:
            del self._pending[name]
        if entry.outcome.done():
            return False
        if isinstance(outcome, AckTimeout):
            self._refused_until[name] = entry.opened + self._window
        entry.outcome.set_result(outcome)
        return True
