"""End to end: `maasflow -once` against the simulator issues exactly the issue's writes.

One pass over a mixed region (see `scenario.py`), the real CLI in a subprocess. The
simulator's request log must show, per machine, exactly the one expected write (or none at
all), every request signed well enough that the simulator's OAuth check let it through, and
the provisioning script run once per Deployed machine of ours.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from maasflow.sim import SimConfig, Simulator
from tests.e2e import scenario
from tests.e2e.conftest import FAST, SimFactory
from tests.e2e.helpers import read_runs, run_cli

EnvFor = Callable[..., dict[str, str]]

# action → (HTTP method, the simulator's name for the request, parameters it must carry)
WIRE: dict[str, tuple[str, str, dict[str, list[str]]]] = {
    "commission": ("POST", "commission", {}),
    "power_off": ("POST", "power_off", {"stop_mode": ["soft"]}),
    "allocate": ("POST", "allocate", {}),
    "deploy": ("POST", "deploy", {}),
    "rename": ("PUT", "update", {"hostname": [scenario.NEW_NAME]}),
}


def run_once(sim: Simulator, env: dict[str, str], script: Path, tmp_path: Path) -> list[str]:
    """Run `maasflow -once` on the scenario; its stderr (JSON log) lines."""
    args = ["-once", "-listen", "", "-db", str(tmp_path / "state.sqlite"), "-log-format", "json"]
    args += ["-filter", scenario.filter_json(), "-mappings", scenario.mappings_json()]
    args += ["-provision-url", str(script), *scenario.FLAGS]
    result = run_cli(args, env, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stderr.splitlines()


def writes_by_host(sim: Simulator, ids: dict[str, str]) -> dict[str, list[tuple[str, str]]]:
    return {
        host: [(r.method, r.action) for r in sim.request_log.for_machine(sid) if r.method != "GET"]
        for host, sid in ids.items()
    }


def test_one_pass_sends_exactly_one_expected_write_per_machine(
    start_sim: SimFactory, env_for: EnvFor, script: Path, tmp_path: Path
) -> None:
    """New+off → commission, New+on → power_off, Ready → allocate, ours → deploy, mapped → PUT."""
    sim = start_sim(SimConfig(seed=3, time_factor=FAST, machines=scenario.specs()))
    ids = {m.hostname: sid for sid, m in sim.machines.items()}
    run_once(sim, env_for(sim), script, tmp_path)
    expected = {
        host: [WIRE[action][:2]] if action in WIRE else []
        for host, action in scenario.EXPECTED.items()
    }
    assert writes_by_host(sim, ids) == expected
    assert all(r.effective for r in sim.request_log.writes())


def test_writes_carry_the_parameters_the_issue_names(
    start_sim: SimFactory, env_for: EnvFor, script: Path, tmp_path: Path
) -> None:
    """allocate names system_id= of exactly that machine; power_off is soft; the rename is sent."""
    sim = start_sim(SimConfig(seed=4, time_factor=FAST, machines=scenario.specs()))
    ids = {m.hostname: sid for sid, m in sim.machines.items()}
    run_once(sim, env_for(sim), script, tmp_path)
    for host, action in scenario.EXPECTED.items():
        if action not in WIRE:
            continue
        (record,) = [r for r in sim.request_log.for_machine(ids[host]) if r.method != "GET"]
        wanted = WIRE[action][2] | ({"system_id": [ids[host]]} if action == "allocate" else {})
        assert {k: record.params.get(k) for k in wanted} == wanted, host
    assert sim.machines[ids["old-name"]].hostname == scenario.NEW_NAME


def test_the_script_runs_once_per_deployed_machine_of_ours(
    start_sim: SimFactory, env_for: EnvFor, script: Path, runs_file: Path, tmp_path: Path
) -> None:
    """-once waits for provisioning: one run each for our Deployed machines, none for others."""
    sim = start_sim(SimConfig(seed=5, time_factor=FAST, machines=scenario.specs()))
    ids = {m.hostname: sid for sid, m in sim.machines.items()}
    run_once(sim, env_for(sim), script, tmp_path)
    ran = sorted(run.env_id for run in read_runs(runs_file))
    assert ran == sorted(ids[h] for h, a in scenario.EXPECTED.items() if a == "provision")


def test_every_request_is_signed_as_the_admin_and_none_is_refused(
    start_sim: SimFactory, env_for: EnvFor, script: Path, tmp_path: Path
) -> None:
    """Every request passes the simulator's PLAINTEXT check as the admin; one listing per pass."""
    sim = start_sim(SimConfig(seed=6, time_factor=FAST, machines=scenario.specs()))
    run_once(sim, env_for(sim), script, tmp_path)
    records = list(sim.request_log)
    acting = sum(1 for action in scenario.EXPECTED.values() if action in WIRE)
    assert len(records) == 2 + acting  # whoami, one listing, one write per acting machine
    assert [r for r in records if r.status == 401] == []
    assert {r.user for r in records} == {sim.admin_username}


def test_one_pass_logs_one_line_per_action_and_one_summary(
    start_sim: SimFactory, env_for: EnvFor, script: Path, tmp_path: Path
) -> None:
    """The JSON log has one `pass` summary and one `action` line per action taken."""
    sim = start_sim(SimConfig(seed=7, time_factor=FAST, machines=scenario.specs()))
    events = [json.loads(line) for line in run_once(sim, env_for(sim), script, tmp_path)]
    actions = sorted(e["hostname"] for e in events if e.get("event") == "action")
    assert actions == sorted(h for h, a in scenario.EXPECTED.items() if a is not None)
    assert [e["seen"] for e in events if e.get("event") == "pass"] == [len(scenario.EXPECTED)]


def test_info_log_has_no_library_chatter(
    start_sim: SimFactory, env_for: EnvFor, script: Path, tmp_path: Path
) -> None:
    """At the default level the log holds maasflow's events, not the state machine's internals."""
    sim = start_sim(SimConfig(seed=8, time_factor=FAST, machines=scenario.specs()))
    lines = run_once(sim, env_for(sim), script, tmp_path)
    assert [line for line in lines if '"transitions' in line] == []
