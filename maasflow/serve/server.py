"""Running the `maasflow serve` app under uvicorn, in-process or in a background thread.

    async with serve_service(ServiceConfig(...), host="127.0.0.1", port=0) as svc:
        svc.url        # "http://127.0.0.1:<port>", https when TLS is configured
    with ServiceThread(ServiceConfig(...)) as svc:
        svc.url

The socket is bound here (port 0 picks a free one) and handed to uvicorn, so the URL is known
before the first request. uvicorn's own signal handling is switched off: whoever owns the
process (the CLI, a test, the demo) decides when to stop. Leaving the context first answers
power-offs still waiting for an acknowledgement (503), then stops the server gracefully,
which runs the app's shutdown (workers stopped, jobs killed and recorded).

What this module stops at: it parses no flags (`cli` does) and defines no routes (`app` does).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

import structlog
import uvicorn
from fastapi import FastAPI

from maasflow.common.errors import ConfigError
from maasflow.common.webserver import LoopThread, bind, serving, url_for
from maasflow.serve.app import ServiceConfig, build_app
from maasflow.serve.jobs import JobPool

if TYPE_CHECKING:
    from maasflow.serve.power_api import PowerComponent

log = structlog.get_logger(__name__)

GRACEFUL_SHUTDOWN_SECONDS = 5
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
        uv = _uvicorn_config(app, config)
        sock = listen_socket(host, port)
    except BaseException:
        await _abandon(app, power)
        raise
    async with serving(uv, sock):
        url = url_for(sock, "http" if config.tls_cert is None else "https")
        log.info("service.listening", url=url)
        _warn_if_open(sock, config)
        try:
            yield RunningService(url=url, app=app)
        finally:
            if power is not None:
                # Before uvicorn stops: it cancels requests still open after its grace
                # period (a 500), and a power-off waiting for an ack may wait far longer.
                power.end_waits()


async def _abandon(app: FastAPI | None, power: PowerComponent | None) -> None:
    """Release what a start-up that failed had already opened."""
    if app is not None:
        app.state.pool.store.close()
    if power is not None:
        await power.aclose()


def _warn_if_open(sock: socket.socket, config: ServiceConfig) -> None:
    """Warn when anyone off this host may POST provisioning jobs: no token, not loopback."""
    if config.provision_token is not None:
        return
    address = ipaddress.ip_address(str(sock.getsockname()[0]).split("%")[0])
    if not address.is_loopback:
        log.warning(
            "service.provision_unprotected",
            address=str(address),
            hint="anyone reaching this address can run provisioning jobs; pass "
            "--provision-token-file or set MAASFLOW_PROVISION_TOKEN",
        )


def listen_socket(host: str, port: int) -> socket.socket:
    """The listening socket, or a ConfigError naming --host/--port."""
    try:
        return bind(host, port)
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(
            f"--host {host} --port {port}: cannot listen ({reason}); pass an IP address of "
            "this host and a free port"
        ) from exc


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
        self._thread = LoopThread(
            lambda: serve_service(config, host=host, port=port, power=power),
            "maasflow-serve",
            _THREAD_JOIN_SECONDS,
        )
        self.url = ""
        self.app: FastAPI | None = None

    def start(self) -> ServiceThread:
        """Start serving; return once the URL answers, or raise why it could not."""
        running = self._thread.start()
        self.url, self.app = running.url, running.app
        return self

    def stop(self) -> None:
        """Shut down gracefully and wait for the thread."""
        self._thread.stop()

    def __enter__(self) -> ServiceThread:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
