"""The systemd watchdog: pinged while the loop moves, withheld once any step of it hangs.

Every step of the loop marks its progress (`daemon.liveness`); a working call to MAAS moves
at least every `longest_silence` seconds (4 x the request timeout), a wait between passes
lasts what the loop chose. A mark that is overdue makes `loop_alive()` false and the
keepalive stops sending WATCHDOG=1, so systemd restarts the unit. The hangs here are real:
a loopback HTTP server that reads the request and never answers, at start-up (who-am-I) and
mid-pass (the listing). The daemon's time is a fake clock moved by the test, the keepalive's
intervals are ticked by the test, and the pings go over a real datagram socket.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from maasflow.common.clock import FakeClock
from maasflow.common.notify import SystemdNotifier
from maasflow.daemon.actions import Actuator
from maasflow.daemon.cli import run_identified
from maasflow.daemon.liveness import Liveness
from maasflow.daemon.loop import Daemon
from maasflow.daemon.maas.client import MaasClient, longest_silence
from maasflow.daemon.mappings import Mappings
from maasflow.daemon.selection import FilterSpec
from maasflow.daemon.store import Store

PING = b"WATCHDOG=1"
KEY = "aaaaaaaaaaaaaaaaaa:bbbbbbbbbbbbbbbbbb:cccccccccccccccccccccccccccccccc"
WHOAMI = json.dumps({"username": "admin", "is_superuser": True}).encode()
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(
    WHOAMI
)


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


class Ticks:
    """The keepalive's sleep, ended by the test: each `tick()` ends one interval."""

    def __init__(self) -> None:
        self.asked = 0
        self._released = asyncio.Semaphore(0)

    async def sleep(self, _seconds: float) -> None:
        self.asked += 1
        await self._released.acquire()

    async def tick(self) -> None:
        """End the current interval and wait until the keepalive has checked and slept again."""
        asked = self.asked
        self._released.release()
        await until(lambda: self.asked > asked, "the keepalive's next check")


class HangingMaas:
    """A loopback HTTP server that answers who-am-I and hangs on every other request."""

    def __init__(self, hang_on: str) -> None:
        self.hang_on = hang_on
        self.asked: list[str] = []
        self._release = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/MAAS"

    async def __aexit__(self, *_exc: object) -> None:
        self._release.set()
        assert self._server is not None
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            path = (await reader.readuntil(b"\r\n\r\n")).split(b" ")[1].decode()
            self.asked.append(path)
            if self.hang_on in path:
                break
            writer.write(ANSWER + WHOAMI)
            await writer.drain()
        await self._release.wait()  # the hang: no answer, no close
        writer.close()


def daemon_on_maas(url: str, clock: FakeClock) -> Daemon:
    """A daemon with the real MAAS client, its progress feeding the watchdog's liveness."""
    liveness = Liveness(longest_silence(), clock)
    client = MaasClient(url, KEY, on_progress=liveness.progressed)
    return Daemon(
        client,
        Actuator(client, Store(":memory:"), None),
        filters=FilterSpec.load("{}", "test"),
        mappings=Mappings.empty(),
        period=10.0,
        clock=clock,
        liveness=liveness,
        provision_existing=True,  # provision machines first seen Deployed
    )


@pytest.mark.parametrize(("hang_on", "where"), [("whoami", "start-up"), ("machines", "a pass")])
async def test_a_request_that_never_answers_stops_the_pings_after_the_longest_silence(
    hang_on: str, where: str, notify_socket: tuple[socket.socket, str]
) -> None:
    """A hung request (at start-up or mid-pass) keeps pings up to 4 request timeouts, then none."""
    sock, address = notify_socket
    clock = FakeClock()
    ticks = Ticks()
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "2000000"})
    maas = HangingMaas(hang_on)
    async with maas as url:
        daemon = daemon_on_maas(url, clock)
        stop = asyncio.Event()
        loop_task = asyncio.create_task(run_identified(daemon, stop))
        keepalive = asyncio.create_task(notifier.keepalive(daemon.loop_alive, ticks.sleep))
        try:
            await until(lambda: hang_on in "".join(maas.asked), f"the hanging request ({where})")
            await until(lambda: ticks.asked == 1, "the first check")
            received(sock)
            clock.advance(longest_silence() - 1)  # slow, but a working request can be this slow
            await ticks.tick()
            assert received(sock) == [PING]
            with capture_logs() as logs:
                clock.advance(2)
                await ticks.tick()
                await ticks.tick()
            assert received(sock) == []
            assert [e["event"] for e in logs].count("loop stuck: a step is overdue") == 1
            assert longest_silence() == 120
        finally:
            stop.set()
            keepalive.cancel()
            await asyncio.gather(keepalive, loop_task, return_exceptions=True)
            await daemon.client.aclose()


async def test_a_stuck_pass_stops_the_pings_and_a_finished_one_resumes_them(
    mk: Any, Fake: Any, make_daemon: Callable[..., Any], notify_socket: tuple[socket.socket, str]
) -> None:
    """Pings go on through a slow listing, stop once it is overdue, and come back when it ends."""
    sock, address = notify_socket
    fake = Fake([mk("a", 4)])
    fake.listing_gate = asyncio.Event()  # MAAS does not answer the listing
    clock = FakeClock()
    ticks = Ticks()
    daemon = make_daemon(fake, period=1.0, clock=clock)
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "20000"})
    pass_task = asyncio.create_task(daemon.run_pass())
    keepalive = asyncio.create_task(notifier.keepalive(daemon.loop_alive, ticks.sleep))
    try:
        await until(lambda: bool(fake.calls) and ticks.asked == 1, "the listing and a check")
        assert received(sock) == [PING]
        clock.advance(daemon.liveness.quiet_limit - 1)
        await ticks.tick()
        assert received(sock) == [PING]
        with capture_logs() as logs:
            clock.advance(2)
            await ticks.tick()
            await ticks.tick()
        assert received(sock) == []
        assert [e["event"] for e in logs] == ["loop stuck: a step is overdue"] + [
            "loop looks stuck; withholding watchdog pings so systemd restarts us"
        ] * 2
        fake.listing_gate.set()
        await pass_task
        with capture_logs() as logs:
            await ticks.tick()
        assert received(sock) == [PING]
        assert [e["event"] for e in logs] == ["loop moves again"]
    finally:
        keepalive.cancel()
        fake.listing_gate.set()
        await asyncio.gather(keepalive, pass_task, return_exceptions=True)
        await daemon.executor.drain(1)


class HeldClock(FakeClock):
    """A fake clock whose sleeps never end: the loop stays in its wait between passes."""

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.Event().wait()


async def test_the_wait_between_passes_is_allowed_its_period_and_no_more(
    mk: Any, Fake: Any, make_daemon: Callable[..., Any]
) -> None:
    """With a 1000 s period the loop waiting for its next pass is stuck only after
    1000 s plus the longest silence of a request."""
    clock = HeldClock()
    daemon = make_daemon(Fake([mk("a", 4)]), period=1000.0, clock=clock)
    stop = asyncio.Event()
    loop_task = asyncio.create_task(daemon.run(stop))
    try:
        await until(lambda: clock.slept == [1000.0], "the wait after the first pass")
        clock.advance(1000 + longest_silence() - 1)
        assert daemon.loop_alive()
        clock.advance(2)
        assert not daemon.loop_alive()
    finally:
        stop.set()
        await loop_task
        await daemon.executor.drain(1)


async def test_a_daemon_that_never_gets_to_ask_maas_is_stuck_too(
    Fake: Any, make_daemon: Callable[..., Any]
) -> None:
    """Start-up is a step: no first request within the longest silence means stuck."""
    clock = FakeClock()
    daemon = make_daemon(Fake([]), clock=clock)
    clock.advance(longest_silence())
    assert daemon.loop_alive()
    clock.advance(1)
    assert not daemon.loop_alive()


def test_the_longest_silence_follows_the_request_timeout_and_the_backoff_cap() -> None:
    """4 request timeouts (pool, connect, send, first byte), or the backoff cap if longer."""
    assert MaasClient("http://m/MAAS", KEY).longest_silence_s == 120
    assert MaasClient("http://m/MAAS", KEY, timeout=5).longest_silence_s == 30
    assert MaasClient("http://m/MAAS", KEY, timeout=5, backoff_cap=90).longest_silence_s == 90


class TricklingMaas:
    """A loopback server whose listing answer comes one chunk per `send()`."""

    def __init__(self) -> None:
        self.writer: asyncio.StreamWriter | None = None
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/MAAS"

    async def __aexit__(self, *_exc: object) -> None:
        if self.writer is not None:
            self.writer.close()
        assert self._server is not None
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        self.writer = writer

    async def send(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        await self.writer.drain()


async def test_an_answer_that_keeps_coming_is_progress() -> None:
    """A long listing whose pieces keep arriving stays alive past the longest silence."""
    clock = FakeClock()
    liveness = Liveness(longest_silence(), clock)
    server = TricklingMaas()
    async with server as url:
        client = MaasClient(url, KEY, on_progress=liveness.progressed)
        listing = asyncio.create_task(client.list_machines())
        try:
            await until(lambda: server.writer is not None, "the listing request")
            for piece in (b"[", b" "):
                clock.advance(longest_silence() - 1)
                before = liveness.overdue_s()
                await server.send(piece)
                await until(lambda b=before: liveness.overdue_s() < b, "the piece to count")
                assert liveness.alive()
            assert clock.monotonic() > longest_silence()
        finally:
            listing.cancel()
            await asyncio.gather(listing, return_exceptions=True)
            await client.aclose()


def test_the_readme_states_the_bound_the_code_keeps() -> None:
    """The README's bound is the longest silence plus the unit's WatchdogSec."""
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    section = readme.split("### The watchdog's bound", 1)[1].split("\n#", 1)[0]
    unit = (root / "systemd" / "maasflow.service").read_text()
    found = re.search(r"^WatchdogSec=(\d+)$", unit, re.MULTILINE)
    assert found is not None
    watchdog_sec = int(found.group(1))
    assert f"**{longest_silence():.0f} s**" in section
    assert f"`WatchdogSec={watchdog_sec}`" in section
    minutes = (longest_silence() + watchdog_sec) / 60
    assert f"**at most {minutes:.0f} minutes from the hang" in section
