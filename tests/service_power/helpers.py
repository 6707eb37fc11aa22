"""Helpers for the power target tests: loopback servers, credentials, config builders."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from maasflow.serve.asgi import PlainPaths
from maasflow.serve.power_api import PowerComponent, build_power_component
from maasflow.serve.power_config import PowerAuth, PowerConfig

TOKEN = "s3cret-token"
USER = "maas"
PASSWORD = "pa:ss word"


@contextlib.asynccontextmanager
async def serve(
    app: Any, ssl_certfile: str | None = None, ssl_keyfile: str | None = None
) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 and a free port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.005)
    scheme = "https" if ssl_certfile else "http"
    try:
        yield f"{scheme}://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@contextlib.asynccontextmanager
async def power_service(
    config: dict[str, Any],
    auth: PowerAuth | None = None,
    state: Path | None = None,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
) -> AsyncIterator[tuple[str, PowerComponent]]:
    """A FastAPI app with only the power router (and `build_app`'s path check), on loopback."""
    component = build_power_component(
        PowerConfig.model_validate(config), auth or PowerAuth(), state
    )
    app = FastAPI()
    app.include_router(component.router)
    app.add_middleware(PlainPaths)
    try:
        async with serve(app, ssl_certfile, ssl_keyfile) as base:
            yield base, component
    finally:
        await component.aclose()


def wol_config(port: int, **machine: Any) -> dict[str, Any]:
    """A config with one WoL machine `desk1` sending to 127.0.0.1:<port>."""
    spec = {
        "backend": "wol",
        "mac": "52-54-00-AB-CD-EF",
        "system_id": "abc123",
        "off_ack_timeout": 5,
        **machine,
    }
    return {"wol": {"broadcast": "127.0.0.1", "port": port}, "machines": {"desk1": spec}}
