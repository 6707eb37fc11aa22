"""Benchmark: one daemon pass over 10,000 machines against the listing it cannot avoid.

The floor of a pass is fetching and parsing MAAS's machine listing; everything maasflow adds
(filters, one flow per machine, the decision, the bookkeeping) should be small next to it.
This script serves a simulator with 10,000 machines on loopback (its own thread), then times,
over real HTTP, `MaasClient.list_machines()` alone and a full `Daemon.run_pass()`, and prints
the medians, their ratio, and the pass's own overhead (the pass minus the listing inside it,
which is timed by wrapping the client's method). The machines are in states that need no
action (Deployed with no provisioning configured, other users', locked, failed, broken,
another zone), so no action is started; the script checks that. The first pass, which builds
every machine's flow, is reported on its own. Each step has a deadline, so a regression makes
the script fail rather than hang. The simulator shares this process (and its GIL), so both
timings include serving the listing, as a pass against a busy region would.
Run: `.venv/bin/python bench/bench_pass.py [machines]` (about 30 s for 10,000).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

from maasflow.common.logs import configure_logging
from maasflow.daemon.actions import Actuator
from maasflow.daemon.loop import Daemon
from maasflow.daemon.maas.client import MaasClient
from maasflow.daemon.maas.models import Machine
from maasflow.daemon.mappings import Mappings
from maasflow.daemon.selection import FilterSpec
from maasflow.daemon.store import Store
from maasflow.sim import MachineSpec, SimConfig, SimulatorThread

MACHINES = 10_000
ROUNDS = 7
STEP_DEADLINE = 60.0  # seconds any single listing or pass may take before we give up
ADMIN = "admin"

# (share of the region, spec fields): every one needs no action from the daemon.
MIX: list[tuple[float, dict[str, object]]] = [
    (0.70, {"status": 6, "owner": ADMIN, "power_state": "on"}),
    (0.10, {"status": 6, "owner": "someone-else", "power_state": "on"}),
    (0.05, {"status": 4, "locked": True}),
    (0.05, {"status": 2}),
    (0.05, {"status": 8}),
    (0.05, {"zone": "lab-b"}),
]


def specs(count: int) -> list[MachineSpec]:
    """`count` machines in the proportions of MIX, with distinct MACs."""
    result: list[MachineSpec] = []
    for share, fields in MIX:
        for _ in range(round(count * share)):
            index = len(result) + 1
            mac = f"52:54:{index >> 24 & 0xFF:02x}:{index >> 16 & 0xFF:02x}:"
            mac += f"{index >> 8 & 0xFF:02x}:{index & 0xFF:02x}"
            spec = MachineSpec(hostname=f"node-{index:05d}", macs=[mac])
            for name, value in fields.items():
                setattr(spec, name, value)
            result.append(spec)
    return result[:count]


async def timed(step: Callable[[], Awaitable[object]]) -> float:
    """Seconds one awaited step took (failing past the deadline)."""
    start = time.perf_counter()
    await asyncio.wait_for(step(), STEP_DEADLINE)
    return time.perf_counter() - start


def build_daemon(url: str, key: str) -> Daemon:
    """A daemon with no provisioner: Deployed is final, so this region needs no action."""
    client = MaasClient(url, key)
    actuator = Actuator(client, Store(":memory:"), None)
    return Daemon(
        client, actuator, filters=FilterSpec.default(), mappings=Mappings.empty(), period=15.0
    )


class ListingClock:
    """Wraps a client's `list_machines` to remember how long the last call took."""

    def __init__(self, inner: Callable[[], Awaitable[list[Machine]]]) -> None:
        self.inner = inner
        self.last = 0.0

    async def __call__(self) -> list[Machine]:
        start = time.perf_counter()
        try:
            return await self.inner()
        finally:
            self.last = time.perf_counter() - start


async def quiet_pass(daemon: Daemon) -> None:
    """One pass, which must start no action (the mix needs none)."""
    summary = await daemon.run_pass()
    if summary.started:
        raise SystemExit(f"a pass started {summary.started} actions; the mix needs none")


async def measure(url: str, key: str, count: int) -> dict[str, list[float]]:
    """Listing-only and full-pass timings, alternated so drift hits both alike."""
    daemon = build_daemon(url, key)
    clock = ListingClock(daemon.client.list_machines)
    # The pass's own listing is timed too, so its overhead is measured within one pass.
    setattr(daemon.client, "list_machines", clock)  # noqa: B010 - mypy forbids assigning a method
    try:
        await daemon.identify(retry=False)
        listed = await daemon.client.list_machines()
        if len(listed) != count:
            raise SystemExit(f"the simulator listed {len(listed)} machines, not {count}")
        first = await timed(lambda: quiet_pass(daemon))
        times: dict[str, list[float]] = {"listing": [], "pass": [], "overhead": []}
        times["first pass overhead"] = [first - clock.last]
        for _ in range(ROUNDS):
            times["listing"].append(await timed(clock))
            times["pass"].append(await timed(lambda: quiet_pass(daemon)))
            times["overhead"].append(times["pass"][-1] - clock.last)
        return times
    finally:
        await daemon.client.aclose()
        daemon.actuator.store.close()


def main(argv: list[str]) -> int:
    count = int(argv[0]) if argv else MACHINES
    configure_logging("error", "text")  # failed machines are logged once each: not timing
    config = SimConfig(seed=1, machines=specs(count), zones=["default", "lab-b"])
    started = time.perf_counter()
    with SimulatorThread(config, timeout=120) as sim:
        print(f"simulator with {count} machines up in {time.perf_counter() - started:.1f}s")
        times = asyncio.run(measure(sim.url, sim.admin_key, count))
    median = {name: statistics.median(values) * 1000 for name, values in times.items()}
    print(f"listing alone            median {median['listing']:8.1f} ms over {ROUNDS} rounds")
    print(f"full pass                median {median['pass']:8.1f} ms")
    print(f"pass minus its listing   median {median['overhead']:8.1f} ms")
    print(f"first pass minus listing        {median['first pass overhead']:8.1f} ms (flows built)")
    print(f"pass / listing           {median['pass'] / median['listing']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
