"""Benchmark 4: drive N New machines to Provisioned; writes ÷ transitions, wall ÷ the floor.

A simulator (in this process, so its request log is the witness) holds N New machines
(default 1,000). The real daemon (`python -m maasflow`, its own process, real HTTP) drives
them all until its `/state` shows every one `provisioned` (a provisioning script that does
nothing but exit 0). Then:

- write requests ÷ transitions: every POST/PUT/DELETE the simulator received, over the
  transitions the drive needs (commission, allocate, deploy: 3 a machine). Target exactly
  1.00; the script also checks each machine saw exactly one of each, all effective.
- wall time ÷ the floor. The floor is the simulator's own lifecycle time, measured in the
  same run: one machine of a second simulator with the same durations, driven by a bare
  client (the daemon's `MaasClient`, no decisions) that asks commission, allocate and
  deploy the moment the machine is ready for each, polling every 5 ms. It is what the
  simulated machines take (power on, commissioning, testing, deploying), not what the
  daemon adds. With N machines the daemon's 16 action slots and its period add to it.

Run: `.venv/bin/python bench/bench_drive.py [N] [--time-factor F] [--period P]`. Bounded:
the drive gives up after `--deadline` seconds (default 600). Durations are the simulator's
(commissioning 20 s, testing 10 s, deploying 40 s, power 2 s at factor 1), scaled by F
(default 0.05: ~3.6 s a machine). Its subnets have room for 6,000 machines (the default
ones hold 735: past that MAAS answers a deploy with address exhaustion).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from maasflow.common.logs import configure_logging
from maasflow.daemon.maas.client import MaasClient
from maasflow.sim import SimConfig, SimulatorThread, generate_machines

TRANSITIONS = Counter({"commission": 1, "allocate": 1, "deploy": 1})
POLL = 0.005
READY, DEPLOYED = 4, 6
SUBNETS = ["10.10.0.0/21", "10.20.0.0/21", "10.30.0.0/21"]  # room for 6,000 deployed machines


def write_script(folder: Path) -> Path:
    """A provisioning script that does nothing and succeeds."""
    script = folder / "provision.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


async def _until_status(client: MaasClient, system_id: str, status: int) -> None:
    while (await client.get_machine(system_id)).status != status:
        await asyncio.sleep(POLL)


async def _bare_drive(url: str, key: str, system_id: str) -> float:
    async with MaasClient(url, key) as client:
        started = time.perf_counter()
        await client.commission(system_id)
        await _until_status(client, system_id, READY)
        await client.allocate(system_id)
        await client.deploy(system_id)
        await _until_status(client, system_id, DEPLOYED)
        return time.perf_counter() - started


def floor_seconds(time_factor: float) -> float:
    """One machine driven by a bare client: the simulator's own lifecycle time."""
    config = SimConfig(seed=2, time_factor=time_factor, machines=generate_machines(1, 2))
    with SimulatorThread(config) as sim:
        (system_id,) = sim.machines
        return asyncio.run(_bare_drive(sim.url, sim.admin_key, system_id))


def daemon_env(url: str, key: str, home: Path) -> dict[str, str]:
    """PATH, a private HOME, the simulator's URL and key: nothing else of this process's."""
    path = os.environ.get("PATH", "/usr/bin:/bin")
    return {"PATH": path, "HOME": str(home), "MAAS_URL": url, "MAAS_API_KEY": key}


def telemetry_url(log: Path, daemon: subprocess.Popen[bytes]) -> str:
    """The `-listen` URL the daemon logs once it listens."""
    while daemon.poll() is None:
        for line in log.read_text().splitlines():
            if '"telemetry listening"' in line:
                return str(json.loads(line)["url"])
        time.sleep(0.1)
    raise SystemExit(f"the daemon exited {daemon.returncode}: {log.read_text()[-2000:]}")


def provisioned(state_url: str, wanted: set[str]) -> int:
    """How many of `wanted` the daemon's `/state` shows provisioned (0 if it is not up)."""
    try:
        state = httpx.get(state_url, timeout=10).json()
    except (httpx.HTTPError, ValueError):
        return 0
    return sum(
        1
        for m in state.get("machines", [])
        if m["system_id"] in wanted and m["phase"] == "provisioned"
    )


def drive(
    count: int, time_factor: float, period: str, deadline: float, keep_log: Path | None
) -> tuple[float, Counter[str], int]:
    """The wall time to drive `count` machines, each machine's ops, and the write count."""
    machines = generate_machines(count, 1)
    config = SimConfig(seed=1, time_factor=time_factor, machines=machines, subnets=SUBNETS)
    with tempfile.TemporaryDirectory() as tmp, SimulatorThread(config) as sim:
        folder = Path(tmp)
        args = [sys.executable, "-m", "maasflow", "-period", period, "-log-format", "json"]
        args += ["-listen", "127.0.0.1:0", "-db", str(folder / "state.sqlite")]
        args += ["-provision-url", str(write_script(folder))]
        wanted = set(sim.machines)
        started = time.perf_counter()
        with (folder / "daemon.log").open("w") as log:
            env = daemon_env(sim.url, sim.admin_key, folder)
            daemon = subprocess.Popen(args, env=env, stdout=log, stderr=log)
        try:
            state_url = telemetry_url(folder / "daemon.log", daemon) + "/state"
            while provisioned(state_url, wanted) < count:
                if daemon.poll() is not None or time.perf_counter() - started > deadline:
                    raise SystemExit(f"the drive did not finish (daemon exit {daemon.poll()})")
                time.sleep(0.2)
            wall = time.perf_counter() - started
        finally:
            daemon.terminate()
            daemon.wait(30)
            if keep_log is not None:
                shutil.copyfile(folder / "daemon.log", keep_log)
        ops = Counter(op for sid in wanted for op in sim.ops_for(sid))
        wrong = [sid for sid in wanted if Counter(sim.ops_for(sid)) != TRANSITIONS]
        if wrong:
            raise SystemExit(f"{len(wrong)} machines did not see one op of each: {wrong[:3]}")
        return wall, ops, len(sim.request_log.writes())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, nargs="?", default=1_000)
    parser.add_argument("--time-factor", type=float, default=0.05)
    parser.add_argument("--period", default="1s")
    parser.add_argument("--deadline", type=float, default=600.0)
    parser.add_argument("--keep-log", type=Path, help="copy the daemon's log here")
    args = parser.parse_args()
    configure_logging("error", "text")
    floor = floor_seconds(args.time_factor)
    print(f"floor: one machine, bare client, time factor {args.time_factor}: {floor:.2f} s")
    wall, ops, writes = drive(
        args.count, args.time_factor, args.period, args.deadline, args.keep_log
    )
    transitions = sum(ops.values())
    print(f"{args.count} machines New -> Provisioned by the daemon (period {args.period}):")
    print(f"  wall {wall:.2f} s; wall / floor {wall / floor:.2f}")
    print(f"  write requests {writes}, transitions {transitions} ({dict(ops)})")
    print(f"  writes / transitions {writes / transitions:.2f} (target exactly 1.00)")
    floor_again = floor_seconds(args.time_factor)
    print(f"floor again after the drive: {floor_again:.2f} s")
    return 0 if writes == transitions else 1


if __name__ == "__main__":
    raise SystemExit(main())
