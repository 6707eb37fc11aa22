"""Run actions without ever blocking the pass: single flight per machine, a global cap.

The pass hands the executor one coroutine factory per machine that needs an action. The
executor starts it as a task unless that machine already has one in flight (single
flight), and the task waits for a slot under the global concurrency cap inside itself, so
`submit` returns at once and a slow action never delays the next pass. `room` is how many
more the pass should hand it now: the free slots plus a small queue (as many again as the
cap and at least `MIN_QUEUE`, unless told), so a pass over 10,000 machines hands it
O(slots), not everything that could act; the rest waits for a later pass, decided afresh
from what MAAS says then. On shutdown, `drain` lets running actions finish within a grace
period, then cancels the rest.
It knows nothing of MAAS or of what an action does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)

MIN_QUEUE = 16  # a small cap still takes a pass's handful of actions at once


class Executor:
    """Single flight per key, at most `concurrency` actions running at once."""

    def __init__(self, concurrency: int, queue: int | None = None) -> None:
        if concurrency < 1 or (queue is not None and queue < 0):
            raise ValueError("concurrency must be at least 1 and the queue not negative")
        self._slots = asyncio.Semaphore(concurrency)
        self._limit = concurrency + (max(concurrency, MIN_QUEUE) if queue is None else queue)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    def busy(self, key: str) -> bool:
        """True while an action for `key` is queued or running."""
        return key in self._tasks

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    @property
    def room(self) -> int:
        """How many more actions to hand over now: free slots plus what the queue still takes."""
        return max(0, self._limit - len(self._tasks))

    def submit(self, key: str, action: Callable[[], Awaitable[None]]) -> bool:
        """Start `action` for `key` unless one is already in flight or we are closing."""
        if self._closed or key in self._tasks:
            return False
        task = asyncio.create_task(self._run(action), name=f"action:{key}")
        self._tasks[key] = task
        task.add_done_callback(lambda _t: self._tasks.pop(key, None))
        return True

    async def _run(self, action: Callable[[], Awaitable[None]]) -> None:
        async with self._slots:
            await action()

    async def drain(self, grace: float) -> int:
        """Stop accepting work; wait up to `grace` seconds, then cancel. Returns cancelled count."""
        self._closed = True
        tasks = list(self._tasks.values())
        if not tasks:
            return 0
        _done, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
            log.warning("actions cancelled at shutdown", count=len(pending))
        return len(pending)
