"""End to end: `maasflow enlist` against the simulator over real HTTP, as a user runs it.

The real CLI in a subprocess: run twice, each machine is created once (the second run
reports and skips them); a dry run writes nothing; a non-admin key, a MAAS older than 3.1
and bad input are one line and exit 2, before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from maasflow.sim import MachineSpec, SimConfig, Simulator
from tests.e2e.conftest import SimFactory
from tests.e2e.helpers import base_env, run_cli

EnvFor = Callable[..., dict[str, str]]
INVENTORY = {
    "machines": [
        {"hostname": "legacy-a", "macs": ["52:54:00:0a:00:01"]},
        {"hostname": "legacy-b", "macs": ["52-54-00-0A-00-02", "52:54:00:0a:00:03"]},
        {"hostname": "legacy-c", "arch": "arm64/generic"},
    ]
}


def writes(sim: Simulator) -> list[str]:
    """Every request that was not a GET, as "METHOD path"."""
    return [f"{r.method} {r.path}" for r in sim.request_log.writes()]


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(INVENTORY))
    return path


def test_enlist_twice_creates_each_machine_once(
    start_sim: SimFactory, env_for: EnvFor, inventory: Path
) -> None:
    """The first run creates three Deployed machines; the second skips them all, writing nothing."""
    sim = start_sim(SimConfig(seed=1, machines=[MachineSpec("running", status=6, owner="admin")]))
    first = run_cli(["enlist", "--from", str(inventory)], env_for(sim))
    assert first.returncode == 0, first.stderr
    assert [line.split(":")[0] for line in first.stdout.splitlines()] == [
        "created legacy-a",
        "created legacy-b",
        "created legacy-c",
    ]
    created = len(writes(sim))
    second = run_cli(["enlist", "--from", str(inventory)], env_for(sim))
    assert second.returncode == 0, second.stderr
    assert all(line.startswith("skipped legacy-") for line in second.stdout.splitlines())
    assert len(second.stdout.splitlines()) == 3
    assert len(writes(sim)) == created == 3
    enlisted = [m for m in sim.machines.values() if m.hostname.startswith("legacy-")]
    assert sorted((m.hostname, m.status, m.owner) for m in enlisted) == [
        ("legacy-a", 6, "admin"),
        ("legacy-b", 6, "admin"),
        ("legacy-c", 6, "admin"),
    ]
    assert sim.find("legacy-b").macs == ["52:54:00:0a:00:02", "52:54:00:0a:00:03"]


def test_a_mac_already_in_maas_is_skipped_under_another_name(
    start_sim: SimFactory, env_for: EnvFor
) -> None:
    """A new hostname with a MAC MAAS has is reported with the holder's system_id, not created."""
    spec = MachineSpec("old-name", status=6, owner="admin", macs=["52:54:00:0b:00:01"])
    sim = start_sim(SimConfig(seed=2, machines=[spec]))
    args = ["enlist", "--hostname", "new-name", "--mac", "52:54:00:0B:00:01"]
    result = run_cli(args, env_for(sim))
    assert result.returncode == 0, result.stderr
    holder = sim.find("old-name").system_id
    assert result.stdout.strip() == (
        f"skipped new-name: MAC 52:54:00:0b:00:01 already in MAAS (system_id {holder})"
    )
    assert writes(sim) == []


def test_dry_run_prints_and_sends_only_gets(
    start_sim: SimFactory, env_for: EnvFor, tmp_path: Path
) -> None:
    """--dry-run names what it would create (never a secret's value) and writes nothing."""
    sim = start_sim(SimConfig(seed=3))
    password = tmp_path / "bmc-pass"
    password.write_text("hunter2-bmc\n")
    args = [
        "enlist", "--dry-run", "--hostname", "web-1", "--mac", "52:54:00:0c:00:01",
        "--power-type", "ipmi", "--power-param", "power_address=10.0.0.9",
        "--power-param", f"power_pass=@{password}",
    ]  # fmt: skip
    result = run_cli(args, env_for(sim))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("would create web-1; arch amd64/generic")
    assert "power ipmi (power_address, power_pass)" in result.stdout
    assert "hunter2" not in result.stdout + result.stderr
    assert writes(sim) == []


def test_a_non_admin_key_is_refused_before_any_write(
    start_sim: SimFactory, home: Path, inventory: Path
) -> None:
    """A user's key: one line saying an admin's key is needed, exit 2, nothing written."""
    sim = start_sim(SimConfig(seed=4))
    env = base_env(home, MAAS_API_KEY=sim.user_key, MAAS_URL=sim.url)
    result = run_cli(["enlist", "--from", str(inventory)], env)
    assert result.returncode == 2
    assert "not a MAAS admin" in result.stderr and len(result.stderr.splitlines()) == 1
    assert writes(sim) == []


def test_maas_older_than_3_1_is_refused_before_any_write(
    start_sim: SimFactory, env_for: EnvFor, inventory: Path
) -> None:
    """MAAS 3.0 would commission instead: one line naming the version, exit 2, no write."""
    sim = start_sim(SimConfig(seed=5, maas_version="3.0.2"))
    result = run_cli(["enlist", "--from", str(inventory)], env_for(sim))
    assert result.returncode == 2
    assert "'3.0.2'" in result.stderr and "3.1" in result.stderr
    assert "Traceback" not in result.stderr
    assert writes(sim) == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--hostname", "a", "--mac", "zz:00"], ["--mac", "'zz:00'"]),
        (["--hostname", "a.b"], ["hostname", "'a.b'"]),
        (["--hostname", "a", "--power-param", "power_pass=x"], ["power_pass", "@FILE"]),
        ([], ["--hostname", "--from"]),
        (["--from", "/nonexistent/inv.json"], ["/nonexistent/inv.json"]),
    ],
    ids=["bad-mac", "dotted-hostname", "secret-on-command-line", "nothing", "missing-file"],
)
def test_bad_input_is_one_line_and_exit_2(home: Path, args: list[str], words: list[str]) -> None:
    """Bad input is refused before MAAS is asked: exit 2, one line naming it."""
    env = base_env(home, MAAS_API_KEY="a:b:c", MAAS_URL="http://127.0.0.1:9/MAAS")
    result = run_cli(["enlist", *args], env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert all(word in lines[0] for word in words), lines[0]
