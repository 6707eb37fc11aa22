"""The persisted last known power state: survives restarts, never half-written, never fatal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from maasflow.serve.power_state import PowerStateStore
from tests.service_power.helpers import power_service, wol_config
from tests.service_power.maas_replay import MaasWebhookDriver


def test_state_round_trips_through_the_file(tmp_path: Path) -> None:
    """A state set in one store is read back by a new store on the same file."""
    path = tmp_path / "sub" / "power.json"
    PowerStateStore(path).set("desk1", "on")
    again = PowerStateStore(path)
    assert again.get("desk1") == "on" and again.get("other") == "unknown"
    assert json.loads(path.read_text())["machines"]["desk1"]["state"] == "on"


def test_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    """After several writes the directory holds only the state file."""
    store = PowerStateStore(tmp_path / "power.json")
    for state in ("on", "off", "on"):
        store.set("m", state)
    assert [p.name for p in tmp_path.iterdir()] == ["power.json"]


def test_memory_only_store_writes_nothing(tmp_path: Path) -> None:
    """Without a path the store keeps states in memory only."""
    store = PowerStateStore(None)
    store.set("m", "off")
    assert store.get("m") == "off" and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", ["{half", "[]", '{"machines": 3}', "\xff"])
def test_corrupt_file_is_set_aside_and_logged(tmp_path: Path, content: str) -> None:
    """An unreadable state file is moved to .corrupt with a warning; the store starts empty."""
    path = tmp_path / "power.json"
    path.write_text(content)
    with capture_logs() as logs:
        store = PowerStateStore(path)
    assert store.snapshot() == {}
    assert (tmp_path / "power.json.corrupt").exists() and not path.exists()
    assert logs[0]["event"] == "power_state.unreadable"
    store.set("m", "on")
    assert PowerStateStore(path).get("m") == "on"


def test_entries_with_bad_states_are_ignored(tmp_path: Path) -> None:
    """Entries whose state is not on/off/unknown are dropped on load, others are kept."""
    path = tmp_path / "power.json"
    path.write_text(
        json.dumps({"machines": {"a": {"state": "on"}, "b": {"state": "melted"}, "c": "x"}})
    )
    assert PowerStateStore(path).snapshot() == {"a": "on"}


def test_unwritable_location_is_logged_not_raised(tmp_path: Path) -> None:
    """If the file cannot be written, the state is still served from memory."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = PowerStateStore(blocker / "power.json")  # parent is a file: cannot mkdir
    with capture_logs() as logs:
        store.set("m", "on")
    assert store.get("m") == "on"
    assert logs[-1]["event"] == "power_state.write_failed"


async def test_state_persists_across_a_router_restart(udp_catcher: Any, tmp_path: Path) -> None:
    """A WoL machine powered on before a restart still reads 'on' from the new service."""
    state = tmp_path / "power-state.json"
    config = wol_config(udp_catcher.port)
    async with power_service(config, state=state) as (base, _):
        driver = MaasWebhookDriver(f"{base}/power/desk1/on", "", f"{base}/power/desk1", "abc123")
        await driver.perform("on")
    async with power_service(config, state=state) as (base, _):
        driver = MaasWebhookDriver("", "", f"{base}/power/desk1", "abc123")
        assert await driver.power_query() == "on"
