"""Running the `maasflow serve` app under uvicorn, in-process or in a background thread.

    async with serve_service(ServiceConfig(...), host="127.0.0.1", port=0) as svc:
        svc.url        # "http://127.0.0.1:<port>", https when TLS is configured
    with ServiceThread(ServiceConfig(...)) as svc:
        svc.url

The socket is bound here (port 0 picks a free one) and handed to uvicorn, so the URL is known
before the first request. uvicorn's own signal handling is switched off: whoever owns the
process (the CLI, a test, the demo) decides when to stop. Leaving the context stops the
server gracefully, which runs the app's shutdown (workers stopped, jobs killed and recorded).

What this module stops at: it parses no flags (`cli` does) and defines no routes (`app` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

import structlog
import uvicorn
from fastapi import FastAPI

from maasflow.errors import ConfigError
from maasflow.service.app import ServiceConfig, build_app
from maasflow.service.jobs import JobPool

if TYPE_CHECKING:
    from maasflow.service.power_api import PowerComponent

log = structlog.get_logger(__name__)

GRACEFUL_SHUTDOWN_SECONDS = 5
_START_POLL_SECONDS = 0.01
_THREAD_JOIN_SECONDS = 30.0


@dataclass(frozen=True)
class RunningService:
    """A service that is up: where to reach it, and its app."""

    url: str
    app: FastAPI

    @property
    def pool(self) -> JobPool:
        """The app's job pool (for health checks and tests)."""
        pool: JobPool = self.app.state.pool
        return pool


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the caller decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve_service(
    config: ServiceConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    power: PowerComponent | None = None,
) -> AsyncIterator[RunningService]:
    """Serve `config` on host:port until the context exits; see the module docstring."""
    app: FastAPI | None = None
    try:
        app = build_app(config, power)
        server = _Server(_uvicorn_config(app, config))
        sock = bind(host, port)
    except BaseException:
        await _abandon(app, power)
        raise
    task = asyncio.create_task(server.serve(sockets=[sock]), name="maasflow-serve")
    try:
        await _started(server, task)
        url = _url(config, host, sock.getsockname()[1])
        log.info("service.listening", url=url)
        yield RunningService(url=url, app=app)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


async def _abandon(app: FastAPI | None, power: PowerComponent | None) -> None:
    """Release what a start-up that failed had already opened."""
    if app is not None:
        app.state.pool.store.close()
    if power is not None:
        await power.aclose()


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (IPv4 or IPv6), or a ConfigError naming them."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"--host {host}: cannot resolve ({exc}); pass an IP address") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"--host {host} --port {port}: cannot listen ({exc.strerror})") from exc
    return sock


def _uvicorn_config(app: FastAPI, config: ServiceConfig) -> uvicorn.Config:
    uv = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        ssl_certfile=None if config.tls_cert is None else str(config.tls_cert),
        ssl_keyfile=None if config.tls_key is None else str(config.tls_key),
    )
    try:
        uv.load()
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"--tls-cert {config.tls_cert} --tls-key {config.tls_key}: cannot load ({exc}); "
            "pass a PEM certificate and its unencrypted private key"
        ) from exc
    return uv


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    """Return once uvicorn is serving; raise if it stopped instead."""
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("maasflow serve: the server stopped during start-up")
        await asyncio.sleep(_START_POLL_SECONDS)


def _url(config: ServiceConfig, host: str, port: int) -> str:
    scheme = "http" if config.tls_cert is None else "https"
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


class ServiceThread:
    """`serve_service` on its own event loop in a daemon thread, for sync callers."""

    def __init__(
        self,
        config: ServiceConfig,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        power: PowerComponent | None = None,
    ) -> None:
        self._args = (config, host, port, power)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self.app: FastAPI | None = None

    def start(self) -> ServiceThread:
        """Start serving; return once the URL answers, or raise why it could not."""
        self._thread = threading.Thread(target=self._main, name="maasflow-serve", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        """Shut down gracefully and wait for the thread."""
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(_THREAD_JOIN_SECONDS)

    def __enter__(self) -> ServiceThread:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # handed to the caller of start()
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        config, host, port, power = self._args
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve_service(config, host=host, port=port, power=power) as running:
            self.url, self.app = running.url, running.app
            self._ready.set()
            await self._stop.wait()
