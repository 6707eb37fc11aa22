"""End to end: POWER_HELPER_SCRIPT gives a New machine with no power type its power settings.

The simulator holds a New machine whose power MAAS cannot know (no power type, power
"unknown"); the daemon runs the helper with the machine's MACs as arguments and PUTs what
it prints, which the simulator then shows as the machine's power type and parameters.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

from maasflow.sim import MachineSpec, SimConfig
from tests.e2e.conftest import FAST, SimFactory
from tests.e2e.helpers import run_cli

EnvFor = Callable[..., dict[str, str]]
MAC = "52:54:00:aa:00:01"


def test_the_helper_answer_becomes_the_machines_power_settings(
    start_sim: SimFactory, env_for: EnvFor, tmp_path: Path
) -> None:
    """One pass: the helper gets the MAC as argv, MAAS gets power_type and its parameters."""
    seen = tmp_path / "helper-args"
    helper = tmp_path / "power-helper"
    helper.write_text(
        "#!/bin/sh\n"
        f'echo "$@" > {seen}\n'
        'printf \'{"power_type": "ipmi", "power_parameters": '
        '{"power_address": "192.0.2.77", "power_user": "admin"}}\'\n'
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    spec = MachineSpec("dark-01", power_state="unknown", power_type="", macs=[MAC])
    sim = start_sim(SimConfig(time_factor=FAST, machines=[spec]))
    env = env_for(sim, POWER_HELPER_SCRIPT=str(helper))
    result = run_cli(["-once", "-listen", "", "-db", str(tmp_path / "s.sqlite")], env)
    assert result.returncode == 0, result.stderr
    assert seen.read_text().split() == [MAC]
    machine = sim.find("dark-01")
    assert machine.power_type == "ipmi"
    assert machine.power_parameters["power_address"] == "192.0.2.77"
    writes = [(r.method, r.action) for r in sim.request_log.writes()]
    assert writes == [("PUT", "update")]
