"""End to end: SIGTERM stops the daemon cleanly (exit 0) even when something is in the way.

Two things can be running when the signal comes: an action (here a provisioning script that
would sleep for a minute), which gets `-grace` to finish and is then killed with its process
group; and a pass whose listing waits on MAAS (here every request answered 503 with a long
`Retry-After`), which must not hold the daemon hostage. Each stop is bounded well below what
the obstacle would take, so a daemon that waits it out fails the test instead of passing late.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

from maasflow.sim import Faults, MachineSpec, SimConfig
from tests.e2e.conftest import FAST, DaemonFactory, SimFactory
from tests.e2e.helpers import get, wait_until

EnvFor = Callable[..., dict[str, str]]
LOOP = ["-period", "0.2s", "-listen", "127.0.0.1:0", "-log-format", "json"]
SLOW_SCRIPT = """#!/bin/sh
echo $$ > '{pid}'
exec sleep 60
"""


def test_sigterm_kills_a_running_script_after_the_grace_and_exits_0(
    start_sim: SimFactory, start_daemon: DaemonFactory, env_for: EnvFor, tmp_path: Path
) -> None:
    """A script still running when -grace ends is killed (its process is gone) and exit is 0."""
    pid_file = tmp_path / "script.pid"
    script = tmp_path / "slow.sh"
    script.write_text(SLOW_SCRIPT.format(pid=pid_file))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    machines = [MachineSpec("deployed-1", status=6, owner="admin", power_state="on")]
    sim = start_sim(SimConfig(seed=71, time_factor=FAST, machines=machines))
    args = [*LOOP, "-grace", "1s", "-provision-url", str(script), "-provision-existing"]
    daemon = start_daemon([*args, "-db", str(tmp_path / "state.sqlite")], env_for(sim))
    pid = int(wait_until(pid_file_text(pid_file), bool, 20, "the script's pid").strip())
    assert daemon.terminate(timeout=20) == 0, daemon.output()
    assert not alive(pid)


def pid_file_text(path: Path) -> Callable[[], str]:
    return lambda: path.read_text() if path.exists() else ""


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie waiting for its parent."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_sigterm_is_not_held_up_by_a_pass_waiting_on_retry_after(
    start_sim: SimFactory, start_daemon: DaemonFactory, env_for: EnvFor, tmp_path: Path
) -> None:
    """With MAAS answering 503 Retry-After: 60 to the listing, SIGTERM still ends the daemon."""
    sim = start_sim(SimConfig(seed=72, time_factor=FAST, machines=[MachineSpec("node-1")]))
    daemon = start_daemon([*LOOP, "-db", str(tmp_path / "state.sqlite")], env_for(sim))
    url = daemon.telemetry_url()
    wait_until(lambda: get(f"{url}/healthz").status_code, lambda c: c == 200, 20, "healthz 200")
    sim.injector.faults = Faults(error_503_rate=1.0, retry_after_503=60)
    daemon.wait_event("maas.retry", timeout=20)
    assert daemon.terminate(timeout=10) == 0, daemon.output()
