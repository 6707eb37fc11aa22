"""End to end: one daemon per state file, so each machine is provisioned once, not twice.

Two real `maasflow` processes on the same simulator and `-db`: the second exits 2 with one
line naming the first one's pid and the state file, and the first provisions every machine
exactly once. A holder killed with SIGKILL leaves its lock file behind, but the kernel has
dropped the lock, so a restart on the same state runs. A preview and `maasflow status`
only read, so they run beside a live daemon.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from maasflow.sim import SimConfig, generate_machines
from tests.e2e.conftest import FAST, DaemonFactory, SimFactory
from tests.e2e.helpers import DaemonProcess, read_runs, run_cli, wait_all_provisioned

EnvFor = Callable[..., dict[str, str]]


def _start_holder(
    start_daemon: DaemonFactory, env: dict[str, str], db: Path, script: Path
) -> tuple[DaemonProcess, str]:
    """A long-running daemon on `db`, once it listens (it takes the lock before that)."""
    args = ["-period", "0.2s", "-listen", "127.0.0.1:0", "-log-format", "json", "-db", str(db)]
    daemon = start_daemon([*args, "-provision-url", str(script)], env)
    return daemon, daemon.telemetry_url()


def test_second_daemon_on_the_same_state_exits_2_naming_the_holder(
    start_sim: SimFactory,
    start_daemon: DaemonFactory,
    env_for: EnvFor,
    script: Path,
    runs_file: Path,
    tmp_path: Path,
) -> None:
    """The second daemon stops at once with one line; the first provisions each machine once."""
    sim = start_sim(SimConfig(seed=51, time_factor=FAST, machines=generate_machines(6, 51)))
    db = tmp_path / "state" / "maasflow.sqlite"
    first, url = _start_holder(start_daemon, env_for(sim), db, script)
    second = start_daemon(
        ["-period", "0.2s", "-listen", "", "-db", str(db), "-provision-url", str(script)],
        env_for(sim),
    )
    assert second.proc.wait(30) == 2
    lines = second.output().strip().splitlines()
    assert len(lines) == 1, lines
    assert f"pid {first.proc.pid}" in lines[0] and str(db) in lines[0]
    assert lines[0].startswith("maasflow: ") and "Traceback" not in lines[0]
    wait_all_provisioned(first, url, set(sim.machines), 30)
    assert first.terminate() == 0
    assert Counter(run.env_id for run in read_runs(runs_file)) == Counter(set(sim.machines))


def test_a_sigkilled_daemon_never_blocks_a_restart_on_its_state(
    start_sim: SimFactory,
    start_daemon: DaemonFactory,
    env_for: EnvFor,
    script: Path,
    tmp_path: Path,
) -> None:
    """After SIGKILL the lock file is still there but the kernel released it: -once runs, 0."""
    sim = start_sim(SimConfig(seed=52, time_factor=FAST, machines=generate_machines(2, 52)))
    db = tmp_path / "maasflow.sqlite"
    holder, _ = _start_holder(start_daemon, env_for(sim), db, script)
    holder.kill()
    assert (tmp_path / "maasflow.sqlite.lock").exists()
    result = run_cli(["-once", "-listen", "", "-db", str(db)], env_for(sim))
    assert result.returncode == 0, result.stderr


def test_preview_and_status_read_beside_a_running_daemon(
    start_sim: SimFactory,
    start_daemon: DaemonFactory,
    env_for: EnvFor,
    script: Path,
    tmp_path: Path,
) -> None:
    """`-preview` and `maasflow status --db` take no lock, so a live daemon does not stop them."""
    sim = start_sim(SimConfig(seed=53, time_factor=FAST, machines=generate_machines(2, 53)))
    db = tmp_path / "maasflow.sqlite"
    holder, _ = _start_holder(start_daemon, env_for(sim), db, script)
    preview = run_cli(["-preview", "-listen", "", "-db", str(db)], env_for(sim))
    status = run_cli(["status", "--db", str(db)], env_for(sim))
    assert preview.returncode == 0, preview.stderr
    assert status.returncode == 0, status.stderr
    assert holder.proc.poll() is None
