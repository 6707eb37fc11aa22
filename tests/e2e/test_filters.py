"""End to end: what the filters and the ownership rules leave alone gets no write at all.

A filter file (`-filter @$VAR/filter.json`, the variable expanded by the daemon) excludes
hosts by regex and keeps zone `default`; machines of another user and locked machines are
hands-off whatever their status. The locked ones are ours and Deployed or Deploying, the
only statuses MAAS locks from (`Node.lock`): unlocked, the Deployed ones would be
provisioned. The daemon runs until the selected machines are Provisioned, so every other
machine was seen by many passes; the simulator's log must still show no request but GETs
aimed at them, and the script must never have run for them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from maasflow.sim import MachineSpec, SimConfig
from tests.e2e.conftest import FAST, DaemonFactory, SimFactory
from tests.e2e.helpers import read_runs, wait_all_provisioned

EnvFor = Callable[..., dict[str, str]]
FILTER = {"hosts": {"include": ["^(sel|skip|far|theirs|locked)-"], "exclude": ["^skip-"]}}
FILTER["zones"] = {"include": ["^default$"]}
SKIP_MAC = "52:54:00:bb:00:05"

SELECTED = ["sel-01", "sel-02", "sel-03", "sel-04"]
LEFT_ALONE = [
    MachineSpec("skip-01", macs=[SKIP_MAC]),
    MachineSpec("skip-02", status=4),
    MachineSpec("other-01"),  # not in the include list
    MachineSpec("far-01", zone="lab-b"),
    MachineSpec("far-02", status=4, zone="lab-b"),
    MachineSpec("theirs-1", status=10, owner="someone-else"),
    MachineSpec("theirs-2", status=6, owner="someone-else", power_state="on"),
    MachineSpec("locked-1", status=9, owner="admin", locked=True, power_state="on"),
    MachineSpec("locked-2", status=6, owner="admin", locked=True, power_state="on"),
    MachineSpec("locked-3", status=6, owner="admin", locked=True),
]


def test_excluded_other_zone_other_owner_and_locked_machines_get_no_write(
    start_sim: SimFactory,
    start_daemon: DaemonFactory,
    env_for: EnvFor,
    script: Path,
    runs_file: Path,
    tmp_path: Path,
) -> None:
    """Selected machines reach Provisioned while every other machine only ever appears in GETs."""
    specs = [MachineSpec(host) for host in SELECTED] + LEFT_ALONE
    sim = start_sim(SimConfig(seed=31, time_factor=FAST, machines=specs))
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "filter.json").write_text(json.dumps(FILTER))
    env = env_for(sim, FILTER_DIR=str(tmp_path / "conf"))
    args = ["-period", "0.2s", "-listen", "127.0.0.1:0", "-log-format", "json"]
    args += ["-filter", "@$FILTER_DIR/filter.json", "-provision-url", str(script)]
    args += ["-mappings", json.dumps({SKIP_MAC: "should-not-happen"})]
    args += ["-db", str(tmp_path / "state.sqlite")]
    daemon = start_daemon(args, env)
    ids = {m.hostname: sid for sid, m in sim.machines.items()}
    wait_all_provisioned(daemon, daemon.telemetry_url(), {ids[h] for h in SELECTED}, 30)
    assert daemon.terminate() == 0

    writes = {
        spec.hostname: [
            r.action for r in sim.request_log.for_machine(ids[spec.hostname]) if r.method != "GET"
        ]
        for spec in LEFT_ALONE
    }
    assert writes == {spec.hostname: [] for spec in LEFT_ALONE}
    for host in SELECTED:
        assert Counter(sim.ops_for(ids[host])) == Counter(["commission", "allocate", "deploy"])
    assert sorted(run.env_id for run in read_runs(runs_file)) == sorted(ids[h] for h in SELECTED)
    assert sim.machines[ids["skip-01"]].hostname == "skip-01"
