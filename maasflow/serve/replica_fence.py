"""A replica's self-fence: its runs are stopped once its heartbeat has gone unanswered for
too long, even while its event loop hangs in a call to a database gone dark.

The other replicas take a replica for dead `LOST_AFTER` heartbeats after its last stamp,
and fail its jobs; a client may then retry them elsewhere. So a replica cut off from
PostgreSQL (or paused) must stop its own runs before that: the fence stops them one
heartbeat earlier, counted from the *sending* of the last heartbeat that was answered (the
stamp the others see is no older than that). A thread of its own does it, because the pool's
database calls are synchronous: a call on a dark network blocks the event loop until TCP
gives up, far past the bound.

Stopping is a SIGTERM to each run's supervisor group (`RunHandle.terminate`), which ends the
script's group within its grace; the pool records how it ended once its loop runs again
(its writes are fenced by the claim, so nothing is written over a newer run). What the fence
cannot close: a script that takes longer to end after SIGTERM than one heartbeat (its grace
is 5 s, then SIGKILL) may still be ending when another replica gives its job up.

What this module stops at: it knows runs by their handles only; no database, no asyncio.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from maasflow.common.supervision import RunHandle

log = structlog.get_logger(__name__)


class Fence:
    """Runs tracked by job id, stopped when `renewed` has not been called for `limit` s."""

    def __init__(self, limit: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._renewed_at = clock()
        self._runs: dict[str, RunHandle] = {}
        self._lock = threading.Lock()
        self._ended = threading.Event()
        self._thread: threading.Thread | None = None

    def renewed(self, sent_at: float) -> None:
        """A heartbeat sent at `sent_at` (this fence's clock) was answered."""
        with self._lock:
            self._renewed_at = max(self._renewed_at, sent_at)

    def track(self, job_id: str, handle: RunHandle | None) -> None:
        """The job's run is `handle` now (None: it has none, or it is over)."""
        with self._lock:
            if handle is None:
                self._runs.pop(job_id, None)
            else:
                self._runs[job_id] = handle

    def expired(self) -> bool:
        """Whether no heartbeat was answered for longer than `limit`."""
        with self._lock:
            return self._clock() - self._renewed_at > self.limit

    def check(self) -> list[str]:
        """Stop every tracked run if the fence ran out; the ids of those stopped."""
        with self._lock:
            if self._clock() - self._renewed_at <= self.limit:
                return []
            stopped, self._runs = self._runs, {}
        for job_id, handle in stopped.items():
            handle.terminate()
            log.warning("replica.fenced", id=job_id, reason="no heartbeat answered")
        return list(stopped)

    def start(self) -> None:
        """Check in a thread, four times per `limit`, until `stop`."""
        self._thread = threading.Thread(target=self._watch, name="replica-fence", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._ended.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _watch(self) -> None:
        while not self._ended.wait(self.limit / 4):
            self.check()
