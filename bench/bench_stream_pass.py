"""Benchmark: a steady daemon pass over real-sized machines ÷ the floor, ijson streaming.

For each fleet size (default 1,000 and 10,000), a simulated region serving real-sized machine
objects (~8.5 KB, `bench/real_region.py`) runs in its own process. Against it, in turns, this
script times: the floor, ijson (yajl2_c) streaming the same listing in another process
(`bench/ijson_floor.py`); a steady `Daemon.run_pass()` here (flows already built, no action
needed: the mix needs none, and the script checks that); and the naive baseline, httpx
reading the whole body and `json.loads` parsing it. It prints the medians and the ratios
pass ÷ floor (target at most 1.3) and naive ÷ floor, the same in CPU seconds (pass ÷ floor:
each process's own), and the daemon's listing call alone,
measured in one run so they hold on a noisy machine. Bounded: a fixed number of rounds,
each step under a deadline.
Run: `.venv/bin/python bench/bench_stream_pass.py [N ...] [--rounds R]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from ijson_floor import FloorProcess
from real_region import RealRegion

from maasflow.common.logs import configure_logging
from maasflow.daemon.actions import Actuator
from maasflow.daemon.loop import Daemon
from maasflow.daemon.maas.auth import MaasAuth
from maasflow.daemon.maas.client import MaasClient
from maasflow.daemon.mappings import Mappings
from maasflow.daemon.selection import FilterSpec
from maasflow.daemon.store import Store

TARGET = 1.3
STEP_DEADLINE = 120.0


def build_daemon(url: str, key: str) -> Daemon:
    """A daemon with no provisioner: Deployed is final, so this region needs no action."""
    client = MaasClient(url, key, timeout=STEP_DEADLINE)
    actuator = Actuator(client, Store(":memory:"), None)
    filters, mappings = FilterSpec.default(), Mappings.empty()
    return Daemon(client, actuator, filters=filters, mappings=mappings, period=15.0)


async def steady_pass(daemon: Daemon) -> float:
    started = time.perf_counter()
    summary = await asyncio.wait_for(daemon.run_pass(), STEP_DEADLINE)
    if summary.started:
        raise SystemExit(f"a pass started {summary.started} actions; the mix needs none")
    return time.perf_counter() - started


async def listing(daemon: Daemon) -> float:
    started = time.perf_counter()
    await daemon.client.list_machines()
    return time.perf_counter() - started


async def naive(http: httpx.AsyncClient, url: str) -> float:
    started = time.perf_counter()
    json.loads((await http.get(url + "/api/2.0/machines/")).content)
    return time.perf_counter() - started


async def measure(region: RealRegion, rounds: int) -> dict[str, list[float]]:
    daemon = build_daemon(region.url, region.key)
    auth = MaasAuth(region.key)
    names = ("floor", "floor cpu", "pass", "pass cpu", "naive", "listing")
    times: dict[str, list[float]] = {name: [] for name in names}
    async with httpx.AsyncClient(auth=auth, timeout=STEP_DEADLINE) as http:
        with FloorProcess(region.url, region.key) as floor:
            await daemon.identify(retry=False)
            await steady_pass(daemon)  # builds every flow: not the steady state
            _, _, machines, size = floor.run()  # warms the region's JSON cache
            print(f"  {machines} machines, {size / 1e6:.1f} MB ({size / machines:.0f} B each)")
            for _ in range(rounds):
                wall, cpu, _, _ = floor.run()
                times["floor"].append(wall)
                times["floor cpu"].append(cpu)
                cpu_before = time.process_time()
                times["pass"].append(await steady_pass(daemon))
                times["pass cpu"].append(time.process_time() - cpu_before)
                times["naive"].append(await naive(http, region.url))
                times["listing"].append(await listing(daemon))
    await daemon.client.aclose()
    daemon.actuator.store.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", type=int, nargs="*", default=[1_000, 10_000])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    configure_logging("error", "text")
    worst = 0.0
    for count in args.sizes:
        print(f"{count} real-sized machines:")
        with RealRegion(count) as region:
            times = asyncio.run(measure(region, args.rounds))
        med = {name: statistics.median(values) for name, values in times.items()}
        ratio = med["pass"] / med["floor"]
        worst = max(worst, ratio)
        print(f"  floor (ijson, own process) median {med['floor']:.3f} s over {args.rounds}")
        print(f"  steady pass                median {med['pass']:.3f} s")
        print(f"  its listing alone          median {med['listing']:.3f} s")
        print(f"  naive (whole body + json.loads) {med['naive']:.3f} s")
        print(f"  pass / floor  {ratio:.2f} (target <= {TARGET})")
        print(f"  naive / floor {med['naive'] / med['floor']:.2f}")
        cpu_ratio = med["pass cpu"] / med["floor cpu"]
        print(
            f"  CPU: pass {med['pass cpu']:.3f} s, floor {med['floor cpu']:.3f} s: {cpu_ratio:.2f}"
        )
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
