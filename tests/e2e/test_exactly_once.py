"""End to end: provisioning runs exactly once per deploy, even when things die.

Each test injects one fault for real, around the real `maasflow` CLI in a subprocess
driving simulated machines to Deployed: the daemon SIGKILLed while its script runs, a
loopback proxy that forwards a POST to `maasflow serve` and drops the answer, a full
filesystem under the state directory (a small tmpfs), a deleted state directory. The
witness is the script's own record of runs (one line per start).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from maasflow.daemon.store import Store
from maasflow.serve import ServiceConfig, ServiceThread
from maasflow.sim import SimConfig, generate_machines
from tests.common.full_disk import fill, small_filesystem
from tests.e2e.conftest import FAST, DaemonFactory, SimFactory
from tests.e2e.helpers import (
    DaemonProcess,
    get,
    phases,
    read_runs,
    run_cli,
    wait_all_provisioned,
    wait_until,
)
from tests.e2e.proxy import LossyProxy

EnvFor = Callable[..., dict[str, str]]
GATED = """#!/bin/sh
# One line per start, the pid for the test, then wait for the go file.
printf '%s|%s|%s\\n' "$MAASFLOW_SYSTEM_ID" "${{MAAS_API_KEY:-unset}}" "$*" >> '{runs}'
echo $$ > '{pids}/'"$MAASFLOW_SYSTEM_ID"
while [ ! -e '{go}' ]; do sleep 0.05; done
echo "provisioned $MAASFLOW_SYSTEM_ID"
"""


@pytest.fixture
def gated(tmp_path: Path, runs_file: Path) -> Path:
    """A provisioning script that records its start, then waits for `tmp_path`/go."""
    path = tmp_path / "gated.sh"
    (tmp_path / "pids").mkdir()
    path.write_text(GATED.format(runs=runs_file, pids=tmp_path / "pids", go=tmp_path / "go"))
    path.chmod(0o755)
    return path


@pytest.fixture
def leftovers(tmp_path: Path) -> Iterator[None]:
    """Kill, after the test, any script a killed daemon left running."""
    yield
    for pid_file in (tmp_path / "pids").glob("*"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)


def daemon_args(state: Path, provision_url: str) -> list[str]:
    return [
        "-period", "0.2s", "-listen", "127.0.0.1:0", "-log-format", "json",
        "-state-dir", str(state), "-provision-url", provision_url,
    ]  # fmt: skip


def passes_after(daemon: DaemonProcess, count: int) -> None:
    """Wait until `daemon` has logged `count` passes."""

    def seen() -> int:
        return sum(event.get("event") == "pass" for event in daemon.events())

    wait_until(seen, lambda n: n >= count, 20, f"{count} passes")


def script_alive(tmp_path: Path, system_id: str) -> bool:
    pid_file = tmp_path / "pids" / system_id
    if not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_text()), 0)
    except ProcessLookupError:
        return False
    return True


def test_daemon_sigkilled_mid_script_never_runs_the_script_twice(
    start_sim: SimFactory,
    start_daemon: DaemonFactory,
    env_for: EnvFor,
    gated: Path,
    runs_file: Path,
    tmp_path: Path,
    leftovers: None,
) -> None:
    """SIGKILL while the scripts run: they run on; the restarted daemon waits for them (no
    second run, however many passes) and records their results once they end."""
    sim = start_sim(SimConfig(seed=51, time_factor=FAST, machines=generate_machines(3, 51)))
    args = daemon_args(tmp_path / "state", str(gated))
    first = start_daemon(args, env_for(sim))
    wait_until(lambda: read_runs(runs_file), lambda runs: len(runs) == 3, 30, "three starts")
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    assert all(script_alive(tmp_path, sid) for sid in sim.machines)

    second = start_daemon(args, env_for(sim))
    url = second.telemetry_url()
    passes_after(second, 5)
    assert len(read_runs(runs_file)) == 3
    assert set(phases(second.state(url)).values()) == {"provisioning"}
    (tmp_path / "go").touch()
    wait_all_provisioned(second, url, set(sim.machines), 30)
    assert second.terminate() == 0
    assert Counter(run.env_id for run in read_runs(runs_file)) == Counter(set(sim.machines))


def test_a_script_that_ends_while_the_daemon_is_dead_is_not_run_again(
    start_sim: SimFactory,
    start_daemon: DaemonFactory,
    env_for: EnvFor,
    gated: Path,
    runs_file: Path,
    tmp_path: Path,
    leftovers: None,
) -> None:
    """The scripts finish while no daemon runs: the next daemon takes their results, once."""
    sim = start_sim(SimConfig(seed=52, time_factor=FAST, machines=generate_machines(2, 52)))
    state = tmp_path / "state"
    first = start_daemon(daemon_args(state, str(gated)), env_for(sim))
    wait_until(lambda: read_runs(runs_file), lambda runs: len(runs) == 2, 30, "two starts")
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    (tmp_path / "go").touch()
    alive = [lambda sid=sid: script_alive(tmp_path, sid) for sid in sim.machines]
    wait_until(lambda: [a() for a in alive], lambda seen: not any(seen), 20, "the scripts' end")

    once = ["-once", "-listen", "", "-state-dir", str(state), "-provision-url", str(gated)]
    result = run_cli(once, env_for(sim))
    assert result.returncode == 0, result.stderr
    store = Store(state / "maasflow.sqlite")
    records = store.all()
    store.close()
    assert [(r.state, r.attempts, r.output_tail.split()[0]) for r in records] == [
        ("complete", 1, "provisioned")
    ] * 2
    assert len(read_runs(runs_file)) == 2
    assert list((state / "runs").iterdir()) == []  # the results are in the store now


def test_a_lost_post_answer_never_runs_the_job_twice(
    start_sim: SimFactory,
    start_daemon: DaemonFactory,
    env_for: EnvFor,
    script: Path,
    runs_file: Path,
    tmp_path: Path,
) -> None:
    """A proxy forwards each first POST to `maasflow serve` and drops the answer: the daemon
    asks (GET) instead of POSTing again, adopts the job, and each job runs once."""
    sim = start_sim(SimConfig(seed=53, time_factor=FAST, machines=generate_machines(2, 53)))
    config = ServiceConfig(script=script, db=tmp_path / "serve.sqlite")
    with ServiceThread(config) as service:
        host, port = service.url.removeprefix("http://").split(":")
        proxy = LossyProxy((host, int(port)))
        proxy.lose("POST", 2)
        try:
            provision_url = f"http://127.0.0.1:{proxy.port}/provision/"
            daemon = start_daemon(daemon_args(tmp_path / "state", provision_url), env_for(sim))
            wait_all_provisioned(daemon, daemon.telemetry_url(), set(sim.machines), 30)
            assert daemon.terminate() == 0
        finally:
            proxy.close()
        records = get(f"{service.url}/provision/").json()
    posts = Counter(line for line in proxy.log if line.startswith("POST"))
    assert posts == Counter({"POST /provision/": 2})  # one per machine: none repeated
    assert Counter(run.env_id for run in read_runs(runs_file)) == Counter(set(sim.machines))
    assert {r["status_name"] for r in records} == {"complete"}
    assert all(len(r["request"]["deploy_id"]) == 32 for r in records)
    lost = [e for e in daemon.events() if "asking the provisioner" in str(e.get("detail"))]
    assert len(lost) == 2


def test_a_full_disk_at_the_end_turns_health_503_and_loses_no_result(
    start_sim: SimFactory,
    start_daemon: DaemonFactory,
    env_for: EnvFor,
    gated: Path,
    runs_file: Path,
    tmp_path: Path,
    leftovers: None,
) -> None:
    """The script ends on a full state filesystem: /healthz answers 503 naming the store; the
    daemon is SIGKILLed too; once space returns the next daemon records the result, no rerun."""
    sim = start_sim(SimConfig(seed=54, time_factor=FAST, machines=generate_machines(1, 54)))
    with small_filesystem(tmp_path / "state") as state:
        args = daemon_args(state, str(gated))
        first = start_daemon(args, env_for(sim))
        url = first.telemetry_url()
        wait_until(lambda: read_runs(runs_file), lambda runs: len(runs) == 1, 30, "the start")
        filler = fill(state)
        (tmp_path / "go").touch()

        def health() -> tuple[int, str]:
            answer = get(f"{url}/healthz")
            return answer.status_code, answer.json()["reason"]

        _, reason = wait_until(health, lambda h: h[0] == 503, 20, "/healthz to say 503")
        assert reason.startswith("state store: state file ") and "full" in reason
        assert set(phases(first.state(url)).values()) == {"provisioning"}
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        filler.unlink()

        second = start_daemon(args, env_for(sim))
        url = second.telemetry_url()
        wait_all_provisioned(second, url, set(sim.machines), 40)
        assert get(f"{url}/healthz").status_code == 200
        assert second.terminate() == 0
    assert len(read_runs(runs_file)) == 1


def test_a_lost_state_directory_is_reported_before_provisioning_again(
    start_sim: SimFactory,
    start_daemon: DaemonFactory,
    env_for: EnvFor,
    script: Path,
    runs_file: Path,
    tmp_path: Path,
) -> None:
    """With the state directory deleted and -provision-existing, the first pass warns once how
    many Deployed machines of ours have no record, before they are provisioned again (without
    it they are adopted and left alone: tests/e2e/test_adopted.py)."""
    sim = start_sim(SimConfig(seed=55, time_factor=FAST, machines=generate_machines(3, 55)))
    state = tmp_path / "state"
    daemon = start_daemon(daemon_args(state, str(script)), env_for(sim))
    wait_all_provisioned(daemon, daemon.telemetry_url(), set(sim.machines), 30)
    assert daemon.terminate() == 0
    once = ["-once", "-listen", "", "-log-format", "json", "-state-dir", str(state),
            "-provision-url", str(script), "-provision-existing"]  # fmt: skip
    quiet = run_cli(once, env_for(sim))
    shutil.rmtree(state)
    lost = run_cli(once, env_for(sim))
    assert quiet.returncode == lost.returncode == 0
    assert warnings(quiet.stderr) == []
    (warning,) = warnings(lost.stderr)
    assert warning["count"] == 3 and warning["level"] == "warning"
    assert sorted(warning["system_ids"]) == sorted(sim.machines)
    assert len(read_runs(runs_file)) == 6  # provisioned again, as the warning said


def warnings(stderr: str) -> list[dict[str, Any]]:
    """The JSON log lines about Deployed machines without a record."""
    found = []
    for line in stderr.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if "without a provisioning record" in str(event.get("event")):
            found.append(event)
    return found
