"""End to end: a targets file against the simulator, over real HTTP.

A fleet with one machine per rule (power off, Ready with a quick erase, Allocated, a
deploy with parameters, Ignore) and machines no rule asks to change (the default with no
provisioning, another user's machine under the erase rule) converges; the simulator's log
then shows exactly the writes each rule asked for, with the parameters MAAS takes (facts
§3.3, §3.5, §3.7), and no write at all to the others. `-preview` with the same file names
each machine's rule.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from maasflow.sim import MachineSpec, SimConfig, Simulator
from maasflow.sim.scenario import ADMIN, OTHER_OWNER
from tests.e2e.conftest import FAST, DaemonFactory, SimFactory
from tests.e2e.helpers import run_cli, wait_until

EnvFor = Callable[..., dict[str, str]]
USER_DATA = "#cloud-config\nruncmd: [touch, /tmp/hello]\n"
RULES = [
    {"tags": {"include": ["^stop$"]}, "power": "off"},
    {"tags": {"include": ["^scrap$"]}, "target": "Ready", "release": {"quick_erase": True}},
    {"tags": {"include": ["^hold$"]}, "target": "Allocated"},
    {"zones": {"include": ["^lab$"]}, "target": "Ignore"},
    {
        "tags": {"include": ["^db$"]},
        "distro_series": "ubuntu/jammy",
        "hwe_kernel": "hwe-22.04",
        "user_data_file": "db.yaml",
    },
]
FLEET = [
    MachineSpec("cloud-1", status=6, owner=ADMIN, power_state="on", tags=["stop"]),
    MachineSpec("scrap-1", status=6, owner=ADMIN, power_state="on", tags=["scrap"]),
    MachineSpec("spare-1", tags=["hold"]),
    MachineSpec("db-1", status=10, owner=ADMIN, tags=["db"]),
    MachineSpec("lab-1", zone="lab"),
    MachineSpec("keep-1", status=6, owner=ADMIN, power_state="off"),
    MachineSpec("theirs-1", status=6, owner=OTHER_OWNER, power_state="on", tags=["scrap"]),
]
CHANGED = {"cloud-1", "scrap-1", "spare-1", "db-1"}


def start_fleet(start_sim: SimFactory) -> Simulator:
    config = SimConfig(
        seed=10, time_factor=FAST, machines=FLEET, zones=["default", "lab"],
        tags=["stop", "scrap", "hold", "db"],
    )  # fmt: skip
    return start_sim(config)


def write_targets(tmp_path: Path) -> Path:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "db.yaml").write_text(USER_DATA)
    (conf / "targets.json").write_text(json.dumps(RULES))
    return conf / "targets.json"


def converged(sim: Simulator, ids: dict[str, str]) -> dict[str, Any]:
    machines = {host: sim.machines[sid] for host, sid in ids.items()}
    return {
        "cloud-1": machines["cloud-1"].power_state,
        "scrap-1": machines["scrap-1"].status,
        "spare-1": machines["spare-1"].status,
        "db-1": machines["db-1"].status,
    }


def test_power_off_and_release_with_quick_erase_converge_and_nothing_else_is_written(
    start_sim: SimFactory, start_daemon: DaemonFactory, env_for: EnvFor, tmp_path: Path
) -> None:
    """Each rule's machine reaches what it asks; machines no rule changes get no write."""
    sim = start_fleet(start_sim)
    targets = write_targets(tmp_path)
    args = ["-period", "0.2s", "-listen", "127.0.0.1:0", "-log-format", "json", "-filter", "{}"]
    args += ["-targets", f"@{targets}", "-db", str(tmp_path / "state.sqlite")]
    daemon = start_daemon(args, env_for(sim))
    ids = {m.hostname: sid for sid, m in sim.machines.items()}
    goal = {"cloud-1": "off", "scrap-1": 4, "spare-1": 10, "db-1": 6}
    wait_until(lambda: converged(sim, ids), lambda now: now == goal, 30, "the fleet to converge")
    url = daemon.telemetry_url()
    passes = daemon.state(url)["pass"]["count"]
    wait_until(
        lambda: daemon.state(url)["pass"]["count"], lambda n: n >= passes + 3, 10, "3 passes"
    )
    assert daemon.terminate() == 0

    writes = {
        host: [(r.action, r.params) for r in sim.request_log.for_machine(sid) if r.method != "GET"]
        for host, sid in ids.items()
    }
    assert {host: w for host, w in writes.items() if host not in CHANGED} == {
        host: [] for host in ids if host not in CHANGED
    }
    assert [op for op, _params in writes["cloud-1"]] == ["power_off"]
    ((op, release),) = writes["scrap-1"]
    assert op == "release" and release["erase"] == ["true"] and release["quick_erase"] == ["true"]
    assert [op for op, _params in writes["spare-1"]] == ["commission", "allocate"]
    ((op, deploy),) = writes["db-1"]
    assert op == "deploy"
    assert (deploy["distro_series"], deploy["hwe_kernel"]) == (["ubuntu/jammy"], ["hwe-22.04"])
    assert base64.b64decode(deploy["user_data"][0]).decode() == USER_DATA
    assert sim.machines[ids["spare-1"]].owner == ADMIN


def test_preview_names_each_machines_rule_and_plan(
    start_sim: SimFactory, env_for: EnvFor, tmp_path: Path
) -> None:
    """`-preview -targets @file` prints each machine's rule and what would be done; no write."""
    sim = start_fleet(start_sim)
    targets = write_targets(tmp_path)
    result = run_cli(
        ["-preview", "-filter", "{}", "-targets", f"@{targets}", "-db", str(tmp_path / "p.db")],
        env_for(sim),
    )
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    expected = {
        "cloud-1": ("rule 1: deployed", "power_off"),
        "scrap-1": ("rule 2: ready", "release erase=true quick_erase=true"),
        "spare-1": ("rule 3: allocated", "commission"),
        "lab-1": ("rule 4: ignore", "hands off"),
        "db-1": ("rule 5: deployed", "deploy distro_series=ubuntu/jammy hwe_kernel=hwe-22.04"),
        "keep-1": ("default: deployed", "no PROVISION_URL"),
        "theirs-1": ("rule 2: ready", "owned by"),
    }
    for host, words in expected.items():
        assert all(word in lines[host] for word in words), (host, lines[host])
    assert "sha256" in lines["db-1"] and "runcmd" not in result.stdout
    assert {r.method for r in sim.request_log} == {"GET"}


DESIRE_TOKEN = "e2e-mixed-desire-token-0123456789"


def test_a_mixed_fleet_with_an_enlisted_machine_and_a_desire_put_over_http_converges(
    start_sim: SimFactory, start_daemon: DaemonFactory, env_for: EnvFor, tmp_path: Path
) -> None:
    """Issue 10's fleet: the rules above, a machine `maasflow enlist` recorded as running, and a
    desire PUT over HTTP (power keep-1 on) all converge; the enlisted machine, the Ignore rule's
    and another user's get no write at all, and nothing else is written twice."""
    sim = start_fleet(start_sim)
    targets = write_targets(tmp_path)
    enlisted = run_cli(
        ["enlist", "--hostname", "enl-1", "--mac", "52:54:00:0e:00:01"], env_for(sim)
    )
    assert enlisted.returncode == 0, enlisted.stderr
    ids = {m.hostname: sid for sid, m in sim.machines.items()}
    before = {host: len(sim.request_log.for_machine(sid)) for host, sid in ids.items()}
    token = tmp_path / "desire-token"
    token.write_text(DESIRE_TOKEN + "\n")
    token.chmod(0o600)
    args = ["-period", "0.2s", "-listen", "127.0.0.1:0", "-log-format", "json", "-filter", "{}"]
    args += ["-targets", f"@{targets}", "-db", str(tmp_path / "state.sqlite")]
    daemon = start_daemon(args, env_for(sim, DESIRE_TOKEN_FILE=str(token)))
    url = daemon.telemetry_url()
    put = run_cli(
        ["desire", "keep-1", "--power", "on"],
        env_for(sim, DESIRE_TOKEN_FILE=str(token), MAASFLOW_STATUS_URL=url),
    )
    assert put.returncode == 0, put.stderr

    def now() -> dict[str, Any]:
        return converged(sim, ids) | {"keep-1": sim.machines[ids["keep-1"]].power_state}

    goal = {"cloud-1": "off", "scrap-1": 4, "spare-1": 10, "db-1": 6, "keep-1": "on"}
    wait_until(now, lambda seen: seen == goal, 30, "the mixed fleet to converge")
    passes = daemon.state(url)["pass"]["count"]
    wait_until(
        lambda: daemon.state(url)["pass"]["count"], lambda n: n >= passes + 3, 10, "3 passes"
    )
    assert daemon.terminate() == 0
    writes = {
        host: [
            r.action for r in sim.request_log.for_machine(sid)[before[host] :] if r.method != "GET"
        ]
        for host, sid in ids.items()
    }
    assert writes == {
        "cloud-1": ["power_off"],
        "scrap-1": ["release"],
        "spare-1": ["commission", "allocate"],
        "db-1": ["deploy"],
        "keep-1": ["power_on"],
        "enl-1": [],
        "lab-1": [],
        "theirs-1": [],
    }
    assert sim.machines[ids["enl-1"]].status == 6  # still Deployed, never touched
