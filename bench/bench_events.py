"""Benchmark: an event-driven pass with 10 machines changed ÷ a full pass, in CPU and bytes.

A simulated region of real-sized machines (`bench/real_region.py`, its own process, every
machine at rest) serves the daemon. Each round: a full pass (`Daemon.run_pass()`: the
event cursor, then the whole listing), then 10 Deployed machines are marked broken through
the API (not measured: a person in the UI), then one `Daemon.step()`, which reads the event
log after its cursor and re-reads the 10 machines by id. For both it measures this
process's CPU time (every thread: the listing is parsed in one) and the bytes of the
answers' bodies, counted at the transport. It prints the medians and the ratios
event ÷ full (target at most 0.02 for both), measured in the same run, and checks that the
event pass saw exactly the 10 machines. The naive baseline re-reads everything: ratio 1.
Run: `.venv/bin/python bench/bench_events.py [N] [--rounds R] [--changed C]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from real_region import RealRegion

from maasflow.common.logs import configure_logging
from maasflow.daemon.actions import Actuator
from maasflow.daemon.event_feed import EventFeed
from maasflow.daemon.loop import Daemon
from maasflow.daemon.maas.auth import MaasAuth
from maasflow.daemon.maas.client import MaasClient
from maasflow.daemon.mappings import Mappings
from maasflow.daemon.selection import FilterSpec
from maasflow.daemon.store import Store

TARGET = 0.02
STEP_DEADLINE = 120.0


class CountingTransport(httpx.AsyncBaseTransport):
    """httpx's transport, counting the bytes of every answer's body as it is read."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.bytes = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_Counted(response, self),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Counted(httpx.AsyncByteStream):
    def __init__(self, response: httpx.Response, counter: CountingTransport) -> None:
        self.response, self.counter = response, counter

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.response.aiter_raw():
            self.counter.bytes += len(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self.response.aclose()


def build_daemon(url: str, key: str, transport: CountingTransport) -> Daemon:
    """A daemon following the event log, with no provisioner: the region needs no action."""
    client = MaasClient(url, key, timeout=STEP_DEADLINE, transport=transport)
    feed = EventFeed(client.events_after, relist_s=3600.0)
    actuator = Actuator(client, Store(":memory:"), None)
    filters, mappings = FilterSpec.default(), Mappings.empty()
    return Daemon(client, actuator, filters=filters, mappings=mappings, period=15.0, feed=feed)


async def cost(coro: object, counter: CountingTransport) -> tuple[float, int, float, object]:
    """(CPU seconds, bytes read, wall seconds, result) of awaiting `coro`."""
    before_bytes, cpu, wall = counter.bytes, time.process_time(), time.perf_counter()
    result = await asyncio.wait_for(coro, STEP_DEADLINE)  # type: ignore[arg-type]
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu, counter.bytes - before_bytes, wall, result


async def deployed_ids(http: httpx.AsyncClient, url: str, count: int) -> list[str]:
    """System ids of `count` machines Deployed by the admin (the mix's first 70 %)."""
    names = [f"node-{i:05d}" for i in range(1, count + 1)]
    answer = await http.get(url + "/api/2.0/machines/", params={"hostname": names})
    return [m["system_id"] for m in answer.json() if m["status"] == 6]


async def mark_broken(http: httpx.AsyncClient, url: str, system_ids: list[str]) -> None:
    for system_id in system_ids:
        answer = await http.post(
            f"{url}/api/2.0/machines/{system_id}/", params={"op": "mark_broken"}
        )
        answer.raise_for_status()


async def measure(region: RealRegion, rounds: int, changed: int) -> dict[str, list[float]]:
    counter = CountingTransport()
    daemon = build_daemon(region.url, region.key, counter)
    names = ("full_cpu", "full_bytes", "full_wall", "event_cpu", "event_bytes", "event_wall")
    figures: dict[str, list[float]] = {name: [] for name in names}
    async with httpx.AsyncClient(auth=MaasAuth(region.key), timeout=STEP_DEADLINE) as http:
        pool = await deployed_ids(http, region.url, changed * rounds)
        await daemon.identify(retry=False)
        await daemon.run_pass()  # builds every flow: not the steady state
        for round_ in range(rounds):
            cpu, size, wall, _ = await cost(daemon.run_pass(), counter)
            figures["full_cpu"].append(cpu)
            figures["full_bytes"].append(size)
            figures["full_wall"].append(wall)
            batch = pool[round_ * changed : (round_ + 1) * changed]
            await mark_broken(http, region.url, batch)
            cpu, size, wall, summary = await cost(daemon.step(), counter)
            if summary is None or getattr(summary, "seen", None) != changed:
                raise SystemExit(f"the event pass saw {summary!r}, not the {changed} changed")
            figures["event_cpu"].append(cpu)
            figures["event_bytes"].append(size)
            figures["event_wall"].append(wall)
    await daemon.client.aclose()
    daemon.actuator.store.close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", type=int, nargs="?", default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--changed", type=int, default=10)
    args = parser.parse_args()
    configure_logging("error", "text")
    print(f"{args.size} real-sized machines, {args.changed} changed per round:")
    with RealRegion(args.size) as region:
        figures = asyncio.run(measure(region, args.rounds, args.changed))
    med = {name: statistics.median(values) for name, values in figures.items()}
    cpu_ratio = med["event_cpu"] / med["full_cpu"]
    bytes_ratio = med["event_bytes"] / med["full_bytes"]
    print(
        f"  full pass   CPU {med['full_cpu']:.3f} s  {med['full_bytes'] / 1e6:.2f} MB  "
        f"wall {med['full_wall']:.3f} s  (median of {args.rounds})"
    )
    print(f"  event pass  CPU {med['event_cpu']:.4f} s  {med['event_bytes'] / 1e3:.1f} KB  "
          f"wall {med['event_wall']:.3f} s")  # fmt: skip
    print(f"  event / full: CPU {cpu_ratio:.4f}, bytes {bytes_ratio:.5f} (target <= {TARGET})")
    return 0 if max(cpu_ratio, bytes_ratio) <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
