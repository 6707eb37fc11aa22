"""End to end: `maasflow -preview` against the simulator reads, plans, and writes nothing.

The whole request log must be GETs (not only per machine: the preview must not even try a
write that fails), no script may run and no state file may appear; the plan names every
machine, and as JSON it gives the action the issue's table asks for.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from maasflow.sim import MachineSpec, SimConfig, Simulator
from tests.e2e import scenario
from tests.e2e.conftest import FAST, SimFactory
from tests.e2e.helpers import run_cli

EnvFor = Callable[..., dict[str, str]]


def preview(sim: Simulator, env: dict[str, str], script: Path, db: Path, fmt: str) -> str:
    args = ["-preview", "-listen", "", "-db", str(db), "-log-format", fmt]
    args += ["-filter", scenario.filter_json(), "-mappings", scenario.mappings_json()]
    args += ["-provision-url", str(script), *scenario.FLAGS]
    result = run_cli(args, env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_preview_sends_only_gets_and_names_every_machine(
    start_sim: SimFactory, env_for: EnvFor, script: Path, runs_file: Path, tmp_path: Path
) -> None:
    """The text plan has a line per machine; the simulator saw GETs only; nothing ran."""
    sim = start_sim(SimConfig(seed=21, time_factor=FAST, machines=scenario.specs()))
    db = tmp_path / "state.sqlite"
    out = preview(sim, env_for(sim), script, db, "text")
    lines = out.splitlines()
    for hostname in scenario.EXPECTED:
        assert any(line.split()[:1] == [hostname] for line in lines), hostname
    assert {r.method for r in sim.request_log} == {"GET"}
    assert not runs_file.exists()
    assert not db.exists()


def test_json_preview_plans_the_right_action_per_status(
    start_sim: SimFactory, env_for: EnvFor, script: Path, runs_file: Path, tmp_path: Path
) -> None:
    """As JSON: New+off commission, New+on power_off, Ready allocate, ours deploy, others none."""
    sim = start_sim(SimConfig(seed=22, time_factor=FAST, machines=scenario.specs()))
    out = preview(sim, env_for(sim), script, tmp_path / "state.sqlite", "json")
    plan = json.loads(out)["plan"]
    assert {item["hostname"]: item["action"] for item in plan} == scenario.EXPECTED
    ready = next(item for item in plan if item["hostname"] == "ready")
    assert ready["params"] == {"system_id": ready["system_id"]}
    excluded = {item["hostname"] for item in plan if not item["selected"]}
    assert excluded == {"skip-me", "far"}
    assert {r.method for r in sim.request_log} == {"GET"}
    assert not runs_file.exists()


def test_hostile_hostnames_from_maas_reach_the_text_plan_escaped_never_raw(
    start_sim: SimFactory, env_for: EnvFor, tmp_path: Path
) -> None:
    """An OSC title sequence, NUL, U+2028 or a bidi override in a hostname shows escaped."""
    hostile = "web\x1b]0;owned\x07\x00\u2028\u202e1"
    sim = start_sim(SimConfig(seed=23, time_factor=FAST, machines=[MachineSpec(hostname=hostile)]))
    args = ["-preview", "-listen", "", "-db", str(tmp_path / "s.sqlite"), "-filter", "{}"]
    result = run_cli(args, env_for(sim))
    assert result.returncode == 0, result.stderr
    assert not any(raw in result.stdout for raw in ("\x1b", "\x07", "\x00", "\u2028", "\u202e"))
    assert "web\\x1b]0;owned\\x07\\x00\\u2028\\u202e1" in result.stdout
