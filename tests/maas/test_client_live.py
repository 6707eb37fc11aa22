"""The client over a real socket: a tiny MAAS stand-in on 127.0.0.1, no mocking."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from maasflow.common.errors import TemporaryMaasError
from maasflow.daemon.maas.client import MaasClient


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is observable
    seen: list[dict[str, Any]]

    def do_GET(self) -> None:
        self._answer([{"system_id": "live01", "status": 4}])

    def do_PUT(self) -> None:
        self._answer({"system_id": "live01", "status": 4, "hostname": "renamed"})

    def _answer(self, payload: Any) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.seen.append(
            {
                "method": self.command,
                "path": self.path,
                "port": self.client_address[1],
                "auth": self.headers.get("Authorization", ""),
                "body": self.rfile.read(length).decode(),
            }
        )
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


@pytest.fixture
def live_maas() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    handler = type("Handler", (_Handler,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/MAAS/", seen
    finally:
        server.shutdown()
        server.server_close()


async def test_requests_reuse_one_connection_and_are_signed(live_maas, key) -> None:
    """Two calls travel over one kept-alive connection, each with its own OAuth header."""
    url, seen = live_maas
    async with MaasClient(url, key.full) as maas:
        (listed,) = await maas.list_machines()
        renamed = await maas.update("live01", hostname="renamed")
    assert listed.system_id == "live01" and renamed.hostname == "renamed"
    assert [s["path"] for s in seen] == [
        "/MAAS/api/2.0/machines/",
        "/MAAS/api/2.0/machines/live01/",
    ]
    assert seen[0]["port"] == seen[1]["port"]
    assert seen[1]["body"] == "hostname=renamed"
    assert all(f'oauth_signature="%26{key.secret}"' in s["auth"] for s in seen)
    assert seen[0]["auth"] != seen[1]["auth"]


async def test_a_closed_port_ends_in_temporary_error_after_retries(key) -> None:
    """Nothing listening: every attempt fails to connect, then TemporaryMaasError."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with MaasClient(
        f"http://127.0.0.1:{port}/MAAS", key.full, max_attempts=3, sleep=sleep, timeout=5
    ) as maas:
        with pytest.raises(TemporaryMaasError) as caught:
            await maas.whoami()
    assert caught.value.status is None and len(sleeps) == 2
    assert key.secret not in str(caught.value)
