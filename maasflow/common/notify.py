"""The systemd notification protocol (sd_notify), spoken over a plain datagram socket.

Under a `Type=notify` unit systemd sets `NOTIFY_SOCKET` (a filesystem path, or `@name` for
an abstract socket) and, with `WatchdogSec=`, `WATCHDOG_USEC` (and `WATCHDOG_PID`). The
daemon tells systemd it is up (`READY=1`), what it is doing (`STATUS=...`), that it is
alive (`WATCHDOG=1`, at least every half of `WATCHDOG_USEC`), that it is reloading its
configuration (`RELOADING=1`, then `READY=1` again) and that it is going down
(`STOPPING=1`). Outside systemd every call is a no-op.

This module only sends; deciding *when* the loop counts as alive is the daemon's job
(`keepalive(is_alive)` pings only while the callback says so, so a hung loop stops the pings
and systemd restarts the unit). A failed send is logged once and never raised: losing a
notification must not take the daemon down.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable, Mapping

import structlog

log = structlog.get_logger(__name__)


def _address(raw: str) -> str:
    """The socket address for a NOTIFY_SOCKET value (`@name` is Linux's abstract namespace)."""
    return "\0" + raw[1:] if raw.startswith("@") else raw


def _one_line(text: str) -> str:
    """Notification fields are newline-separated, so a value must stay on one line."""
    return " ".join(text.splitlines())


class SystemdNotifier:
    """Sends sd_notify messages when run by systemd; does nothing otherwise."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        self._address = _address(raw) if raw.startswith(("/", "@")) else None
        self._watchdog_usec = _watchdog_usec(env)
        self._warned = False

    @property
    def enabled(self) -> bool:
        """True when systemd gave us a notification socket."""
        return self._address is not None

    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings (half of WATCHDOG_USEC), or None without a watchdog."""
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2_000_000

    def ready(self) -> None:
        """Tell systemd start-up is complete (`systemctl start` returns now)."""
        self.notify("READY=1")

    def status(self, text: str) -> None:
        """Set the one-line status shown by `systemctl status`."""
        self.notify(f"STATUS={_one_line(text)}")

    def reloading(self, monotonic_usec: int) -> None:
        """Tell systemd a reload began (`READY=1` ends it); `monotonic_usec` is CLOCK_MONOTONIC."""
        self.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}")

    def stopping(self) -> None:
        """Tell systemd the daemon is shutting down on purpose."""
        self.notify("STOPPING=1")

    def watchdog(self) -> None:
        """Tell systemd the daemon is alive; without it for WatchdogSec, systemd restarts us."""
        if self._watchdog_usec is not None:
            self.notify("WATCHDOG=1")

    def notify(self, *fields: str) -> bool:
        """Send `fields` as one datagram; True when it was sent."""
        if self._address is None:
            return False
        payload = "\n".join(fields).encode("utf-8", "replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)  # a full receive queue must not stall the event loop
                sock.sendto(payload, self._address)
        except OSError as exc:
            self._warn(exc)
            return False
        return True

    async def keepalive(
        self,
        is_alive: Callable[[], bool],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Ping the watchdog every interval while `is_alive()`; return at once without one.

        `sleep` waits out an interval: the caller's clock, so a test can step it.
        """
        interval = self.watchdog_interval()
        if interval is None or not self.enabled:
            return
        while True:
            if is_alive():
                self.watchdog()
            else:
                log.error("loop looks stuck; withholding watchdog pings so systemd restarts us")
            await sleep(interval)

    def _warn(self, exc: OSError) -> None:
        if not self._warned:
            self._warned = True
            log.warning("systemd notification failed", error=str(exc))


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    """WATCHDOG_USEC when it is meant for this process (WATCHDOG_PID unset or our pid)."""
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec if usec > 0 else None
