"""Fixtures for the power target tests: a UDP catcher for magic packets, a JSON writer."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def udp_catcher() -> Any:
    """A UDP socket on 127.0.0.1 that receives magic packets; `.port` and `await .next()`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)

    class Catcher:
        port = sock.getsockname()[1]

        async def next(self, timeout: float = 5.0) -> bytes:
            loop = asyncio.get_running_loop()
            data, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 2048), timeout)
            return data

        def pending(self) -> bytes | None:
            try:
                return sock.recv(2048)
            except BlockingIOError:
                return None

    yield Catcher()
    sock.close()


@pytest.fixture
def write_json(tmp_path: Path) -> Callable[[Any, str], Path]:
    """Write an object as JSON under tmp_path and return the file."""

    def write(data: Any, name: str = "power.json") -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(data))
        return path

    return write
