"""Serving an ASGI app with uvicorn inside a program that owns its own event loop and signals.

Three parts of maasflow embed an HTTP server: the simulator, `maasflow serve` and the
daemon's health endpoint. They share this plumbing and nothing else:

- `bind(host, port)`: a TCP socket bound by us (port 0 picks a free port, so the URL is
  known before the first request), with TCP_NODELAY on the sockets it accepts;
- `serving(config, sock)`: uvicorn running on that socket as a task of the current loop,
  without uvicorn's signal handlers (the embedding program decides when to stop), stopped
  promptly when the context exits, its connections bounded by `connection_guard.harden`
  (a cap below the open-file limit, a header deadline, accept errors logged once per
  interval), so idle clients cannot starve the ones that ask;
- `LoopThread`: the same on an event loop of its own in a daemon thread, for synchronous
  callers such as tests that start the `maasflow` CLI as a subprocess.

It knows nothing of routes, MAAS or configuration errors: callers word their own messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Generic, TypeVar

import uvicorn

from maasflow.common.connection_guard import harden

T = TypeVar("T")
_POLL_S = 0.005


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (IPv4 or IPv6; OSError when that fails)."""
    family, _kind, _proto, _name, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    # proto must be IPPROTO_TCP (not 0), or asyncio skips TCP_NODELAY on accepted sockets
    # and every small answer waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def url_for(sock: socket.socket, scheme: str = "http") -> str:
    """`scheme://host:port` of a bound socket, IPv6 hosts in brackets."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers, stopping as soon as `stop()` is called."""

    def __init__(self, config: uvicorn.Config) -> None:
        self.guard = harden(config)
        super().__init__(config)
        self._wake = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def stop(self) -> None:
        self.should_exit = True
        self._wake.set()

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's graceful shutdown, polling every 10 ms instead of idling in 0.1 s steps."""
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.config.timeout_graceful_shutdown or 1)
        state = self.server_state
        while (state.connections or state.tasks) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for task in state.tasks:
            task.cancel()
        for server in self.servers:
            await server.wait_closed()
        if not self.force_exit:
            await self.lifespan.shutdown()


@contextlib.asynccontextmanager
async def serving(config: uvicorn.Config, sock: socket.socket) -> AsyncIterator[EmbeddedServer]:
    """Run uvicorn on `sock` in the current loop until the context exits; close the socket."""
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
    try:
        while not server.started:
            if task.done():
                task.result()  # re-raise why it died
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(_POLL_S)
        yield server
    finally:
        server.stop()
        await asyncio.gather(task, return_exceptions=True)
        sock.close()


class LoopThread(Generic[T]):
    """Enter an async context manager on an event loop of its own, in a daemon thread.

    `start()` returns what the context yields once it is entered (or raises why it could
    not be); `stop()` exits it and joins the thread, and is safe to call twice.
    """

    def __init__(
        self, factory: Callable[[], AbstractAsyncContextManager[T]], name: str, timeout: float = 30
    ) -> None:
        self._factory = factory
        self._name = name
        self._timeout = timeout
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._value: T | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> T:
        self._thread = threading.Thread(target=self._main, name=self._name, daemon=True)
        self._thread.start()
        if not self._ready.wait(self._timeout):
            raise RuntimeError(f"{self._name} did not start within {self._timeout:g}s")
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop may close meanwhile
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(self._timeout)
            self._thread = None

    def __enter__(self) -> T:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with self._factory() as value:
            self._value = value
            self._ready.set()
            await self._stop.wait()
