"""Benchmark: a full `GET machines/` of 10,000 simulated machines over loopback HTTP.

Starts the simulator with 10,000 machines on 127.0.0.1, warms the per-machine JSON cache
with one listing, then times RUNS more listings with an OAuth-signed httpx client and
prints the median seconds to receive the whole body (the simulator's goal: well under one
second), the median to also parse it with `json.loads` (the client's share), the median to
build the body in-process (the server's share), and the ratio of the received-body median
to the 1-second goal. Bounded: it does a fixed number of runs and stops by itself.
Run: `.venv/bin/python bench/bench_sim_listing.py [--machines N] [--runs N]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import httpx

from maasflow.daemon.maas.auth import MaasAuth
from maasflow.sim import SimConfig, SimulatorThread, generate_machines
from maasflow.sim.query import select

GOAL_SECONDS = 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    config = SimConfig(seed=1, machines=generate_machines(args.machines, seed=1))
    with SimulatorThread(config, timeout=60.0) as sim:
        url = sim.url + "/api/2.0/machines/"
        fetch, parse = [], []
        with httpx.Client(auth=MaasAuth(sim.admin_key), timeout=60.0) as client:
            size = len(client.get(url).content)  # warm-up: fills the JSON cache
            for _ in range(args.runs):
                started = time.perf_counter()
                body = client.get(url).content
                received = time.perf_counter()
                count = len(json.loads(body))
                fetch.append(received - started)
                parse.append(time.perf_counter() - started)
        build = []
        admin = sim.users[0]
        for _ in range(args.runs):
            started = time.perf_counter()
            b"[" + b",".join(m.to_json() for m in select(sim.world, admin, {})) + b"]"
            build.append(time.perf_counter() - started)
    median = statistics.median(fetch)
    print(f"machines listed:            {count} ({size / 1e6:.1f} MB of JSON)")
    print(f"median receive seconds:     {median:.3f}")
    print(f"median receive+parse:       {statistics.median(parse):.3f}")
    print(f"median in-process build:    {statistics.median(build):.3f}")
    print(f"ratio to the {GOAL_SECONDS:.0f} s goal:       {median / GOAL_SECONDS:.2f}")
    return 0 if median < GOAL_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
