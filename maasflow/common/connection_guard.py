"""Keeping an embedded HTTP server answering when clients hold connections open and idle.

Each connection costs a file descriptor. With systemd's default of 1,024 and no limit of its
own, 1,100 idle connections used to exhaust them: every accept() then failed with EMFILE,
nobody was answered (MAAS's power queries included), and asyncio logged a traceback per
attempt, ~200,000 in 24 s. `harden(config)` (called by `webserver` for every server)
sets, from the process's `RLIMIT_NOFILE` and the descriptors already open:

- a cap on open connections (`Limits.connections`), below the limit with a reserve left
  for the program's own files, children's pipes and outgoing connections. At the cap, a
  new connection closes the one that has been idle longest (no request under way), so a
  client that sends its request at once is served however many idle ones there are; when
  every connection is busy with a request, the new one is closed instead;
- a header deadline: a connection that has not sent a complete request head within
  `HEADER_TIMEOUT_S` of opening (or of its previous answer) is closed, however slowly it
  trickles bytes; uvicorn's keep-alive timeout closes silent ones sooner;
- the h11 parser's limit on a request head (`MAX_HEAD_BYTES`) and a small listen backlog,
  which is also how many connections asyncio accepts in one go, before the cap can act;
- `AcceptErrorFilter` on the `asyncio` logger: an accept failure is logged once per
  `interval` with the number of repeats, never once per attempt.

Closures at the cap and on the deadline are logged once per interval too. With TLS a
connection counts once its handshake is done (asyncio bounds handshakes at 60 s). This
module knows uvicorn's HTTP/1.1 protocol (h11) and nothing of routes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import structlog
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = structlog.get_logger(__name__)

HEADER_TIMEOUT_S = 10.0
KEEP_ALIVE_S = 5
MAX_HEAD_BYTES = 16 * 1024
MAX_CONNECTIONS = 4096  # plenty for a power target and a provisioning API
LOG_INTERVAL_S = 60.0
_ACCEPT_BURST = (16, 128)  # backlog bounds: connections accepted per wake-up
_UNKNOWN_OPEN_FDS = 64


@dataclass(frozen=True)
class Limits:
    """How many connections may be open, and how many asyncio accepts at once."""

    connections: int
    backlog: int


def limits(ceiling: int | None = None, fd_limit: int | None = None) -> Limits:
    """Limits that keep connections, bursts and a reserve under the open-file limit."""
    soft = _soft_fd_limit() if fd_limit is None else fd_limit
    spare = max(0, soft - _open_fds())
    backlog = min(max(spare // 4, _ACCEPT_BURST[0]), _ACCEPT_BURST[1])
    reserve = min(128, spare // 4)
    cap = min(spare - backlog - reserve, ceiling or MAX_CONNECTIONS, MAX_CONNECTIONS)
    return Limits(connections=max(1, cap), backlog=backlog)


def _soft_fd_limit() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if soft == resource.RLIM_INFINITY else soft


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return _UNKNOWN_OPEN_FDS


class Throttle:
    """Counts events; `due()` says how many happened when an interval has passed, else None."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._last: float | None = None
        self._count = 0

    def due(self) -> int | None:
        """Count one event; the count so far (then reset) if it is time to report, else None."""
        self._count += 1
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            return None
        count, self._count, self._last = self._count, 0, now
        return count


class ConnectionGuard:
    """The connections of one server: the cap, the idle ones (oldest first), their deadlines."""

    def __init__(self, cap: int, header_timeout: float = HEADER_TIMEOUT_S) -> None:
        self.cap = cap
        self.header_timeout = header_timeout
        self._idle: OrderedDict[GuardedH11Protocol, asyncio.TimerHandle] = OrderedDict()
        self._full = Throttle(LOG_INTERVAL_S)
        self._late = Throttle(LOG_INTERVAL_S)

    def opened(self, conn: GuardedH11Protocol) -> None:
        """A new connection: make room at the cap, then wait for its request head."""
        if len(conn.connections) > self.cap:
            victim = next(iter(self._idle), None)
            self._close(victim or conn)
            if (count := self._full.due()) is not None:
                log.warning("server.connections_full", cap=self.cap, closed=count)
            if victim is None:
                return
        self.idle(conn)

    def idle(self, conn: GuardedH11Protocol) -> None:
        """`conn` waits for a request head; it may wait `header_timeout` at most."""
        self.busy(conn)
        self._idle[conn] = conn.loop.call_later(self.header_timeout, self._expire, conn)

    def busy(self, conn: GuardedH11Protocol) -> None:
        """`conn` sent a request head (or closed): no deadline, not evictable."""
        timer = self._idle.pop(conn, None)
        if timer is not None:
            timer.cancel()

    def _expire(self, conn: GuardedH11Protocol) -> None:
        self._close(conn)
        if (count := self._late.due()) is not None:
            log.info("server.header_timeout", closed=count, after_s=self.header_timeout)

    def _close(self, conn: GuardedH11Protocol) -> None:
        self.busy(conn)
        conn.connections.discard(conn)  # now, so the count is right before the loop turns
        conn.transport.close()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, reporting to its server's `ConnectionGuard`."""

    guard: ClassVar[ConnectionGuard]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.guard.opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.busy(self)
        super().connection_lost(exc)

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:  # a request head arrived: a new request cycle began
            self.guard.busy(self)

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self.guard.idle(self)  # before uvicorn runs a pipelined next request
        super().on_response_complete()


def harden(config: uvicorn.Config) -> ConnectionGuard:
    """Apply the module's limits to `config` (before its server starts); see the docstring."""
    if isinstance(config.http, type) and issubclass(config.http, GuardedH11Protocol):
        return config.http.guard  # hardened already
    bounds = limits(config.limit_concurrency)
    guard = ConnectionGuard(bounds.connections, HEADER_TIMEOUT_S)

    class Protocol(GuardedH11Protocol):
        pass

    Protocol.guard = guard
    config.http = Protocol
    if config.loaded:
        config.http_protocol_class = Protocol
    config.limit_concurrency = guard.cap + 1  # the guard closes first; uvicorn's 503 never
    config.backlog = bounds.backlog
    config.timeout_keep_alive = KEEP_ALIVE_S
    config.h11_max_incomplete_event_size = MAX_HEAD_BYTES
    AcceptErrorFilter.install()
    return guard


ACCEPT_ERRORS = (
    "socket.accept() out of system resource",  # asyncio's record per failed accept()
    "Exception in callback BaseSelectorEventLoop._start_serving",  # its retries, after close
)


class AcceptErrorFilter(logging.Filter):
    """On the `asyncio` logger: each kind of accept error once per interval, with a count.

    Only `ACCEPT_ERRORS`: any other asyncio error is a bug worth every line.
    """

    def __init__(
        self, interval: float = LOG_INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._interval = interval
        self._clock = clock
        self._kinds: dict[str, Throttle] = {}

    @classmethod
    def install(cls, logger: logging.Logger | None = None) -> None:
        """Add one filter to `logger` (default `asyncio`); installing again does nothing."""
        target = logging.getLogger("asyncio") if logger is None else logger
        if not any(isinstance(f, cls) for f in target.filters):
            target.addFilter(cls())

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        kind = next((k for k in ACCEPT_ERRORS if message.startswith(k)), None)
        if kind is None:
            return True
        throttle = self._kinds.setdefault(kind, Throttle(self._interval, self._clock))
        count = throttle.due()
        if count is None:
            return False
        text = _one_line(record)
        if count > 1:
            text += f" ({count - 1} more like this in the last {self._interval:g} s)"
        # One line, no traceback: the stack of a failed accept() says nothing an operator can
        # use, and thousands of them were what buried the log.
        record.msg, record.args, record.exc_info, record.exc_text = text, None, None, None
        return True


def _one_line(record: logging.LogRecord) -> str:
    """The record's message and the error that caused it (e.g. EMFILE), on one line."""
    message = record.getMessage().splitlines()[0]
    error = record.exc_info[1] if record.exc_info else None
    return f"{message}: {error}" if error is not None else message
