"""The phase machine: the moves maasflow expects per target, and what entering a phase does.

One shared `transitions.Machine` (built once, never per flow) moves every `Flow`'s `phase`,
only when the phase changes, by a declared move of `EXPECTED`, an `adopt` (a flow's first
observation) or a logged `resync` (any other jump). Each phase's `on_enter` tells the
`PhaseListener` handed to `observe`; the listener does the I/O, this module none.
"""

from __future__ import annotations

from enum import Enum
from functools import cache
from typing import Protocol, cast

import transitions

from maasflow.common.errors import ConfigError
from maasflow.daemon.lifecycle.rules import Decision, Observation, decide
from maasflow.daemon.lifecycle.tables import TARGETS, TARGETS_BY_NAME
from maasflow.daemon.lifecycle.vocabulary import (
    Phase,
    Target,
)

# -- the phase machine: the moves maasflow expects, and what entering a phase does -------------

Phases = tuple[Phase, ...]
Rows = tuple[tuple[Phases, Phases], ...]

ANY: Phases = tuple(Phase)
DETOURS: Phases = (
    Phase.FAILED,
    Phase.WAITING,
    Phase.HANDS_OFF,
    Phase.UNKNOWN,
    Phase.RETRYING,
    Phase.QUARANTINED,
)


def onward(*path: Phase) -> Rows:
    """Rows from each phase of `path` to every later one: a pass may miss a quick step."""
    return tuple(((phase,), path[i + 1 :]) for i, phase in enumerate(path[:-1]))


# The moves maasflow expects, per target, as (from phases, to phases) rows. Any other jump is a
# resync. A target has its key and rows here, and its rules in TARGETS (`tables`); the machine
# below declares one event per (target, destination phase).
EXPECTED: dict[Target, Rows] = {
    Target.DEPLOYED: (
        *onward(
            Phase.NEW,
            Phase.COMMISSIONING,
            Phase.READY,
            Phase.ALLOCATED,
            Phase.DEPLOYING,
            Phase.DEPLOYED,
            Phase.PROVISIONING,
            Phase.PROVISIONED,
        ),
        (ANY, DETOURS),  # any phase may fail, wait on MAAS, pass to a person, or puzzle us
        (DETOURS, ANY),  # from a detour, whatever MAAS says next is news, not a surprise
    ),
    Target.ALLOCATED: (
        *onward(Phase.NEW, Phase.COMMISSIONING, Phase.READY, Phase.ALLOCATED),
        (ANY, DETOURS),
        (DETOURS, ANY),
    ),
    Target.READY: (
        *onward(Phase.NEW, Phase.COMMISSIONING, Phase.READY),
        # released by the rule: Ready, or New when MAAS has no commissioning data (§10.1)
        ((Phase.ALLOCATED, Phase.DEPLOYED), (Phase.READY, Phase.NEW)),
        (ANY, DETOURS),
        (DETOURS, ANY),
    ),
    Target.IGNORE: ((ANY, DETOURS), (DETOURS, ANY)),  # hands off is a detour
}
ADOPT, RESYNC = "adopt", "resync"
INITIAL = Phase.UNKNOWN  # where a flow starts; its first observation adopts whatever MAAS says


class PhaseListener(Protocol):
    """Told once per phase entry (the daemon logs and counts; this module does no I/O).

    `came_from` is None on a flow's first observation; `resync` is True when the jump is not
    one the table declares.
    """

    def entered(
        self, flow: Flow, phase: Phase, reason: str, *, came_from: Phase | None, resync: bool
    ) -> None: ...


class _Quiet:
    """The listener of a caller that records nothing (the preview, tests)."""

    def entered(
        self, flow: Flow, phase: Phase, reason: str, *, came_from: Phase | None, resync: bool
    ) -> None:
        return None


QUIET: PhaseListener = _Quiet()


def _on_enter(event: transitions.EventData) -> None:
    """Every phase's on_enter callback: tell the observer's listener which entry this was."""
    kind = event.event.name.partition(":")[0]
    came_from = (
        None if kind == ADOPT or event.transition is None else Phase(event.transition.source)
    )
    flow = cast(Flow, event.model)
    listener: PhaseListener = event.kwargs["listener"]
    resync = kind == RESYNC
    listener.entered(flow, flow.phase, event.kwargs["reason"], came_from=came_from, resync=resync)


def _event_name(kind: str, dest: Phase) -> str:
    return f"{kind}:{dest}"


class _PhaseState(transitions.State):
    """A phase as a state, named by its value ("hands-off"), its value the Phase member."""

    def __init__(self, phase: Phase) -> None:
        super().__init__(phase, on_enter=[_on_enter])
        self._value_name = phase.value

    @property
    def name(self) -> str:
        return self._value_name


class _PhaseMachine(transitions.Machine):
    """A Machine whose states are keyed by the phases' values, so a Phase is its own key.

    transitions looks an Enum state up by its `name` ("HANDS_OFF") through Enum's slow
    descriptor, several times per transition; a StrEnum member hashes and compares as its
    value, so a plain dict lookup finds it (a churning pass runs ~20 % faster).
    """

    def get_state(self, state: str | Enum) -> transitions.State:
        try:
            return self.states[state if isinstance(state, str) else state.value]
        except KeyError:
            raise ValueError(f"{state!r} is not a phase") from None


@cache
def phase_machine() -> transitions.Machine:
    """The one `transitions.Machine` every flow shares; built on first use, never again."""
    machine = _PhaseMachine(
        model=None,
        states=[_PhaseState(phase) for phase in Phase],
        initial=INITIAL.value,
        model_attribute="phase",
        auto_transitions=False,
        send_event=True,
    )
    for target, rows in EXPECTED.items():
        for sources, dests in rows:
            for dest in dests:
                machine.add_transition(_event_name(target, dest), _values(sources), dest.value)
    for dest in Phase:
        machine.add_transition(_event_name(ADOPT, dest), INITIAL.value, dest.value)
        machine.add_transition(_event_name(RESYNC, dest), "*", dest.value)
    return machine


def _values(phases: Phases) -> list[str | Enum | transitions.State]:
    """Plain strings: transitions would turn an Enum into its name, which keys nothing here."""
    return [phase.value for phase in phases]


class Flow:
    """One machine's long-lived lifecycle; cheap to build, kept across passes."""

    __slots__ = ("_observed", "_rules", "phase", "system_id", "target")

    def __init__(self, system_id: str, target: str = Target.DEPLOYED) -> None:
        known = TARGETS_BY_NAME.get(target)
        if known is None:
            names = ", ".join(sorted(TARGETS))
            raise ConfigError(f"unknown lifecycle target {target!r}; use one of: {names}")
        self.system_id = system_id
        self.target, self._rules = known
        self._observed = False
        self.phase: Phase = INITIAL  # the machine's initial state, set without its ~1 us lookup

    def retarget(self, target: Target) -> None:
        """Follow a changed desire: the next observation decides by `target`'s rules, and a
        move its table does not declare is a resync."""
        if target is not self.target:
            self.target, self._rules = TARGETS_BY_NAME[str(target)]

    def observe(self, obs: Observation, listener: PhaseListener = QUIET) -> Decision:
        """Decide this pass's action (at most one); a new phase is entered through the machine."""
        step = decide(self._rules, self.system_id, obs)
        entered = step.phase is not self.phase or not self._observed
        if entered:
            event = self._event(step.phase)
            self._observed = True
            # Event.trigger on the shared machine moves this flow without add_model(), which
            # would bind methods per flow and keep every flow alive in Machine.models.
            event.trigger(self, reason=step.reason, listener=listener)
        return Decision(step.action, self.phase, step.reason, entered)

    def _event(self, dest: Phase) -> transitions.Event:
        """The adopt event first; after that the table's event for this move, or resync."""
        events = phase_machine().events
        if not self._observed:
            return events[_event_name(ADOPT, dest)]
        declared = events.get(_event_name(self.target, dest))
        if declared is not None and self.phase in declared.transitions:
            return declared
        return events[_event_name(RESYNC, dest)]

    def __repr__(self) -> str:
        target, phase = self.target.value, self.phase.value
        return f"Flow({self.system_id!r}, target={target!r}, phase={phase!r})"
