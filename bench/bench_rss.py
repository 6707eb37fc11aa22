"""Benchmark: the daemon's peak resident memory at 10,000 real-sized machines, pass after pass.

A simulated region of real-sized machines (`bench/real_region.py`, its own process) is
listed by a real daemon in a child process, pass after pass; after each pass the child
prints its peak RSS (`ru_maxrss`) so far. Printed: the peak after the first pass, after
every tenth, and at the end, against the target (at most 150 MB, flat: the last ÷ the
first). Bounded: a fixed number of passes, each under a deadline.
Run: `.venv/bin/python bench/bench_rss.py [machines] [passes]` (defaults 10,000 and 20).
"""

from __future__ import annotations

import asyncio
import resource
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from real_region import RealRegion

TARGET_MB = 150.0


async def passes(url: str, key: str, count: int) -> None:
    from maasflow.common.logs import configure_logging
    from maasflow.daemon.actions import Actuator
    from maasflow.daemon.loop import Daemon
    from maasflow.daemon.maas.client import MaasClient
    from maasflow.daemon.mappings import Mappings
    from maasflow.daemon.selection import FilterSpec
    from maasflow.daemon.store import Store

    configure_logging("error", "text")
    client = MaasClient(url, key, timeout=120)
    daemon = Daemon(
        client,
        Actuator(client, Store(":memory:"), None),
        filters=FilterSpec.default(),
        mappings=Mappings.empty(),
        period=15.0,
    )
    await daemon.identify(retry=False)
    for _ in range(count):
        summary = await asyncio.wait_for(daemon.run_pass(), 120)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(summary.seen, f"{peak:.1f}", flush=True)
    await client.aclose()


def main(argv: list[str]) -> int:
    machines = int(argv[0]) if argv else 10_000
    count = int(argv[1]) if len(argv) > 1 else 20
    with RealRegion(machines) as region:
        child = subprocess.run(
            [sys.executable, __file__, "--child", region.url, str(count)],
            input=region.key + "\n",
            capture_output=True,
            text=True,
            timeout=120 * count,
            check=True,
        )
    lines = [line.split() for line in child.stdout.splitlines()]
    peaks = [float(peak) for _seen, peak in lines]
    for index, peak in enumerate(peaks, 1):
        if index == 1 or index % 10 == 0 or index == len(peaks):
            print(f"after pass {index:3d}: peak RSS {peak:6.1f} MB ({lines[0][0]} machines listed)")
    flat = peaks[-1] / peaks[0]
    print(f"peak {peaks[-1]:.1f} MB (target <= {TARGET_MB:.0f}); last / first {flat:.2f}")
    return 0 if peaks[-1] <= TARGET_MB else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        api_key = sys.stdin.readline().strip()  # never on a command line
        asyncio.run(passes(sys.argv[2], api_key, int(sys.argv[3])))
    else:
        raise SystemExit(main(sys.argv[1:]))
