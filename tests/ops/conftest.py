"""Fixtures for the operations tests: a canned daemon snapshot and a live telemetry endpoint."""

from __future__ import annotations

import copy
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from maasflow.daemon.metrics import Metrics
from maasflow.daemon.telemetry import Health, build_telemetry_app, serve_telemetry

NOW = 1_700_000_000.0

SNAPSHOT: dict[str, Any] = {
    "generated_at": NOW,
    "maas_url": "http://127.0.0.1:5240/MAAS",
    "pass": {"count": 42, "last_ok_at": NOW - 5, "last_error": None},
    "machines": [
        {
            "system_id": "abc123", "hostname": "node-b", "zone": "default", "pool": "default",
            "status": 6, "status_name": "Deployed", "phase": "provisioning",
            "reason": "provisioning in progress",
            "last_action": "provision", "last_action_at": NOW - 180, "last_outcome": "started",
            "attempts": 2, "last_error": "exit 1: " + "x" * 200,
        },
        {
            "system_id": "def456", "hostname": "node-a", "zone": "lab", "pool": "gpu",
            "status": 4, "status_name": "Ready", "phase": "allocating",
            "reason": "Ready: allocate exactly this machine",
            "last_action": "allocate", "last_action_at": NOW - 12, "last_outcome": "ok",
            "attempts": 0, "last_error": None,
        },
        {
            "system_id": "ghi789", "hostname": "web-1", "zone": "default", "pool": "default",
            "status": 0, "status_name": "New", "phase": "new",
            "last_action": None, "last_action_at": None, "last_outcome": None,
            "attempts": 0, "last_error": None,
        },
    ],
}  # fmt: skip


@pytest.fixture
def snapshot_doc() -> dict[str, Any]:
    """A fresh copy of the canned snapshot, safe to mutate."""
    return copy.deepcopy(SNAPSHOT)


@pytest.fixture
def health() -> Health:
    """Health with a 15 s period, fresh."""
    return Health(15.0)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def telemetry_url(
    health: Health, metrics: Metrics, snapshot_doc: dict[str, Any]
) -> AsyncIterator[str]:
    """The telemetry app served on 127.0.0.1 (real HTTP), answering the canned snapshot."""
    app = build_telemetry_app(health, metrics, lambda: snapshot_doc)
    async with serve_telemetry(app, "127.0.0.1:0") as url:
        yield url


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def short_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a short path: AF_UNIX socket paths must fit in 108 bytes."""
    return tmp_path_factory.mktemp("s")
