"""End to end: two daemons on one PostgreSQL, one acts; the leader dies mid-provisioning.

Real processes throughout: two `maasflow` daemons against one simulator and the session's
PostgreSQL (tests/postgres_cluster.py), each with its own state directory, provisioning
with a script that records each start and then waits for a go file. The leader is killed
(SIGKILL) while its scripts run, or paused (SIGSTOP) past its lease and resumed. The
invariants each time: every machine reaches its target, no MAAS write is sent twice for one
transition, no provisioning runs twice for one deploy, and the standby took over within the
bound (1.25 leases after the leader stopped).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from maasflow.sim import SimConfig, Simulator, generate_machines
from tests.e2e.conftest import FAST, DaemonFactory, SimFactory
from tests.e2e.helpers import (
    DaemonProcess,
    get,
    read_runs,
    wait_all_provisioned,
    wait_until,
)
from tests.e2e.tcp_cut import CuttableProxy
from tests.postgres_cluster import PostgresDatabase

EnvFor = Callable[..., dict[str, str]]
LEASE = 2.0
BOUND = 1.25 * LEASE  # a lease, plus the standby's next try
GATED = """#!/bin/sh
printf '%s|%s|%s\\n' "$MAASFLOW_SYSTEM_ID" "${{MAAS_API_KEY:-unset}}" "$*" >> '{runs}'
echo $$ > '{pids}/'"$MAASFLOW_SYSTEM_ID"
while [ ! -e '{go}' ]; do sleep 0.05; done
echo "provisioned $MAASFLOW_SYSTEM_ID"
"""


@pytest.fixture
def gated(tmp_path: Path, runs_file: Path) -> Iterator[Path]:
    """A script that records its start and waits for `tmp_path`/go; killed after the test."""
    path = tmp_path / "gated.sh"
    (tmp_path / "pids").mkdir()
    path.write_text(GATED.format(runs=runs_file, pids=tmp_path / "pids", go=tmp_path / "go"))
    path.chmod(0o755)
    yield path
    for pid_file in (tmp_path / "pids").glob("*"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)


def _args(db: PostgresDatabase, state: Path, script: Path) -> list[str]:
    return [
        "-period", "0.2s", "-listen", "127.0.0.1:0", "-log-format", "json",
        "-state-dir", str(state), "-provision-url", str(script),
        "-db", db.url, "-db-password-file", str(db.server.password_file),
        "-leader-lease", f"{LEASE}s",
    ]  # fmt: skip


def _leading_at(daemon: DaemonProcess, timeout: float = 30.0) -> float:
    """When (unix time) `daemon` logged that it leads; waits for it."""
    stamp = str(daemon.wait_event("leading", timeout)["timestamp"])
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _leader_gauge(url: str) -> float:
    body = get(f"{url}/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(body)}
    return float(families["maasflow_leader"].samples[0].value)


def _pair(
    start_daemon: DaemonFactory, env: dict[str, str], db: PostgresDatabase, tmp: Path, script: Path
) -> tuple[DaemonProcess, str, DaemonProcess, str]:
    """The leader (started first, leading) and a standby, each with its telemetry URL."""
    leader = start_daemon(_args(db, tmp / "state-a", script), env)
    leader_url = leader.telemetry_url()
    _leading_at(leader)
    standby = start_daemon(_args(db, tmp / "state-b", script), env)
    standby_url = standby.telemetry_url()
    health = wait_until(
        lambda: get(f"{standby_url}/healthz"), lambda r: r.status_code == 200, 20, "standby"
    )
    assert health.json() == {"status": "ok", "reason": "standby", "role": "standby"}
    assert get(f"{leader_url}/healthz").json()["role"] == "leader"
    assert (_leader_gauge(leader_url), _leader_gauge(standby_url)) == (1.0, 0.0)
    return leader, leader_url, standby, standby_url


def _assert_once_each(sim: Simulator, runs_file: Path) -> None:
    """No provisioning twice for one deploy; no MAAS write sent twice for one transition."""
    assert Counter(run.env_id for run in read_runs(runs_file)) == Counter(set(sim.machines))
    writes = Counter(
        (r.system_id, r.action, tuple(sorted((k, tuple(v)) for k, v in r.params.items())))
        for r in sim.request_log.writes()
    )
    assert [w for w, n in writes.items() if n > 1] == []


def test_sigkill_of_the_leader_mid_provisioning_hands_over_once(
    start_sim: SimFactory,
    start_daemon: DaemonFactory,
    env_for: EnvFor,
    gated: Path,
    runs_file: Path,
    tmp_path: Path,
    postgres_database: PostgresDatabase,
) -> None:
    """The leader SIGKILLed while its scripts run: the standby leads within the bound, adopts
    the runs, and every machine is provisioned, each once, with no MAAS write repeated."""
    sim = start_sim(SimConfig(seed=61, time_factor=FAST, machines=generate_machines(4, 61)))
    env = env_for(sim)
    leader, _, standby, standby_url = _pair(start_daemon, env, postgres_database, tmp_path, gated)
    wait_until(lambda: read_runs(runs_file), lambda runs: len(runs) >= 1, 30, "a script running")
    leader.proc.send_signal(signal.SIGKILL)
    killed_at = time.time()
    leader.proc.wait(10)
    took_over = _leading_at(standby) - killed_at
    (tmp_path / "go").touch()
    wait_all_provisioned(standby, standby_url, set(sim.machines), 60)
    assert get(f"{standby_url}/state").json()["leadership"]["epoch"] == 2
    assert standby.terminate() == 0
    assert took_over <= BOUND, f"standby took {took_over:.2f}s to lead (bound {BOUND}s)"
    _assert_once_each(sim, runs_file)


def test_a_leader_paused_past_its_lease_hands_over_and_exits_when_resumed(
    start_sim: SimFactory,
    start_daemon: DaemonFactory,
    env_for: EnvFor,
    gated: Path,
    runs_file: Path,
    tmp_path: Path,
    postgres_database: PostgresDatabase,
) -> None:
    """SIGSTOP the leader: PostgreSQL drops its silent session, the standby leads within the
    bound; SIGCONT: the old leader finds its lease gone, writes nothing and exits 1."""
    sim = start_sim(SimConfig(seed=62, time_factor=FAST, machines=generate_machines(4, 62)))
    env = env_for(sim)
    leader, _, standby, standby_url = _pair(start_daemon, env, postgres_database, tmp_path, gated)
    wait_until(lambda: read_runs(runs_file), lambda runs: len(runs) >= 1, 30, "a script running")
    leader.proc.send_signal(signal.SIGSTOP)
    paused_at = time.time()
    took_over = _leading_at(standby) - paused_at
    leader.proc.send_signal(signal.SIGCONT)
    assert leader.proc.wait(30) == 1
    lost = [e for e in leader.events() if e.get("event", "").startswith("leadership lost")]
    assert lost, leader.output()
    (tmp_path / "go").touch()
    wait_all_provisioned(standby, standby_url, set(sim.machines), 60)
    assert standby.terminate() == 0
    assert took_over <= BOUND, f"standby took {took_over:.2f}s to lead (bound {BOUND}s)"
    _assert_once_each(sim, runs_file)


def test_a_leader_cut_off_from_postgresql_hands_over(
    start_sim: SimFactory,
    start_daemon: DaemonFactory,
    env_for: EnvFor,
    gated: Path,
    runs_file: Path,
    tmp_path: Path,
    postgres_database: PostgresDatabase,
) -> None:
    """The leader's path to PostgreSQL goes dark: the server ends its silent session, the
    standby leads within the bound, and the cut-off leader never acts again."""
    sim = start_sim(SimConfig(seed=63, time_factor=FAST, machines=generate_machines(4, 63)))
    env = env_for(sim)
    server = postgres_database.server
    proxy = CuttableProxy((server.host, server.port))
    try:
        via_proxy = PostgresDatabase(replace(server, port=proxy.port), postgres_database.name)
        leader = start_daemon(_args(via_proxy, tmp_path / "state-a", gated), env)
        leader.telemetry_url()
        _leading_at(leader)
        standby = start_daemon(_args(postgres_database, tmp_path / "state-b", gated), env)
        standby_url = standby.telemetry_url()
        wait_until(lambda: read_runs(runs_file), lambda r: len(r) >= 1, 30, "a script running")
        proxy.cut()
        cut_at = time.time()
        took_over = _leading_at(standby) - cut_at
        (tmp_path / "go").touch()
        wait_all_provisioned(standby, standby_url, set(sim.machines), 60)
        assert standby.terminate() == 0
    finally:
        proxy.close()
    assert took_over <= BOUND, f"standby took {took_over:.2f}s to lead (bound {BOUND}s)"
    assert leader.proc.wait(30) == 1
    _assert_once_each(sim, runs_file)
