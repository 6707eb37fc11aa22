"""Micro-benchmark: the cost of lifecycle flows for a large MAAS region.

Builds 10,000 `Flow` objects, then runs passes of `observe` over all of them, and prints the
per-flow build cost and the per-observe cost, each as a ratio of the ~1 ms it costs to build
one `transitions.Machine` per machine (the naive design). The naive cost is measured here too,
on a sample, so the ratio holds on this machine. Run: `.venv/bin/python bench/bench_flows.py`.
"""

from __future__ import annotations

import random
import sys
import time

import transitions

from maasflow.daemon.lifecycle import PHASES, Flow, Observation, ProvisionView

FLOWS = 10_000
PASSES = 5
NAIVE_SAMPLE = 500


class _Model:
    phase = "unknown"


def naive_build_seconds() -> float:
    """Per-machine cost of building a fresh transitions.Machine (what we avoid)."""
    start = time.perf_counter()
    for _ in range(NAIVE_SAMPLE):
        transitions.Machine(
            model=_Model(), states=list(PHASES), initial="unknown", model_attribute="phase"
        )
    return (time.perf_counter() - start) / NAIVE_SAMPLE


def observation(rng: random.Random) -> Observation:
    status = rng.choice([0, 0, 1, 4, 6, 6, 6, 9, 10, 11])
    view = ProvisionView(rng.choice(["none", "running", "complete", "failed"]), True, True)
    return Observation(
        status=status,
        power_state=rng.choice(["on", "off", "unknown"]),
        owner=rng.choice([None, "maasflow", "alice"]),
        locked=rng.random() < 0.05,
        power_type="ipmi",
        me="maasflow",
        desired_hostname=None,
        hostname="node",
        provision=view,
        helper_script=False,
        always_rename=True,
    )


def observe_seconds(flows: list[Flow], passes: list[list[Observation]]) -> float:
    """Mean seconds per `observe` over `passes` (random phases: "churn"; repeated: "steady")."""
    start = time.perf_counter()
    for seen in passes:
        for flow, obs in zip(flows, seen, strict=True):
            flow.observe(obs)
    return (time.perf_counter() - start) / (len(flows) * len(passes))


def main() -> int:
    rng = random.Random(7)
    Flow("warm-up")  # the shared machine is built once, outside the measurement
    start = time.perf_counter()
    flows = [Flow(f"sys{i:05d}") for i in range(FLOWS)]
    build = (time.perf_counter() - start) / FLOWS
    churn = [[observation(rng) for _ in range(FLOWS)] for _ in range(PASSES)]
    steady = [churn[-1]] * PASSES  # nothing changed since the last pass: the common case
    naive = naive_build_seconds()
    print(f"flows: {FLOWS}, passes: {PASSES}")
    print(f"naive transitions.Machine per flow: {naive * 1e6:8.1f} us (measured)")
    print(f"Flow build:      {build * 1e6:7.2f} us/flow = {build / 1e-3:.4f} x 1 ms naive build")
    for label, passes in (("churn", churn), ("steady", steady)):
        per = observe_seconds(flows, passes)
        print(
            f"observe {label:6}: {per * 1e6:7.2f} us/obs  = {per / 1e-3:.4f} x 1 ms naive build"
            f" ({per / naive:.4f} x measured); one pass of {FLOWS}: {per * FLOWS * 1e3:.1f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
