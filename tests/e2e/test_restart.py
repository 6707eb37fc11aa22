"""End to end: a restarted daemon neither re-runs a finished script nor writes to MAAS.

The daemon provisions a few machines with a script, keeping its records in `-db`; it is
stopped with SIGTERM and started again with `-once` on the same file. The second run must
find everything done: the script's record of runs does not grow and the simulator sees no
request but GETs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from maasflow.sim import SimConfig, generate_machines
from tests.e2e.conftest import FAST, DaemonFactory, SimFactory
from tests.e2e.helpers import read_runs, run_cli, wait_all_provisioned

EnvFor = Callable[..., dict[str, str]]


def test_restart_on_the_same_db_changes_nothing(
    start_sim: SimFactory,
    start_daemon: DaemonFactory,
    env_for: EnvFor,
    script: Path,
    runs_file: Path,
    tmp_path: Path,
) -> None:
    """After all are provisioned and the daemon restarts (-once), no script run, no write."""
    sim = start_sim(SimConfig(seed=41, time_factor=FAST, machines=generate_machines(6, 41)))
    db = tmp_path / "state" / "maasflow.sqlite"
    common = ["-db", str(db), "-provision-url", str(script), "-log-format", "json"]
    daemon = start_daemon(["-period", "0.2s", "-listen", "127.0.0.1:0", *common], env_for(sim))
    wait_all_provisioned(daemon, daemon.telemetry_url(), set(sim.machines), 30)
    assert daemon.terminate() == 0
    before = read_runs(runs_file)
    assert sorted(run.env_id for run in before) == sorted(sim.machines)

    sim.request_log.clear()
    result = run_cli(["-once", "-listen", "", *common], env_for(sim))
    assert result.returncode == 0, result.stderr
    assert read_runs(runs_file) == before
    assert sim.request_log.writes() == []
    assert len(sim.request_log) == 2  # whoami and the one listing
