"""End to end: doomed machines back off without stalling the fleet; failed ones are quarantined.

The daemon is the real CLI in a subprocess; the simulator (in this process) injects MAAS's
address-exhaustion 503 on some machines' deploy, every time, and its request log is the
witness. With two action slots and today's in-place write retries those deploys would hold
both slots for seconds every pass and starve the rest; now each doomed deploy is one request
per backoff step and every healthy machine is provisioned once. With `-retry-failed 1`, a
machine whose deployment always fails is released and deployed once more, then tagged in
MAAS and left alone until the tag is removed.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from maasflow.daemon.maas.auth import MaasAuth
from maasflow.sim import Faults, MachineSpec, SimConfig, Simulator, generate_machines
from maasflow.sim.faults import exhausted
from tests.e2e.conftest import FAST, DaemonFactory, SimFactory
from tests.e2e.helpers import (
    DaemonProcess,
    InstantProvisioner,
    get,
    phases,
    read_runs,
    run_cli,
    wait_all_provisioned,
    wait_until,
)

EnvFor = Callable[..., dict[str, str]]
ONE_EACH = Counter({"commission": 1, "allocate": 1, "deploy": 1})
TAG = "maasflow-quarantine"
PERIOD_S = 0.2
SLACK_S = 0.05  # the simulator stamps a request on arrival, the daemon its answer


def start(
    start_daemon: DaemonFactory,
    env: dict[str, str],
    provision: Path | str,
    tmp_path: Path,
    *extra: str,
) -> tuple[DaemonProcess, str]:
    args = ["-period", f"{PERIOD_S}s", "-listen", "127.0.0.1:0", "-log-format", "json"]
    args += ["-concurrency", "2", "-db", str(tmp_path / "maasflow.sqlite")]
    args += ["-provision-url", str(provision)]
    daemon = start_daemon([*args, *extra], env)
    return daemon, daemon.telemetry_url()


def deploy_times(sim: Simulator, system_id: str) -> list[float]:
    return [r.time for r in sim.request_log.for_machine(system_id) if r.op == "deploy"]


def test_doomed_503_deploys_back_off_and_every_healthy_machine_is_provisioned_once(
    start_sim: SimFactory,
    start_daemon: DaemonFactory,
    env_for: EnvFor,
    runs_file: Path,
    tmp_path: Path,
    home: Path,
    request: pytest.FixtureRequest,
) -> None:
    """Address exhaustion on ~1 in 5 deploys, two slots: every other machine ends provisioned
    once; each doomed deploy is sent once per growing backoff step, shown in status."""
    faults = Faults(ip_exhaustion_share=0.2)
    sim = start_sim(SimConfig(seed=31, time_factor=FAST, machines=generate_machines(24, 31),
                              faults=faults))  # fmt: skip
    doomed = {sid for sid in sim.machines if exhausted(faults, 31, sid)}
    healthy = set(sim.machines) - doomed
    assert len(doomed) >= 3
    # Provisioning here is an HTTP job done at once: a script would run under its supervisor
    # (a Python process each), and 19 of them at once on a 2-core box stretch the passes by
    # more than the sub-second backoff steps this test measures.
    provisioner = InstantProvisioner(runs_file)
    request.addfinalizer(provisioner.close)
    daemon, url = start(start_daemon, env_for(sim), provisioner.url, tmp_path)
    wait_all_provisioned(daemon, url, healthy, timeout=45)
    wait_until(
        lambda: min(len(deploy_times(sim, sid)) for sid in doomed),
        lambda fewest: fewest >= 7,
        30,
        "seven deploys of each doomed machine",
    )
    state = daemon.state(url)
    status = run_cli(["status", "--url", url], env_for(sim) | {"HOME": str(home)})
    assert daemon.terminate() == 0, daemon.output()

    assert {sid: Counter(sim.ops_for(sid)) for sid in healthy} == dict.fromkeys(healthy, ONE_EACH)
    assert Counter(run.env_id for run in read_runs(runs_file)) == Counter(healthy)
    for sid in doomed:
        assert sim.ops_for(sid) == ["commission", "allocate"]  # deploy never took effect
        times = deploy_times(sim, sid)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # Equal jitter: after k failures the wait is at least half of period * 2**(k-1). A slow
        # pass (a loaded machine) only lengthens a gap, so the floors hold however busy the
        # box is, and the last of six or more gaps (>= 3.2 s) is no once-a-pass retry.
        floors = [PERIOD_S * 2**step / 2 for step in range(len(gaps))]
        pairs = zip(gaps, floors, strict=True)
        short = [(gap, floor) for gap, floor in pairs if gap < floor - SLACK_S]
        assert not short, gaps
    rows = {m["system_id"]: m for m in state["machines"]}
    assert all(rows[sid]["backoff_action"] == "deploy" for sid in doomed)
    assert all(rows[sid]["backoff_failures"] >= 5 for sid in doomed)
    assert status.returncode == 0, status.stderr
    backoff_lines = [line for line in status.stdout.splitlines() if "deploy x" in line]
    assert len(backoff_lines) == len(doomed)


def untag(sim: Simulator, system_id: str) -> None:
    """A person removes the quarantine tag in MAAS (through the API, as the UI would)."""
    answer = httpx.post(
        f"{sim.url}/api/2.0/tags/{TAG}/",
        params={"op": "update_nodes"},
        data={"remove": system_id},
        auth=MaasAuth(sim.admin_key),
        trust_env=False,
    )
    assert answer.json() == {"added": 0, "removed": 1}


def test_failed_deployment_is_retried_then_quarantined_until_the_tag_is_removed(
    start_sim: SimFactory,
    start_daemon: DaemonFactory,
    env_for: EnvFor,
    script: Path,
    runs_file: Path,
    tmp_path: Path,
) -> None:
    """-retry-failed 1: a deployment that always fails is released and deployed once more,
    then tagged in MAAS (tag created) and left alone; removing the tag retries it again."""
    specs = generate_machines(4, 32)
    specs.append(MachineSpec("bad-1", deploy_outcome="fail", macs=["52:54:00:0b:ad:01"]))
    sim = start_sim(SimConfig(seed=32, time_factor=FAST, machines=specs))
    bad = sim.find("bad-1").system_id
    good = set(sim.machines) - {bad}
    daemon, url = start(start_daemon, env_for(sim), script, tmp_path, "-retry-failed", "1")
    wait_all_provisioned(daemon, url, good, timeout=30)
    wait_until(lambda: phases(daemon.state(url)).get(bad), lambda p: p == "quarantined", 30,
               "the failing machine quarantined")  # fmt: skip
    first = sim.ops_for(bad)
    assert first == ["commission", "allocate", "deploy", "release", "allocate", "deploy",
                     "update_nodes"]  # fmt: skip
    assert sim.find("bad-1").tags == [TAG]
    assert any(r.path.endswith("/tags/") and r.effective for r in sim.request_log)
    metrics = get(f"{url}/metrics").text
    assert "maasflow_quarantines_total 1.0" in metrics
    assert 'maasflow_failed_machine_retries_total{kind="release"} 1.0' in metrics
    untag(sim, bad)
    wait_until(lambda: sim.ops_for(bad)[len(first):].count("update_nodes"), lambda n: n == 2, 30,
               "our untag, then the daemon's tag after a fresh budget")  # fmt: skip
    assert daemon.terminate() == 0, daemon.output()
    again = sim.ops_for(bad)[len(first) + 1 :]  # after our own untag
    assert again == ["release", "allocate", "deploy", "update_nodes"]
    assert Counter(run.env_id for run in read_runs(runs_file)) == Counter(good)
    quarantined = [e for e in daemon.events() if e["event"].startswith("machine quarantined")]
    assert [e["system_id"] for e in quarantined] == [bad, bad]
