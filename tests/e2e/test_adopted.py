"""End to end: a machine recorded with `maasflow enlist` is never provisioned nor written to.

The real CLI twice: `maasflow enlist` records a running machine (and a hand-deployed one sits
in MAAS already), then the daemon drives a New machine to Provisioned beside them. The
simulator's request log is the witness: after the enlisting, no write request names either
running machine, though a mapping would rename the enlisted one; the provisioning script
ran for the New machine only; `/state` and `-preview` say why (adopted).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from maasflow.sim import MachineSpec, SimConfig, Simulator
from tests.e2e.conftest import FAST, DaemonFactory, SimFactory
from tests.e2e.helpers import read_runs, run_cli, wait_until

EnvFor = Callable[..., dict[str, str]]
ENLISTED_MAC = "52:54:00:0d:00:01"


def enlist_one(sim: Simulator, env: dict[str, str]) -> str:
    """Record `legacy-1` as already Deployed; its system_id."""
    result = run_cli(["enlist", "--hostname", "legacy-1", "--mac", ENLISTED_MAC], env)
    assert result.returncode == 0, result.stderr
    return sim.find("legacy-1").system_id


def writes_to(sim: Simulator, system_ids: set[str]) -> list[str]:
    return [
        f"{r.method} {r.op or r.path}"
        for r in sim.request_log.writes()
        if r.system_id in system_ids
    ]


def test_enlisted_and_hand_deployed_machines_are_left_as_they_run(
    start_sim: SimFactory,
    start_daemon: DaemonFactory,
    env_for: EnvFor,
    script: Path,
    runs_file: Path,
    tmp_path: Path,
) -> None:
    """The New machine is provisioned; the adopted ones get no write and no script run."""
    specs = [
        MachineSpec("fresh-1"),
        MachineSpec("by-hand", status=6, owner="admin", power_state="on"),
    ]
    sim = start_sim(SimConfig(seed=31, time_factor=FAST, machines=specs))
    env = env_for(sim)
    running = {enlist_one(sim, env), sim.find("by-hand").system_id}
    sim.request_log.clear()
    args = ["-period", "0.2s", "-listen", "127.0.0.1:0", "-log-format", "json", "-filter", "{}"]
    args += ["-db", str(tmp_path / "state.sqlite"), "-provision-url", str(script)]
    args += ["-mappings", json.dumps({ENLISTED_MAC: "renamed-legacy"})]
    daemon = start_daemon(args, env)
    url = daemon.telemetry_url()
    fresh = sim.find("fresh-1").system_id

    def rows() -> dict[str, dict[str, str]]:
        return {m["system_id"]: m for m in daemon.state(url).get("machines", [])}

    seen = wait_until(rows, lambda r: r.get(fresh, {}).get("phase") == "provisioned", 60, "fresh")
    assert daemon.terminate() == 0, daemon.output()
    assert writes_to(sim, running) == []
    assert [run.env_id for run in read_runs(runs_file)] == [fresh]
    for system_id in running:
        assert seen[system_id]["phase"] == "deployed"
        assert "adopted" in json.dumps(seen[system_id])
    assert sim.find("legacy-1").status_name == "Deployed"


def test_preview_shows_an_enlisted_machine_adopted_and_provision_existing_provisions_it(
    start_sim: SimFactory, env_for: EnvFor, script: Path, tmp_path: Path
) -> None:
    """-preview plans no action for the enlisted machine; with -provision-existing, provision."""
    sim = start_sim(SimConfig(seed=32, time_factor=FAST))
    env = env_for(sim)
    enlist_one(sim, env)
    base = ["-preview", "-listen", "", "-db", str(tmp_path / "s.sqlite"), "-filter", "{}"]
    base += ["-log-format", "json", "-provision-url", str(script)]

    def plan(*extra: str) -> dict[str, object]:
        result = run_cli([*base, *extra], env)
        assert result.returncode == 0, result.stderr
        items = json.loads(result.stdout)["plan"]
        found: dict[str, object] = next(i for i in items if i["hostname"] == "legacy-1")
        return found

    adopted = plan()
    assert adopted["action"] is None and "adopted" in json.dumps(adopted)
    assert plan("-provision-existing")["action"] == "provision"
    assert {r.method for r in sim.request_log.writes()} == {"POST"}  # the enlisting only
