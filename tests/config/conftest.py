"""Shared fixtures for the configuration tests: a well-formed key, a clean environment, machines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from maasflow.daemon.maas.models import Machine

KEY = "aaaaaaaaaaaaaaaaaa:bbbbbbbbbbbbbbbbbb:cccccccccccccccccccccccccccccccc"
KEY_SECRET_PART = "cccccccccccccccccccccccccccccccc"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An environment with a HOME in tmp_path and the default key file pointed at nothing."""
    monkeypatch.setattr("maasflow.daemon.flags.DEFAULT_KEY_FILE", str(tmp_path / "no-such-key"))
    return {"HOME": str(tmp_path / "home"), "MAAS_API_KEY": KEY}


def make_machine(
    hostname: str = "node1",
    zone: str = "default",
    pool: str = "default",
    tags: list[str] | None = None,
    macs: list[str] | None = None,
    boot_mac: str | None = None,
) -> Machine:
    """A minimal machine in the shape `GET machines/` returns."""
    data: dict[str, Any] = {
        "system_id": "abc123",
        "hostname": hostname,
        "status": 0,
        "zone": {"name": zone},
        "pool": {"name": pool},
        "tag_names": tags or [],
        "interface_set": [{"name": f"eth{i}", "mac_address": m} for i, m in enumerate(macs or [])],
    }
    if boot_mac is not None:
        data["boot_interface"] = {"name": "boot", "mac_address": boot_mac}
    return Machine.model_validate(data)


@pytest.fixture
def machine() -> Any:
    """The `make_machine` factory (test modules cannot import conftest by name)."""
    return make_machine
