"""End to end: the webhook power chain, daemon → simulated MAAS → `maasflow serve` → a command.

A simulated machine has `power_type=webhook` and power URIs pointing at a real `maasflow
serve` power target (Bearer token), whose `command` backend runs a small Python program that
flips a state file and logs each call. `maasflow -once` commissions the machine; the
simulator then powers it on and, after commissioning, off, the way MAAS 3.6 does (its agent
runs the webhook driver: POST on/off, GET the query URI until the regexes agree, then one
more query, with no `System_Id` header). Reaching Ready proves the power-on worked (a failed
one fails commissioning); the command's log shows what serve was asked. Only the rack's
power monitor names the machine, with `System_id` on its queries.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from maasflow.serve import ServiceConfig, ServiceThread
from maasflow.serve.power_api import build_power_component
from maasflow.serve.power_config import PowerAuth, PowerConfig
from maasflow.sim import MachineSpec, SimConfig
from tests.e2e.conftest import FAST, SimFactory
from tests.e2e.helpers import run_cli, wait_until

EnvFor = Callable[..., dict[str, str]]
TOKEN = "e2e-power-token"
MAC = "52:54:00:cc:00:01"
SWITCH = """
import sys
action, state, calls = sys.argv[1:4]
with open(calls, "a") as log:
    log.write(action + "\\n")
if action == "status":
    try:
        print(open(state).read())
    except FileNotFoundError:
        print("off")
else:
    with open(state, "w") as out:
        out.write(action)
"""


def power_config(state: Path, calls: Path) -> PowerConfig:
    """One `command` machine whose on/off/status run SWITCH with the state and log files."""

    def argv(action: str) -> list[str]:
        return [sys.executable, "-c", SWITCH, action, str(state), str(calls)]

    machine = {"backend": "command", "mac": MAC, "on": argv("on"), "off": argv("off")}
    machine["status"] = argv("status")
    return PowerConfig.model_validate({"machines": {"hook-01": machine}})


def webhook_spec(base: str) -> MachineSpec:
    """A New, powered-off simulated machine powered through `base`/power/hook-01."""
    params = {
        "power_on_uri": f"{base}/power/hook-01/on",
        "power_off_uri": f"{base}/power/hook-01/off",
        "power_query_uri": f"{base}/power/hook-01",
        "power_token": TOKEN,
    }
    return MachineSpec("hook-01", power_type="webhook", power_parameters=params, macs=[MAC])


def test_daemon_commissions_and_the_simulator_powers_through_serve(
    start_sim: SimFactory, env_for: EnvFor, tmp_path: Path
) -> None:
    """Commissioning a webhook machine powers it on and off through serve's command backend."""
    calls, state = tmp_path / "calls.txt", tmp_path / "switch.txt"
    component = build_power_component(
        power_config(state, calls), PowerAuth(token=TOKEN), tmp_path / "power-state.json"
    )
    with ServiceThread(ServiceConfig(), power=component) as service:
        sim = start_sim(SimConfig(seed=61, time_factor=FAST, machines=[webhook_spec(service.url)]))
        (sid,) = sim.machines
        args = ["-once", "-listen", "", "-db", str(tmp_path / "state.sqlite")]
        result = run_cli(args, env_for(sim))
        assert result.returncode == 0, result.stderr
        machine = sim.machines[sid]
        wait_until(
            lambda: (machine.status_name, machine.power_state),
            lambda seen: seen == ("Ready", "off"),
            30,
            "Ready and powered off",
        )
    # POST on (serve reads the switch first: on/off are idempotent), then MAAS's query until
    # it agrees, then the power CLI's final query; the same for off. serve ran each, in order.
    on, off = ["status", "on", "status", "status"], ["status", "off", "status", "status"]
    assert calls.read_text().split() == on + off
    assert state.read_text() == "off"
    assert sim.ops_for(sid) == ["commission"]
    assert component.seen_system_ids == {}  # MAAS 3.5+ actions carry no System_Id


def test_the_simulated_power_monitor_names_the_machine_to_serve(
    start_sim: SimFactory, tmp_path: Path
) -> None:
    """The simulator's rack power monitor queries serve with the machine's System_id."""
    calls, state = tmp_path / "calls.txt", tmp_path / "switch.txt"
    component = build_power_component(
        power_config(state, calls), PowerAuth(token=TOKEN), tmp_path / "power-state.json"
    )
    with ServiceThread(ServiceConfig(), power=component) as service:
        spec = webhook_spec(service.url)
        sim = start_sim(
            SimConfig(seed=62, time_factor=FAST, machines=[spec], power_monitor_interval=5)
        )
        (sid,) = sim.machines
        wait_until(
            lambda: component.seen_system_ids.get("hook-01"),
            lambda seen: seen == sid,
            30,
            "the monitor's System_id",
        )
    assert set(calls.read_text().split()) == {"status"}  # the monitor only queries
