"""An embedded server's connections stay bounded: a cap, a header deadline, quiet accept errors.

In-process servers (`common.webserver.serving`) on 127.0.0.1 and real sockets: idle
connections at the cap give way to one that asks, a client trickling a request head is cut
off at the deadline, and asyncio's accept-failure record is logged once per interval.
"""

from __future__ import annotations

import asyncio
import errno
import io
import logging
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from maasflow.common import connection_guard
from maasflow.common.connection_guard import AcceptErrorFilter, Throttle, limits
from maasflow.common.logs import configure_logging
from maasflow.common.webserver import EmbeddedServer, bind, serving, url_for


async def _hello(request: Request) -> PlainTextResponse:
    """GET answers at once; POST first reads its whole body (a request under way till then)."""
    return PlainTextResponse(f"hello {len(await request.body())}")


APP = Starlette(routes=[Route("/", _hello, methods=["GET", "POST"])])


@asynccontextmanager
async def server(limit_concurrency: int | None = None) -> AsyncIterator[tuple[str, int]]:
    """A tiny app behind `serving`; yields (host, port)."""
    config = uvicorn.Config(
        APP, log_config=None, lifespan="off", limit_concurrency=limit_concurrency
    )
    sock = bind("127.0.0.1", 0)
    async with serving(config, sock):
        host, port = sock.getsockname()[:2]
        yield host, port


async def ask(host: str, port: int) -> bytes:
    """One GET / on a new connection; the whole answer."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return answer


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    """True when the server closes the connection (EOF or reset) within `within` seconds."""
    try:
        return await asyncio.wait_for(reader.read(), within) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def test_idle_connections_at_the_cap_give_way_to_a_client_that_asks() -> None:
    """With the cap reached by silent clients, a new request is answered at once."""
    async with server(limit_concurrency=4) as (host, port):
        idle = [await asyncio.open_connection(host, port) for _ in range(10)]
        assert b"200 OK" in await ask(host, port)
        evicted = [await closed_by_server(reader, 2) for reader, _ in idle[:6]]
        assert all(evicted)
        for _, writer in idle:
            writer.close()


async def test_a_request_under_way_is_never_closed_to_make_room() -> None:
    """Only idle connections give way: busy ones keep their place, and the newcomer is shut."""
    async with server(limit_concurrency=2) as (host, port):
        busy = []
        for _ in range(2):  # a request head that is complete but whose body never comes
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
            busy.append((reader, writer))
        await asyncio.sleep(0.2)  # let the server read both heads
        reader, writer = await asyncio.open_connection(host, port)
        assert await closed_by_server(reader, 2)
        assert not any([await closed_by_server(r, 0.3) for r, _ in busy])
        for _, w in [*busy, (reader, writer)]:
            w.close()


async def test_a_client_trickling_its_request_head_is_cut_off_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A byte every 0.1 s keeps uvicorn's keep-alive timer away, not the header deadline."""
    monkeypatch.setattr(connection_guard, "HEADER_TIMEOUT_S", 0.5)
    async with server() as (host, port):
        reader, writer = await asyncio.open_connection(host, port)
        head = b"GET / HTTP/1.1\r\nHost: slowloris\r\nX-Pad: " + b"a" * 100  # 2 s of trickle
        started, sent = time.monotonic(), 0
        for byte in head:
            if reader.at_eof():
                break
            writer.write(bytes([byte]))
            sent += 1
            await asyncio.sleep(0.02)
        assert await closed_by_server(reader, 10)
        # The head never completes: without the deadline the server would wait for it forever.
        assert sent > 0 and time.monotonic() - started > 0.4
        assert b"200 OK" in await ask(host, port)
        writer.close()


async def test_the_cap_stays_below_the_open_file_limit_with_room_to_spare() -> None:
    """At 1,024 files, connections plus one accept burst leave a reserve; a ceiling wins."""
    bounds = limits(fd_limit=1024)
    assert bounds.connections > 256 and bounds.connections + bounds.backlog < 1024 - 64
    assert limits(ceiling=64, fd_limit=1024).connections == 64
    assert limits(fd_limit=16).connections >= 1


async def test_embedded_servers_take_the_guard_and_keep_the_callers_ceiling() -> None:
    """A config's limit_concurrency becomes the cap; uvicorn's own 503 check sits above it."""
    config = uvicorn.Config(APP, limit_concurrency=64)
    guard = EmbeddedServer(config).guard
    assert guard.cap == 64 and config.limit_concurrency == 65
    assert config.timeout_keep_alive == 5 and config.h11_max_incomplete_event_size == 16 * 1024
    assert EmbeddedServer(config).guard is guard


def test_accept_failures_are_logged_once_per_interval_with_a_count() -> None:
    """asyncio's 'out of system resource' record, sent 1,000 times, makes one log line."""
    out = io.StringIO()
    configure_logging("info", "text", out)
    asyncio_log = logging.getLogger("asyncio")
    installed = asyncio_log.filters[:]  # servers of earlier tests installed the real one
    now = [0.0]
    asyncio_log.filters[:] = [AcceptErrorFilter(interval=60, clock=lambda: now[0])]
    loop = asyncio.new_event_loop()
    try:
        context = {
            "message": "socket.accept() out of system resource",
            "exception": OSError(errno.EMFILE, "Too many open files"),
        }
        for _ in range(1000):
            loop.call_exception_handler(context)
        assert out.getvalue().count("out of system resource") == 1
        now[0] = 61.0
        loop.call_exception_handler(context)
    finally:
        loop.close()
        asyncio_log.filters[:] = installed
    assert out.getvalue().count("out of system resource") == 2
    assert "(999 more like this in the last 60 s)" in out.getvalue()
    assert "Too many open files" in out.getvalue() and "Traceback" not in out.getvalue()


def test_other_asyncio_errors_are_never_throttled() -> None:
    """Only accept failures are rate-limited: every other asyncio error is a line of its own."""
    out = io.StringIO()
    configure_logging("info", "text", out)
    AcceptErrorFilter.install()
    loop = asyncio.new_event_loop()
    try:
        for number in range(3):
            loop.call_exception_handler({"message": "Task exception was never retrieved"})
            assert out.getvalue().count("never retrieved") == number + 1
    finally:
        loop.close()


def test_a_throttle_reports_the_first_event_then_once_per_interval() -> None:
    """The first event is reported at once; later ones are counted until the interval ends."""
    now = [0.0]
    throttle = Throttle(10, clock=lambda: now[0])
    assert throttle.due() == 1
    assert [throttle.due() for _ in range(5)] == [None] * 5
    now[0] = 10.0
    assert throttle.due() == 6


def test_socket_helpers_still_name_the_url() -> None:
    """bind() and url_for() are unchanged by the guard."""
    with bind("127.0.0.1", 0) as sock:
        assert url_for(sock).startswith("http://127.0.0.1:")
        assert sock.type == socket.SOCK_STREAM
