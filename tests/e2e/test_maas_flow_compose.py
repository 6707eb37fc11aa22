"""End to end: a CORD pod's `automation` environment runs the daemon as maas-flow meant it.

The variables opencord's automation-compose.yml sets for maas-flow (API version 1.0, no
provisioning time limit, the VirtualBox power helper with its user and host, and the key
switch MAAS_SHOW_API_KEY) start the real CLI against the simulator: one pass runs the helper
as `SCRIPT USER HOST MAC`, PUTs its flat answer under the names MAAS takes today, provisions
the Deployed machine, warns once per setting honoured differently and never shows the key.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

from maasflow.sim import MachineSpec, SimConfig
from tests.e2e.conftest import FAST, SimFactory
from tests.e2e.helpers import key_free, read_runs, run_cli

EnvFor = Callable[..., dict[str, str]]
MAC = "08:00:27:aa:00:01"

# opencord/maas roles/maas/files/power_discovery's contract: USER HOST MAC... in, flat amt out.
DISCOVERY = """#!/bin/sh
USERNAME=$1; shift
HOSTIP=$1; shift
printf '%s\\n' "$USERNAME" "$HOSTIP" "$@" > '{seen}'
printf '{{"name":"amt","mac_address":"%s","power_password":"%s","power_address":"%s"}}' \\
  "$1" "$USERNAME" "$HOSTIP"
"""


def compose_env(helper: Path, script: Path) -> dict[str, str]:
    """The automation service's environment from opencord's compose template, filled in."""
    return {
        "AUTOMATION_PROVISION_URL": str(script),
        "AUTOMATION_PROVISION_TTL": "0s",
        "AUTOMATION_POWER_HELPER_SCRIPT": str(helper),
        "AUTOMATION_POWER_HELPER_USER": "cord",
        "AUTOMATION_POWER_HELPER_HOST": "10.100.198.1",
        "AUTOMATION_LOG_FORMAT": "text",
        "AUTOMATION_LOG_LEVEL": "warn",
        "AUTOMATION_MAAS_API_VERSION": "1.0",
        "AUTOMATION_MAAS_SHOW_API_KEY": "true",
        "AUTOMATION_ALWAYS_RENAME": "true",
    }


def test_a_cord_pods_compose_environment_runs_one_pass(
    start_sim: SimFactory, env_for: EnvFor, script: Path, runs_file: Path, tmp_path: Path
) -> None:
    """Exit 0; helper argv USER HOST MAC; amt power_pass set; provisioned; two warnings."""
    seen = tmp_path / "helper-argv"
    helper = tmp_path / "power_discovery"
    helper.write_text(DISCOVERY.format(seen=seen))
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    specs = [
        MachineSpec("vbox-01", power_state="unknown", power_type="", macs=[MAC]),
        MachineSpec("deployed-1", status=6, owner="admin", power_state="on"),
    ]
    sim = start_sim(SimConfig(time_factor=FAST, machines=specs))
    env = env_for(sim, **compose_env(helper, script))
    # -provision-existing: maas-flow provisioned a node first seen Deployed; maasflow adopts it
    args = ["-once", "-listen", "", "-db", str(tmp_path / "s.sqlite"), "-provision-existing"]
    result = run_cli(args, env)

    assert result.returncode == 0, result.stderr
    assert seen.read_text().splitlines() == ["cord", "10.100.198.1", MAC]
    machine = sim.find("vbox-01")
    assert machine.power_type == "amt"
    params = machine.power_parameters  # the simulator refuses unknown names, as MAAS does
    assert (params["power_pass"], params["power_address"]) == ("cord", "10.100.198.1")
    assert "power_password" not in params and "mac_address" not in params
    assert [run.env_id for run in read_runs(runs_file)] == [sim.find("deployed-1").system_id]
    log = result.stderr
    assert log.count("MAAS 2.0+ has no 1.0 API") == 1
    assert log.count("the API key is never shown") == 1
    assert key_free(result.stdout + log, sim.admin_key)
