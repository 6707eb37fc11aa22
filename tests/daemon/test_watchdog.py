"""The systemd watchdog: pinged while passes progress, withheld once a pass is stuck.

A pass that runs longer than `stuck_after` (max of three periods and STUCK_AFTER_S) makes
`loop_alive()` false, and the keepalive then stops sending WATCHDOG=1, so systemd restarts
the unit. The daemon's time is a fake clock moved by the test; the pings go over a real
datagram socket (an abstract one, as systemd's NOTIFY_SOCKET may be).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from maasflow.common.clock import FakeClock
from maasflow.common.notify import SystemdNotifier
from maasflow.daemon.loop import STUCK_AFTER_S

PING = b"WATCHDOG=1"


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound in the abstract namespace, and its NOTIFY_SOCKET value."""
    name = f"maasflow-test-watchdog-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.setblocking(False)
    yield sock, "@" + name
    sock.close()


def received(sock: socket.socket) -> list[bytes]:
    """Every datagram waiting on `sock` (none when it is empty)."""
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096))
        except BlockingIOError:
            return messages


async def until(condition: Callable[[], bool], what: str) -> None:
    """Yield to the loop until `condition()` holds; fail naming `what` after 5 s."""
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.005)


async def test_a_stuck_pass_stops_the_watchdog_pings_and_a_finished_one_resumes_them(
    mk: Any, Fake: Any, make_daemon: Callable[..., Any], notify_socket: tuple[socket.socket, str]
) -> None:
    """Pings go on through a long listing, stop past stuck_after, and come back when it ends."""
    sock, address = notify_socket
    fake = Fake([mk("a", 4)])
    fake.listing_gate = asyncio.Event()  # MAAS does not answer the listing
    clock = FakeClock()
    daemon = make_daemon(fake, period=1.0, clock=clock)
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "20000"})
    pass_task = asyncio.create_task(daemon.run_pass())
    keepalive = asyncio.create_task(notifier.keepalive(daemon.loop_alive))
    pings: list[bytes] = []

    def pinged() -> bool:
        pings.extend(received(sock))
        return PING in pings

    try:
        await until(pinged, "a first ping")
        clock.advance(STUCK_AFTER_S - 1)  # slow, but a listing with retries can take this long
        pings.clear()
        await until(pinged, "a ping while the pass is slow but not stuck")
        with capture_logs() as logs:
            clock.advance(2)
            received(sock)  # anything sent before the pass became stuck
            await until(lambda: len(logs) >= 2, "two stuck checks")
        assert received(sock) == []
        assert all(e["event"].startswith("loop looks stuck") for e in logs)
        fake.listing_gate.set()
        await pass_task
        pings.clear()
        await until(pinged, "pings again once the pass ended")
    finally:
        keepalive.cancel()
        fake.listing_gate.set()
        await asyncio.gather(keepalive, pass_task, return_exceptions=True)


async def test_a_long_period_stretches_the_stuck_threshold_to_three_periods(
    mk: Any, Fake: Any, make_daemon: Callable[..., Any]
) -> None:
    """With a 1000 s period a pass counts as stuck only after 3000 s, not STUCK_AFTER_S."""
    fake = Fake([mk("a", 4)])
    fake.listing_gate = asyncio.Event()
    clock = FakeClock()
    daemon = make_daemon(fake, period=1000.0, clock=clock)
    assert daemon.loop_alive()
    pass_task = asyncio.create_task(daemon.run_pass())
    await until(lambda: bool(fake.calls), "the listing to be asked for")
    clock.advance(2999)
    assert daemon.loop_alive()
    clock.advance(2)
    assert not daemon.loop_alive()
    fake.listing_gate.set()
    await pass_task
    assert daemon.loop_alive()
    await daemon.executor.drain(1)
