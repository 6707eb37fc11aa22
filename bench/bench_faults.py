"""Benchmark: thousands of simulated machines, 1-2 % faults, some doomed, and the real daemon.

A simulator in this process serves N New machines (default 5,000) with MAAS's failures
injected: per request 0.4 % 500s, 0.4 % 503s, 0.3 % HTML 409s, 0.2 % connections dropped
before and 0.2 % after MAAS acted (1.5 % in all); 1 % of commissionings and 1 % of
deployments fail; and 1 % of the machines are doomed: MAAS answers their deploy with its
address-exhaustion 503 every time. (The simulator's default subnets hold 735 deployed
machines; this run gives it three /20s of RFC 6598 space, data only, so the exhaustion is
only the injected one.) The daemon is the real `maasflow` CLI in a subprocess
(`-retry-failed 2`, 16 slots, a recording provisioning script that appends one line per
run to a file). The simulator's time factor shrinks every MAAS duration, so the run takes a
few minutes on 2 cores. The run ends when every machine that is not doomed is provisioned
(or quarantined after its retries), then checks:

- every healthy machine was provisioned exactly once (the script's file), no doomed one;
- no machine was written twice for one transition: two writes of the same op that took
  effect (sim request log) never fall between the same two status changes (sim events);
- doomed machines backed off: their deploys are a handful of requests, the k-th gap never
  shorter than the backoff's floor for k failures (half of period * 2**(k-1), capped; a
  busy pass only adds to it), so no retry inside an action and not one (or five) per pass,
  and a tiny share of all writes.

The share of actions "skipped: waited a period for a slot" is printed too. It is not a
check: the daemon hands every action of a pass to the executor and drops those that could
not start within a period (they are decided afresh next pass), so with thousands of
machines needing an action at once it measures the simulator's throughput (one core, about
200 writes a second), not blocking.

It prints the figures (for the README) and exits 1 when a check fails. Everything talks to
127.0.0.1. Run: `.venv/bin/python bench/bench_faults.py [machines]` (2 to 10 minutes for
5,000 on 2 cores, by how busy they are; each script run starts a supervisor).
"""

from __future__ import annotations

import bisect
import itertools
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx

from maasflow.sim import Faults, SimConfig, Simulator, SimulatorThread, generate_machines
from maasflow.sim.faults import exhausted

MACHINES = 5_000
SEED = 42
TIME_FACTOR = 0.01  # a 20 s commissioning takes 0.2 s
PERIOD_S = 3.0
CAP_S = 300.0  # the daemon's per-machine backoff cap (daemon.loop.BACKOFF_CAP_S)
DEADLINE_S = 1800.0  # a guard against a hang, not a goal: a busy 2-core box needs 10 min
FAULTS = Faults(
    error_500_rate=0.004,
    error_503_rate=0.004,
    retry_after_503=1,
    conflict_409_rate=0.003,
    retry_after_409=1,
    drop_rate=0.002,
    drop_after_rate=0.002,
    ip_exhaustion_share=0.01,
)
SUBNETS = ["100.64.0.0/20", "100.64.16.0/20", "100.64.32.0/20"]  # 12,000 addresses, never used
TAG = "maasflow-quarantine"
SCRIPT = "#!/bin/sh\nprintf '%s\\n' \"$MAASFLOW_SYSTEM_ID\" >> '{runs}'\n"


@dataclass
class Run:
    """What one benchmark run saw."""

    sim: Simulator
    doomed: set[str]
    runs: Counter[str]
    seconds: float
    metrics: str


def sim_config(count: int) -> SimConfig:
    return SimConfig(
        seed=SEED,
        time_factor=TIME_FACTOR,
        machines=generate_machines(count, SEED),
        faults=FAULTS,
        commission_fail_rate=0.01,
        deploy_fail_rate=0.01,
        subnets=SUBNETS,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def start_daemon(sim: Simulator, workdir: Path, port: int) -> subprocess.Popen[bytes]:
    runs = workdir / "runs"
    script = workdir / "provision.sh"
    script.write_text(SCRIPT.format(runs=runs))
    script.chmod(0o755)
    args = ["-maas", sim.url, "-period", f"{PERIOD_S}s", "-listen", f"127.0.0.1:{port}"]
    args += ["-log-format", "json", "-log-level", "warning", "-retry-failed", "2"]
    args += ["-db", str(workdir / "state.sqlite"), "-provision-url", str(script)]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir)}
    env["MAAS_API_KEY"] = sim.admin_key
    log = (workdir / "daemon.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "maasflow", *args], env=env, stderr=log)


def read_runs(path: Path) -> Counter[str]:
    return Counter(path.read_text().split()) if path.exists() else Counter()


def pending(sim: Simulator, doomed: set[str], runs: Counter[str]) -> int:
    """Machines neither doomed, provisioned nor quarantined yet."""
    left = 0
    for system_id, machine in list(sim.machines.items()):
        if system_id not in doomed and system_id not in runs and TAG not in machine.tags:
            left += 1
    return left


def drive(count: int) -> Run:
    """Run the daemon until every healthy machine is done; gather what the checks need."""
    with tempfile.TemporaryDirectory() as tmp, SimulatorThread(sim_config(count)) as sim:
        workdir = Path(tmp)
        doomed = {sid for sid in sim.machines if exhausted(FAULTS, SEED, sid)}
        port = free_port()
        started = time.monotonic()
        daemon = start_daemon(sim, workdir, port)
        try:
            wait_done(sim, doomed, workdir / "runs", daemon, started)
            seconds = time.monotonic() - started
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", trust_env=False).text
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(60)
        return Run(sim, doomed, read_runs(workdir / "runs"), seconds, metrics)


def wait_done(
    sim: Simulator, doomed: set[str], runs_file: Path, daemon: subprocess.Popen[bytes], t0: float
) -> Counter[str]:
    last_report = 0.0
    while True:
        runs = read_runs(runs_file)
        left = pending(sim, doomed, runs)
        now = time.monotonic() - t0
        if left == 0:
            return runs
        if daemon.poll() is not None:
            raise SystemExit(f"the daemon exited {daemon.returncode} with {left} machines left")
        if now > DEADLINE_S:
            raise SystemExit(f"{left} healthy machines still not provisioned after {now:.0f}s")
        if now - last_report >= 15:
            print(f"  {now:5.0f}s: {len(runs)} provisioned, {left} to go", flush=True)
            last_report = now
        time.sleep(1.0)


# -- the checks ---------------------------------------------------------------------------------


def duplicate_writes(sim: Simulator) -> list[str]:
    """Writes of one op that took effect twice between the same two status changes."""
    changes: dict[str, list[float]] = {}
    for event in sim.events.all():
        if event.type == "Node changed status":
            changes.setdefault(event.system_id, []).append(event.created)
    seen: set[tuple[str, str, int]] = set()
    found = []
    for record in sim.request_log:
        if record.method == "GET" or not record.effective or record.system_id is None:
            continue
        visit = bisect.bisect_left(changes.get(record.system_id, []), record.time)
        key = (record.system_id, record.action, visit)
        if key in seen:
            found.append(f"{record.system_id} {record.action}")
        seen.add(key)
    return found


def doomed_deploys(sim: Simulator, doomed: set[str]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {sid: [] for sid in doomed}
    for record in sim.request_log:
        if record.system_id in times and record.action == "deploy":
            times[record.system_id].append(record.time)
    return times


def metric_sum(metrics: str, name: str, *must: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith(name) and all(part in line for part in must):
            total += float(line.rsplit(" ", 1)[1])
    return total


def report(run: Run) -> list[str]:
    """Print the figures; return the failed checks."""
    sim, doomed, runs = run.sim, run.doomed, run.runs
    healthy = set(sim.machines) - doomed
    quarantined = {sid for sid, m in sim.machines.items() if TAG in m.tags}
    provisioned = healthy - quarantined
    duplicates = duplicate_writes(sim)
    deploys = doomed_deploys(sim, doomed)
    counts = [len(times) for times in deploys.values()]
    growing = sum(1 for t in deploys.values() if _backed_off(t))
    writes = sum(1 for r in sim.request_log if r.method != "GET")
    doomed_writes = sum(counts)
    actions = metric_sum(run.metrics, "maasflow_actions_total")
    skipped = metric_sum(run.metrics, "maasflow_actions_total", 'outcome="skipped"')
    faulted = Counter(r.fault for r in sim.request_log if r.fault)
    retried = metric_sum(run.metrics, "maasflow_failed_machine_retries_total")
    print(f"machines                     {len(sim.machines)} ({len(doomed)} doomed)")
    print(f"healthy provisioned          {len(provisioned & set(runs))} of {len(provisioned)}"
          f" in {run.seconds:.0f}s ({len(quarantined)} quarantined)")  # fmt: skip
    print(f"failed machines retried      {retried:.0f}")
    print(f"requests to MAAS             {len(sim.request_log)}; faulted: {dict(faulted)}")
    print(f"actions                      {actions:.0f}; skipped for a slot {skipped:.0f}"
          f" ({100 * skipped / max(actions, 1):.1f} %): {_by_kind(run.metrics)}")  # fmt: skip
    print(f"doomed deploys per machine   mean {statistics.mean(counts or [0]):.1f},"
          f" max {max(counts or [0])}; gaps >= the backoff floor for {growing} of {len(doomed)};"
          f" closest two {_closest(deploys):.1f}s; {doomed_writes} of {writes} writes"
          f" ({100 * doomed_writes / max(writes, 1):.2f} %)")  # fmt: skip
    print(f"script runs per machine      {dict(Counter(runs.values()))}")
    print(f"duplicate writes             {len(duplicates)} {duplicates[:5]}")
    return _failed_checks(run, provisioned, duplicates, counts, growing)


def _by_kind(metrics: str) -> dict[str, int]:
    """Skipped actions per kind, from the daemon's metrics."""
    found = {}
    for line in metrics.splitlines():
        if line.startswith("maasflow_actions_total") and 'outcome="skipped"' in line:
            kind = line.split('kind="', 1)[1].split('"', 1)[0]
            found[kind] = int(float(line.rsplit(" ", 1)[1]))
    return found


def _closest(deploys: dict[str, list[float]]) -> float:
    """The shortest time between two deploys of one doomed machine."""
    gaps = [b - a for times in deploys.values() for a, b in itertools.pairwise(times)]
    return min(gaps, default=math.inf)


def _backed_off(times: list[float]) -> bool:
    """Each gap is at least equal jitter's floor for its step (0.1 s of clock slack)."""
    gaps = [b - a for a, b in itertools.pairwise(times)]
    floors = [min(PERIOD_S * 2**step, CAP_S) / 2 for step in range(len(gaps))]
    return all(gap >= floor - 0.1 for gap, floor in zip(gaps, floors, strict=True))


def _failed_checks(
    run: Run,
    provisioned: set[str],
    duplicates: list[str],
    counts: list[int],
    growing: int,
) -> list[str]:
    failed = []
    if any(run.runs[sid] != 1 for sid in provisioned) or any(run.runs[s] for s in run.doomed):
        failed.append("a healthy machine not provisioned exactly once, or a doomed one provisioned")
    if duplicates:
        failed.append("a machine written twice for one transition")
    most = math.log2(run.seconds / PERIOD_S) + 3 + run.seconds / 150  # doubling, then capped
    if max(counts or [0]) > most or growing < len(run.doomed):
        failed.append(f"doomed deploys not backed off (at most {most:.0f} each, gaps >= floor)")
    return failed


def main(argv: list[str]) -> int:
    count = int(argv[1]) if len(argv) > 1 else MACHINES
    print(f"bench_faults: {count} machines, faults {FAULTS.describe()}, time factor {TIME_FACTOR}")
    failed = report(drive(count))
    for check in failed:
        print(f"FAILED: {check}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
