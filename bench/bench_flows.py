"""Micro-benchmark: the cost of lifecycle flows for a large MAAS region, against a live floor.

Builds 10,000 `Flow` objects, then runs passes of `observe` over all of them (random
observations: "churn", most passes change a phase; the same observations again: "steady", the
common case), and prints each cost as a ratio of its floor, measured in the same run:

- the floor is the previous design, rebuilt here: the same slots and the same `decide()`, on
  one shared `transitions.Machine` of auto transitions with no table, no callbacks and no
  listener (`_Baseline` below). The goal is a ratio of at most 2 for build and observe.
- for scale, building one `transitions.Machine` per machine (what a naive design pays) is
  measured on a sample too.

Run: `.venv/bin/python bench/bench_flows.py`. It takes a few seconds; timings are noisy on a
shared machine, so read the ratios, which compare figures taken moments apart.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any, Protocol

import transitions

from maasflow.daemon.lifecycle import (
    TARGETS,
    Decision,
    Flow,
    Observation,
    Phase,
    PhaseListener,
    ProvisionState,
    ProvisionView,
    Target,
    decide,
    phase_machine,
)

FLOWS = 10_000
PASSES = 3
REPEATS = 3  # each figure is the best of REPEATS runs, ours and the floor's interleaved
NAIVE_SAMPLE = 300
GOAL = 2.0


class Observer(Protocol):
    def observe(self, obs: Observation) -> Decision: ...


class _Counting:
    """A listener that only counts, as the daemon's would before it logs anything."""

    def __init__(self) -> None:
        self.entries = 0

    def entered(
        self, flow: Flow, phase: Phase, reason: str, *, came_from: Phase | None, resync: bool
    ) -> None:
        self.entries += 1


class _Listening:
    """A flow observed with a listener, as the daemon observes it."""

    __slots__ = ("flow", "listener")

    def __init__(self, flow: Flow, listener: PhaseListener) -> None:
        self.flow, self.listener = flow, listener

    def observe(self, obs: Observation) -> Decision:
        return self.flow.observe(obs, self.listener)


@cache
def _baseline_machine() -> transitions.Machine:
    return transitions.Machine(
        model=None, states=[p.value for p in Phase], initial="unknown", model_attribute="phase"
    )


class _Baseline:
    """The floor: the previous Flow (auto transitions on a shared machine, nothing declared)."""

    __slots__ = ("_observed", "_rules", "phase", "system_id", "target")

    def __init__(self, system_id: str) -> None:
        self.system_id = system_id
        self.target = Target.DEPLOYED
        self._rules = TARGETS[Target.DEPLOYED]
        self._observed = False
        self.phase: str = "unknown"
        _baseline_machine().set_state("unknown", model=self)

    def observe(self, obs: Observation) -> Decision:
        step = decide(self._rules, self.system_id, obs)
        entered = not self._observed or step.phase != self.phase
        self._observed = True
        if step.phase != self.phase:
            _baseline_machine().events[f"to_phase_{step.phase}"].trigger(self)
        return Decision(step.action, step.phase, step.reason, entered)


class _Model:
    phase = "unknown"


def naive_build_seconds() -> float:
    """Per-machine cost of building a fresh transitions.Machine (what we avoid)."""
    start = time.perf_counter()
    for _ in range(NAIVE_SAMPLE):
        transitions.Machine(
            model=_Model(),
            states=[p.value for p in Phase],
            initial="unknown",
            model_attribute="phase",
        )
    return (time.perf_counter() - start) / NAIVE_SAMPLE


def observation(rng: random.Random) -> Observation:
    status = rng.choice([0, 0, 1, 4, 6, 6, 6, 9, 10, 11])
    view = ProvisionView(rng.choice(list(ProvisionState)), True, True)
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


def _fresh(listener: PhaseListener) -> list[_Listening]:
    """New flows for each run, so every run starts from the same phases."""
    return [_Listening(Flow(f"sys{i:05d}"), listener) for i in range(FLOWS)]


def _baselines() -> list[_Baseline]:
    return [_Baseline(f"sys{i:05d}") for i in range(FLOWS)]


def _ready(flows: Sequence[Observer], passes: list[list[Observation]]) -> Sequence[Observer]:
    """Flows that have seen the pass before `passes` (the last one): churn moves them on,
    steady (the same observations again) finds them where they are."""
    for flow, obs in zip(flows, passes[-1], strict=True):
        flow.observe(obs)
    return flows


def build_seconds(make: Callable[[str], Any]) -> tuple[float, list[Any]]:
    start = time.perf_counter()
    built = [make(f"sys{i:05d}") for i in range(FLOWS)]
    return (time.perf_counter() - start) / FLOWS, built


def observe_seconds(flows: Sequence[Observer], passes: list[list[Observation]]) -> float:
    """Mean seconds per `observe` over `passes`."""
    start = time.perf_counter()
    for seen in passes:
        for flow, obs in zip(flows, seen, strict=True):
            flow.observe(obs)
    return (time.perf_counter() - start) / (len(flows) * len(passes))


def best_of(measure: Callable[[], float], floor: Callable[[], float]) -> tuple[float, float]:
    """(ours, floor): the fastest of REPEATS interleaved runs each, so load hits both alike."""
    runs = [(measure(), floor()) for _ in range(REPEATS)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def line(label: str, ours: float, floor: float) -> str:
    ratio = ours / floor
    verdict = "ok" if ratio <= GOAL else f"OVER the {GOAL:g}x goal"
    return (
        f"{label:15} {ours * 1e6:6.2f} us vs floor {floor * 1e6:6.2f} us = {ratio:4.2f}x  {verdict}"
    )


def main() -> int:
    rng = random.Random(7)
    phase_machine(), _baseline_machine()  # the shared machines are built outside the timing
    churn = [[observation(rng) for _ in range(FLOWS)] for _ in range(PASSES)]
    steady = [churn[-1]] * PASSES  # nothing changed since the last pass: the common case
    build, floor_build = best_of(
        lambda: build_seconds(Flow)[0], lambda: build_seconds(_Baseline)[0]
    )
    listener = _Counting()
    print(f"flows: {FLOWS}, passes: {PASSES}, best of {REPEATS}; floor: the previous design")
    print(line("build", build, floor_build))
    for label, passes in (("churn", churn), ("steady", steady)):
        ours, floor = best_of(
            lambda: observe_seconds(_ready(_fresh(listener), passes), passes),  # noqa: B023
            lambda: observe_seconds(_ready(_baselines(), passes), passes),  # noqa: B023
        )
        print(
            line(f"observe {label}", ours, floor)
            + f"; a pass of {FLOWS}: {ours * FLOWS * 1e3:.0f} ms"
        )
    naive = naive_build_seconds()
    print(f"for scale: a transitions.Machine per flow costs {naive * 1e6:.0f} us to build")
    print(f"phase entries the listener heard: {listener.entries}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
