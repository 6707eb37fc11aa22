"""End to end: SIGHUP makes a running daemon read its filter (and targets) file again, and
never stops it.

Under systemd a death by SIGHUP counts as a clean exit, so a daemon that died of it was never
restarted. Here the daemon starts with a filter file selecting no machine; a broken rewrite
and SIGHUP leave it running on the old filter (it logs why); a good rewrite and SIGHUP make
the next passes select the machine, which the daemon then commissions. SIGTERM still exits 0.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

from maasflow.sim import MachineSpec, SimConfig
from tests.e2e.conftest import FAST, DaemonFactory, SimFactory
from tests.e2e.helpers import DaemonProcess, wait_until

EnvFor = Callable[..., dict[str, str]]


def passes(daemon: DaemonProcess) -> int:
    """How many passes the daemon has logged so far."""
    return sum(1 for e in daemon.events() if e.get("event") == "pass")


def test_sighup_reloads_the_filter_file_and_keeps_the_old_one_when_it_is_broken(
    start_sim: SimFactory, start_daemon: DaemonFactory, env_for: EnvFor, tmp_path: Path
) -> None:
    """A broken filter file is refused on SIGHUP; a good one selects the machine it names."""
    sim = start_sim(
        SimConfig(seed=5, time_factor=FAST, machines=[MachineSpec("lab-1", zone="lab")])
    )
    (system_id,) = sim.machines
    filter_file = tmp_path / "filter.json"
    filter_file.write_text(json.dumps({"zones": {"include": ["^elsewhere$"]}}))
    args = ["-period", "0.2s", "-listen", "", "-log-format", "json", "-filter", f"@{filter_file}"]
    daemon = start_daemon([*args, "-db", str(tmp_path / "state.sqlite")], env_for(sim))
    assert daemon.wait_event("pass")["selected"] == 0

    filter_file.write_text('{"zones": {"include": ["^lab$"]')  # cut short while being written
    daemon.proc.send_signal(signal.SIGHUP)
    failed = daemon.wait_event("reload failed; keeping the loaded one")
    assert "invalid JSON" in failed["reason"] and failed["level"] == "error"
    seen = passes(daemon)
    wait_until(lambda: passes(daemon), lambda n: n >= seen + 2, 20, "two passes after it")
    assert daemon.proc.poll() is None
    assert sim.ops_for(system_id) == []

    filter_file.write_text(json.dumps({"zones": {"include": ["^lab$"]}}))
    daemon.proc.send_signal(signal.SIGHUP)
    assert daemon.wait_event("reloaded")["setting"] == "filter"
    wait_until(lambda: sim.ops_for(system_id), lambda ops: "commission" in ops, 20, "commission")
    assert daemon.terminate() == 0, daemon.output()


def test_sighup_reloads_the_targets_file_and_a_broken_one_changes_nothing(
    start_sim: SimFactory, start_daemon: DaemonFactory, env_for: EnvFor, tmp_path: Path
) -> None:
    """A Deployed machine under an Ignore rule is left alone; a broken rewrite keeps the rule
    (logged); a good one saying power off has it powered off."""
    spec = MachineSpec("web-1", status=6, owner="admin", power_state="on")
    sim = start_sim(SimConfig(seed=6, time_factor=FAST, machines=[spec]))
    (system_id,) = sim.machines
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps([{"hosts": {"include": ["^web-"]}, "target": "Ignore"}]))
    args = ["-period", "0.2s", "-listen", "", "-log-format", "json", "-filter", "{}"]
    args += ["-targets", f"@{targets}", "-db", str(tmp_path / "state.sqlite")]
    daemon = start_daemon(args, env_for(sim))
    daemon.wait_event("pass")

    targets.write_text(json.dumps([{"hosts": {"include": ["^web-"]}, "power": "of"}]))
    daemon.proc.send_signal(signal.SIGHUP)
    failed = daemon.wait_event("reload failed; keeping the loaded one")
    assert failed["setting"] == "targets" and "rule 1: power: 'of'" in failed["reason"]
    seen = passes(daemon)
    wait_until(lambda: passes(daemon), lambda n: n >= seen + 2, 20, "two passes after it")
    assert sim.ops_for(system_id) == []

    targets.write_text(json.dumps([{"hosts": {"include": ["^web-"]}, "power": "off"}]))
    daemon.proc.send_signal(signal.SIGHUP)
    assert daemon.wait_event("reloaded")["setting"] == "targets"
    wait_until(lambda: sim.machines[system_id].power_state, lambda p: p == "off", 20, "off")
    assert sim.ops_for(system_id) == ["power_off"]
    assert daemon.terminate() == 0, daemon.output()
