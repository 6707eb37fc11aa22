"""End to end: `maasflow pause|resume` and `maasflow status <machine>` against the real daemon
(the CLI, `-control-token-file` from the environment) driving the simulator over loopback."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from maasflow import __version__
from maasflow.sim import Simulator, SimulatorThread
from tests.e2e.conftest import DaemonFactory
from tests.e2e.helpers import base_env, get, run_cli, wait_until
from tests.e2e.test_telemetry import machines_config, start_watched
from tests.sim.helpers import OAuth

TOKEN = "e2e-control-token-0123456789"


def metric(url: str, pattern: str) -> float:
    """The sum of the samples whose line matches `pattern` (name and labels) in /metrics."""
    found = re.findall(rf"^{pattern} (\S+)$", get(f"{url}/metrics").text, re.M)
    return sum(float(value) for value in found)


def writes(url: str) -> float:
    """MAAS writes the daemon has sent so far (its own request counter)."""
    return metric(url, r'maasflow_maas_requests_total\{[^}]*method="(?:POST|PUT)"[^}]*\}')


def passes(url: str) -> float:
    return metric(url, r'maasflow_passes_total\{outcome="ok"\}')


def enlist_one_more(sim: Simulator) -> None:
    """Add a machine as an admin would (MAAS commissions it; the daemon must then allocate it)."""
    form = {"architecture": "amd64/generic", "mac_addresses": "52:54:00:aa:bb:71"}
    form |= {"hostname": "late-71", "power_type": "manual"}
    created = httpx.post(f"{sim.url}/api/2.0/machines/", data=form, auth=OAuth(sim.admin_key))
    assert created.status_code == 200, created.text


def test_a_paused_daemon_sends_no_writes_until_resumed(
    start_daemon: DaemonFactory, home: Path, tmp_path: Path
) -> None:
    """Paused (token from CONTROL_TOKEN_FILE), passes go on without writes; resumed, it writes
    (to a machine enlisted during the pause, so a write is due whatever was done before it)."""
    token_file = tmp_path / "control-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    with SimulatorThread(machines_config(71)) as sim:
        daemon, url = start_watched(
            start_daemon, sim, home, tmp_path, CONTROL_TOKEN_FILE=str(token_file)
        )
        env = base_env(home, CONTROL_TOKEN_FILE=str(token_file), MAASFLOW_STATUS_URL=url)
        paused = run_cli(["pause"], env)
        assert paused.returncode == 0, paused.stderr
        wait_until(lambda: metric(url, "maasflow_actions_in_flight"), lambda n: n == 0, 20, "idle")
        before, since = writes(url), passes(url)
        wait_until(lambda: passes(url), lambda n: n >= since + 3, 20, "three passes")
        assert writes(url) == before
        enlist_one_more(sim)  # whatever was done before the pause, this one needs a write
        status = run_cli(["status"], env)
        assert status.stdout.startswith("PAUSED (maasflow resume to act again)"), status.stdout
        assert metric(url, "maasflow_paused") == 1
        assert metric(url, rf'maasflow_build_info\{{version="{re.escape(__version__)}"\}}') == 1
        assert run_cli(["resume"], env).returncode == 0
        wait_until(lambda: writes(url), lambda n: n > before, 20, "a write after resume")
        host = next(iter(sim.machines.values())).hostname
        one = run_cli(["status", host], env)
    assert daemon.terminate() == 0
    assert one.returncode == 0, one.stderr
    assert f"machine      {host} (" in one.stdout and "history (" in one.stdout
    assert TOKEN not in paused.stdout + paused.stderr + status.stdout + one.stdout


def test_without_a_token_file_pause_is_refused_with_the_reason(
    start_daemon: DaemonFactory, home: Path, tmp_path: Path
) -> None:
    """A daemon started without a control token answers 403; `maasflow pause` exits 1 saying so."""
    token_file = tmp_path / "control-token"
    token_file.write_text(TOKEN)
    with SimulatorThread(machines_config(72)) as sim:
        daemon, url = start_watched(start_daemon, sim, home, tmp_path)
        result = run_cli(["pause", "--url", url, "--token-file", str(token_file)], base_env(home))
        state = get(f"{url}/state").json()
    assert daemon.terminate() == 0
    assert result.returncode == 1
    assert result.stderr.startswith("maasflow: the daemon answered HTTP 403: control is off")
    assert state["paused"] is False
