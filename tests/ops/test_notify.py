"""sd_notify against a real datagram socket, bound the way systemd binds NOTIFY_SOCKET."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from maasflow.common.notify import SystemdNotifier


@pytest.fixture
def notify_socket(short_dir: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound, non-blocking AF_UNIX datagram socket and its path."""
    path = str(short_dir / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    yield sock, path
    sock.close()


def _received(sock: socket.socket) -> list[str]:
    """Every datagram waiting on `sock` (sendto has completed, so they are queued already)."""
    out: list[str] = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_ready_status_stopping_reach_the_socket_named_by_the_environment(
    notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With NOTIFY_SOCKET set in os.environ, READY, STATUS and STOPPING arrive in order."""
    sock, path = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    notifier = SystemdNotifier()
    notifier.ready()
    notifier.status("pass 3: 12 machines")
    notifier.stopping()
    assert notifier.enabled
    assert _received(sock) == ["READY=1", "STATUS=pass 3: 12 machines", "STOPPING=1"]


def test_status_text_stays_on_one_line(notify_socket: tuple[socket.socket, str]) -> None:
    """A multi-line status cannot inject extra fields: newlines become spaces."""
    sock, path = notify_socket
    SystemdNotifier({"NOTIFY_SOCKET": path}).status("MAAS unreachable\nREADY=1")
    assert _received(sock) == ["STATUS=MAAS unreachable READY=1"]


def test_watchdog_pings_when_watchdog_usec_is_set(notify_socket: tuple[socket.socket, str]) -> None:
    """WATCHDOG_USEC=4 s gives a 2 s ping interval and watchdog() sends WATCHDOG=1."""
    sock, path = notify_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"})
    notifier.watchdog()
    assert notifier.watchdog_interval() == 2.0
    assert _received(sock) == ["WATCHDOG=1"]


def test_watchdog_is_silent_without_watchdog_usec(notify_socket: tuple[socket.socket, str]) -> None:
    """Without WatchdogSec, watchdog() sends nothing and there is no interval."""
    sock, path = notify_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    notifier.watchdog()
    notifier.ready()
    assert notifier.watchdog_interval() is None
    assert _received(sock) == ["READY=1"]


def test_watchdog_meant_for_another_pid_is_ignored() -> None:
    """WATCHDOG_PID naming another process means the watchdog is not ours."""
    env = {"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "1000000"}
    assert (
        SystemdNotifier({**env, "WATCHDOG_PID": str(os.getpid() + 1)}).watchdog_interval() is None
    )
    assert SystemdNotifier({**env, "WATCHDOG_PID": str(os.getpid())}).watchdog_interval() == 0.5


@pytest.mark.parametrize("usec", ["", "0", "-5", "soon"])
def test_bad_watchdog_usec_means_no_watchdog(usec: str) -> None:
    """A missing, zero, negative or non-numeric WATCHDOG_USEC disables the watchdog."""
    notifier = SystemdNotifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": usec})
    assert notifier.watchdog_interval() is None


def test_abstract_socket_name_is_supported() -> None:
    """NOTIFY_SOCKET=@name addresses Linux's abstract namespace."""
    name = f"maasflow-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.setblocking(False)
        assert SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).notify("READY=1")
        assert _received(sock) == ["READY=1"]


@pytest.mark.parametrize("value", [None, "", "relative/path"])
def test_without_a_usable_notify_socket_everything_is_a_no_op(value: str | None) -> None:
    """Outside systemd (or with a value systemd would never set) nothing is sent or raised."""
    notifier = SystemdNotifier({} if value is None else {"NOTIFY_SOCKET": value})
    notifier.ready()
    notifier.watchdog()
    assert not notifier.enabled
    assert notifier.notify("READY=1") is False


def test_a_vanished_socket_is_logged_once_and_never_raised(short_dir: Path) -> None:
    """Sending to a socket that no longer exists returns False and warns only once."""
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(short_dir / "gone")})
    with capture_logs() as logs:
        results = [notifier.notify("READY=1"), notifier.notify("STATUS=x")]
    assert results == [False, False]
    assert [e["event"] for e in logs] == ["systemd notification failed"]


async def test_keepalive_pings_while_the_loop_is_alive(
    notify_socket: tuple[socket.socket, str],
) -> None:
    """keepalive() sends WATCHDOG=1 every interval while is_alive() holds."""
    sock, path = notify_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000"})
    task = asyncio.create_task(notifier.keepalive(lambda: True))
    loop = asyncio.get_running_loop()
    try:
        first = await asyncio.wait_for(loop.sock_recv(sock, 64), 5)
        second = await asyncio.wait_for(loop.sock_recv(sock, 64), 5)
    finally:
        task.cancel()
    assert (first, second) == (b"WATCHDOG=1", b"WATCHDOG=1")


async def test_keepalive_withholds_pings_when_the_loop_is_stuck(
    notify_socket: tuple[socket.socket, str],
) -> None:
    """While is_alive() is False no WATCHDOG=1 is sent, so systemd's watchdog trips."""
    sock, path = notify_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000"})
    asked = 0
    third_check = asyncio.Event()

    def stuck() -> bool:
        nonlocal asked
        asked += 1
        if asked == 3:
            third_check.set()
        return False

    task = asyncio.create_task(notifier.keepalive(stuck))
    try:
        await asyncio.wait_for(third_check.wait(), 5)
    finally:
        task.cancel()
    assert _received(sock) == []


async def test_keepalive_returns_at_once_without_a_watchdog() -> None:
    """Without WATCHDOG_USEC keepalive() has nothing to do and returns."""
    await asyncio.wait_for(SystemdNotifier({}).keepalive(lambda: True), 5)


def test_reloading_then_ready_reach_the_socket(notify_socket: tuple[socket.socket, str]) -> None:
    """A reload is RELOADING=1 with the monotonic time in one datagram, then READY=1."""
    sock, path = notify_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    notifier.reloading(123456)
    notifier.ready()
    assert _received(sock) == ["RELOADING=1\nMONOTONIC_USEC=123456", "READY=1"]
