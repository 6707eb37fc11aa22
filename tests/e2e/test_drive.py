"""End to end: the `maasflow` daemon drives 50+ simulated machines from New to Provisioned.

The daemon is the real CLI in a subprocess (not `-once`: it loops every 0.2 s until
SIGTERM); the simulator runs in this process so its request log is the witness. We wait on
the daemon's own `/state` until every machine's phase is `provisioned`, stop it with SIGTERM
(exit 0), then check the log: each machine commissioned, allocated and deployed exactly once
(as ops that took effect), and provisioned exactly once (the script's own record of runs).
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx

from maasflow.serve import ServiceConfig, ServiceThread
from maasflow.sim import Faults, SimConfig, Simulator, generate_machines
from tests.e2e.conftest import FAST, DaemonFactory, SimFactory
from tests.e2e.helpers import get, read_runs, wait_all_provisioned

ONE_EACH = Counter({"commission": 1, "allocate": 1, "deploy": 1})
EnvFor = Callable[..., dict[str, str]]


def drive(
    sim: Simulator,
    start_daemon: DaemonFactory,
    env: dict[str, str],
    provision_url: str,
    tmp_path: Path,
    timeout: float = 60.0,
    events: str = "on",
) -> None:
    """Run the daemon until every machine of `sim` is provisioned, then SIGTERM it (exit 0)."""
    args = ["-period", "0.2s", "-listen", "127.0.0.1:0", "-log-format", "json", "-events", events]
    args += ["-db", str(tmp_path / "maasflow.sqlite"), "-provision-url", provision_url]
    daemon = start_daemon(args, env)
    url = daemon.telemetry_url()
    wait_all_provisioned(daemon, url, set(sim.machines), timeout)
    assert daemon.terminate() == 0, daemon.output()


def assert_each_op_once(sim: Simulator) -> None:
    """Every machine saw exactly one effective commission, allocate and deploy, nothing else."""
    wrong = {
        m.hostname: sim.ops_for(sid)
        for sid, m in sim.machines.items()
        if Counter(sim.ops_for(sid)) != ONE_EACH
    }
    assert wrong == {}


def assert_provisioned_once(sim: Simulator, runs_file: Path, argc: int) -> None:
    """The script ran once per machine, for that machine, without the MAAS key."""
    runs = read_runs(runs_file)
    assert Counter(run.env_id for run in runs) == Counter(set(sim.machines))
    for run in runs:
        machine = sim.machines[run.env_id]
        assert run.argv[:3] == [machine.system_id, machine.hostname, machine.ip_addresses[0]]
        assert len(run.argv) == argc
        assert run.key == "unset"


def test_fifty_machines_are_provisioned_once_each_by_a_script(
    start_sim: SimFactory,
    start_daemon: DaemonFactory,
    env_for: EnvFor,
    script: Path,
    runs_file: Path,
    tmp_path: Path,
    events: str,
) -> None:
    """60 New machines end Provisioned: one commission, allocate, deploy and script run each,
    following MAAS's event log or polling."""
    sim = start_sim(SimConfig(seed=11, time_factor=FAST, machines=generate_machines(60, 11)))
    drive(sim, start_daemon, env_for(sim), str(script), tmp_path, events=events)
    assert_each_op_once(sim)
    assert [r for r in sim.request_log.writes() if not r.effective] == []
    assert_provisioned_once(sim, runs_file, argc=3)
    assert {m.status_name for m in sim.machines.values()} == {"Deployed"}


def test_fifty_machines_are_provisioned_once_each_through_maasflow_serve(
    start_sim: SimFactory,
    start_daemon: DaemonFactory,
    env_for: EnvFor,
    script: Path,
    runs_file: Path,
    tmp_path: Path,
) -> None:
    """Through a real `maasflow serve` requiring a token (PROVISION_TOKEN_FILE), one job each."""
    sim = start_sim(SimConfig(seed=12, time_factor=FAST, machines=generate_machines(50, 12)))
    token = secrets.token_urlsafe(24)
    token_file = tmp_path / "provision.token"
    token_file.write_text(token + "\n")
    config = ServiceConfig(
        script=script, workers=8, db=tmp_path / "serve.sqlite", provision_token=token
    )
    env = env_for(sim) | {"PROVISION_TOKEN_FILE": str(token_file)}
    with ServiceThread(config) as service:
        drive(sim, start_daemon, env, f"{service.url}/provision/", tmp_path)
        assert get(f"{service.url}/provision/").status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        records = httpx.get(f"{service.url}/provision/", headers=auth, trust_env=False).json()
    assert_each_op_once(sim)
    assert_provisioned_once(sim, runs_file, argc=5)
    assert sorted(r["request"]["id"] for r in records) == sorted(sim.machines)
    assert {r["status_name"] for r in records} == {"complete"}


def test_faults_change_nothing_but_the_path_no_op_is_duplicated(
    start_sim: SimFactory,
    start_daemon: DaemonFactory,
    env_for: EnvFor,
    script: Path,
    runs_file: Path,
    tmp_path: Path,
    events: str,
) -> None:
    """503s, HTML 409s, latency, connections dropped before and after MAAS acted: no duplicate,
    following MAAS's event log (whose reads fail too) or polling.

    A write whose answer is lost after MAAS acted must not be sent again: the next pass
    reads the new status instead.
    """
    faults = Faults(
        latency_ms=50,
        error_503_rate=0.10,
        retry_after_503=1,
        conflict_409_rate=0.05,
        retry_after_409=1,
        drop_rate=0.03,
        drop_after_rate=0.03,
    )
    machines = generate_machines(50, 13)
    sim = start_sim(SimConfig(seed=13, time_factor=FAST, machines=machines, faults=faults))
    drive(sim, start_daemon, env_for(sim), str(script), tmp_path, timeout=75.0, events=events)
    assert_each_op_once(sim)
    assert_provisioned_once(sim, runs_file, argc=3)
    kinds = {r.fault for r in sim.request_log.faulted()}
    assert {"error_503", "conflict_409", "drop", "drop_after"} <= kinds
    # A write refused by MAAS itself (not by a fault) would be a repeat acted on a stale listing.
    refused = [r for r in sim.request_log.writes() if not r.effective and r.fault is None]
    assert refused == []
