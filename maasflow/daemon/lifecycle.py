"""The lifecycle: what one machine needs next, decided from what MAAS says about it now.

Each pass the daemon hands every selected machine's `Flow` an `Observation` (status, power
state, owner, lock, mapped hostname, provisioning record); the flow answers with a
`Decision` holding at most ONE `Action` and the flow's phase. Decisions are level-triggered:
they depend only on the observation, so a restart, a missed pass or a human acting in the
MAAS UI never confuses the daemon.

Priority of the rules, highest first (one action per pass)::

    locked / owned by another user / Retired, Reserved, Rescue mode  -> hands-off, no action
    carries the quarantine tag                                       -> quarantined, no action
    status this target does not know                                 -> unknown, no action
    not Deployed but a provisioning record exists                    -> forget_provision
    mapped hostname differs (always, or only while New)              -> rename
    the status's own rule (TARGETS[target][status])                  -> e.g. commission

Hands-off means no action of any kind, not even clearing our own record (it is cleared once
the machine comes back). The record is cleared before a rename because it is local
bookkeeping that must not outlive the deploy it describes; an unknown status is left alone.

Quarantine is hands-off too. With a retry budget (`-retry-failed N`, the `RetryView`),
Failed commissioning is commissioned again and Failed deployment released (the rules then
deploy it again, or commission it first when MAAS releases it to New, facts §10.1), each
retry once its backoff is due; with the budget spent, the action puts the quarantine tag on
the machine. Without a budget a failed machine needs a human.

The rules say where a machine IS; the phase machine says how it got there. Phases are the
states of one shared `transitions.Machine` (built once, never per flow) whose transitions are
`EXPECTED`, the moves maasflow expects per target. A flow is a small slotted object whose
`phase` the machine moves, and only when the phase changes, by one of three kinds of event::

    <target>:<phase>   a move the table declares (e.g. deployed:provisioning)
    adopt:<phase>      a flow's first observation: it had no past to compare with
    resync:<phase>     any other jump (a person released a machine in the MAAS UI); logged

Every phase's `on_enter` callback tells the `PhaseListener` handed to `observe` (the daemon's
logs and metrics), once per entry, so the daemon keeps no bookkeeping of its own to log a
failure once rather than every pass. Status numbers and names come from MAAS's
`src/maascommon/enums/node.py` (see maas-api-facts §2.2). This module does no I/O; the
listener does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from functools import cache
from typing import Protocol, cast

import transitions

from maasflow.common.errors import ConfigError

STATUS_NAMES: dict[int, str] = {
    0: "New",
    1: "Commissioning",
    2: "Failed commissioning",
    3: "Missing",
    4: "Ready",
    5: "Reserved",
    6: "Deployed",
    7: "Retired",
    8: "Broken",
    9: "Deploying",
    10: "Allocated",
    11: "Failed deployment",
    12: "Releasing",
    13: "Releasing failed",
    14: "Disk erasing",
    15: "Failed disk erasing",
    16: "Rescue mode",
    17: "Entering rescue mode",
    18: "Failed to enter rescue mode",
    19: "Exiting rescue mode",
    20: "Failed to exit rescue mode",
    21: "Testing",
    22: "Failed testing",
}

NEW, READY, DEPLOYED, ALLOCATED = 0, 4, 6, 10


class Phase(StrEnum):
    """Where maasflow sees a machine: the states of the shared phase machine."""

    UNKNOWN = "unknown"
    NEW = "new"
    COMMISSIONING = "commissioning"
    READY = "ready"
    ALLOCATED = "allocated"
    DEPLOYING = "deploying"
    DEPLOYED = "deployed"
    PROVISIONING = "provisioning"
    PROVISIONED = "provisioned"
    FAILED = "failed"
    WAITING = "waiting"
    RETRYING = "retrying"  # failed, with a retry of -retry-failed's budget coming
    QUARANTINED = "quarantined"  # carries the quarantine tag: left alone
    HANDS_OFF = "hands-off"


class ActionKind(StrEnum):
    """What an `Action` does; the actuator has one operation per kind."""

    RENAME = "rename"
    POWER_OFF = "power_off"
    COMMISSION = "commission"
    POWER_HELPER = "power_helper"
    ALLOCATE = "allocate"
    DEPLOY = "deploy"
    PROVISION = "provision"
    PROVISION_POLL = "provision_poll"
    FORGET_PROVISION = "forget_provision"
    RELEASE = "release"
    QUARANTINE = "quarantine"


class ProvisionState(StrEnum):
    """Where a machine's provisioning stands; NONE means the store holds no record."""

    NONE = "none"
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"


class PowerState(StrEnum):
    """MAAS's power states (a machine's raw `power_state` may be anything else too)."""

    ON = "on"
    OFF = "off"
    UNKNOWN = "unknown"
    ERROR = "error"


class Target(StrEnum):
    """Where maasflow drives a machine; each has its rules and its expected moves."""

    DEPLOYED = "deployed"


def status_name(status: int) -> str:
    """MAAS's label for `status`, or a readable stand-in for a number we do not know."""
    return STATUS_NAMES.get(status, f"unknown status {status}")


@dataclass(frozen=True)
class ProvisionView:
    """What the lifecycle needs to know of a machine's provisioning record."""

    state: ProvisionState
    retry_due: bool = False  # failed and its backoff has elapsed
    poll: bool = False  # URL mode with a submitted job: poll it


@dataclass(frozen=True)
class RetryView:
    """A machine's retry budget for MAAS failures (`-retry-failed`), as the lifecycle needs it."""

    limit: int  # retries allowed per machine (> 0)
    used: int  # retries sent since it last reached Deployed (or its quarantine was lifted)
    due: bool  # the backoff since it was seen in its current status has run out
    tag: str  # the quarantine tag to put on it once the budget is spent

    @property
    def left(self) -> int:
        return max(self.limit - self.used, 0)


@dataclass(frozen=True)
class Observation:
    """Everything one pass knows about one machine; built by the daemon from MAAS's listing."""

    status: int
    power_state: str  # as MAAS says it: usually a PowerState, but not necessarily
    owner: str | None
    locked: bool
    power_type: str
    me: str  # the daemon's own MAAS username (from whoami)
    desired_hostname: str | None  # from mappings; None if no mapping or same as current
    hostname: str
    provision: ProvisionView | None  # None when provisioning is disabled (no PROVISION_URL)
    helper_script: bool  # POWER_HELPER_SCRIPT configured
    always_rename: bool
    quarantined: bool = False  # MAAS lists the quarantine tag on it
    retry: RetryView | None = None  # None: failed machines are left to a human


@dataclass(frozen=True)
class Action:
    """One thing to do to one machine; `params` are the op's parameters."""

    kind: ActionKind
    params: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""
    spends_retry: bool = False  # a retry of a failed machine: counts against its budget


@dataclass(frozen=True)
class Decision:
    """The answer to one observation: at most one action, the phase, and why."""

    action: Action | None
    phase: Phase
    reason: str
    entered: bool  # this observation moved the flow into `phase` (log it once)


@dataclass(frozen=True)
class Step:
    """What a rule decides: the phase, the action (or None) and the reason."""

    phase: Phase
    action: Action | None
    reason: str


Rule = Callable[[str, Observation], Step]


# -- the rules: where a machine is, and its one action ------------------------------------


def _still(phase: Phase, reason: str) -> Rule:
    """A rule that never acts: the machine is busy, failed or not ours."""
    step = Step(phase, None, reason)
    return lambda _system_id, _obs: step


def _act(phase: Phase, kind: ActionKind, reason: str, **params: str) -> Step:
    return Step(phase, Action(kind, params, reason), reason)


def _new(_system_id: str, obs: Observation) -> Step:
    power = obs.power_state
    if power == PowerState.ON:
        return _act(
            Phase.NEW, ActionKind.POWER_OFF, "New and powered on: power off first", stop_mode="soft"
        )
    if power == PowerState.OFF:
        return _act(Phase.NEW, ActionKind.COMMISSION, "New and powered off: commission")
    if obs.power_type == "" and obs.helper_script:
        why = f"New, power {power}, no power type: run the helper"
        return _act(Phase.NEW, ActionKind.POWER_HELPER, why)
    if obs.power_type == "":
        why = f"power state {power}; set a power type or POWER_HELPER_SCRIPT"
        return Step(Phase.WAITING, None, why)
    why = f"power state {power} ({obs.power_type}); waiting for MAAS"
    return Step(Phase.WAITING, None, why)


def _ready(system_id: str, _obs: Observation) -> Step:
    why = "Ready: allocate exactly this machine"
    return _act(Phase.READY, ActionKind.ALLOCATE, why, system_id=system_id)


def _allocated(_system_id: str, obs: Observation) -> Step:
    if obs.owner and obs.owner == obs.me:
        return _act(Phase.ALLOCATED, ActionKind.DEPLOY, "Allocated to us: deploy")
    return Step(Phase.WAITING, None, "Allocated without an owner; waiting")


def _deployed(_system_id: str, obs: Observation) -> Step:
    view = obs.provision
    if view is None:
        return Step(Phase.DEPLOYED, None, "Deployed; no PROVISION_URL, nothing more to do")
    state = view.state
    if state is ProvisionState.NONE:
        return _act(Phase.PROVISIONING, ActionKind.PROVISION, "Deployed: provision")
    if state is ProvisionState.RUNNING and view.poll:
        why = "provisioning submitted: poll it"
        return _act(Phase.PROVISIONING, ActionKind.PROVISION_POLL, why)
    if state is ProvisionState.RUNNING:
        return Step(Phase.PROVISIONING, None, "provisioning in progress")
    if state is ProvisionState.COMPLETE:
        return Step(Phase.PROVISIONED, None, "provisioned")
    if state is ProvisionState.FAILED and view.retry_due:
        why = "provisioning failed earlier: retry"
        return _act(Phase.PROVISIONING, ActionKind.PROVISION, why)
    if state is ProvisionState.FAILED:
        return Step(Phase.PROVISIONING, None, "provisioning failed; retrying after a backoff")
    return Step(Phase.UNKNOWN, None, f"unknown provisioning state {state!r}")


def _waiting(phase: Phase, status: int) -> Rule:
    return _still(phase, f"{STATUS_NAMES[status]}: waiting for MAAS")


def _failed(status: int) -> Rule:
    return _still(Phase.FAILED, f"{STATUS_NAMES[status]}: needs a human")


def _recover(status: int, kind: ActionKind) -> Rule:
    """Failed commissioning/deployment: retry with `kind` while the budget lasts, then tag."""
    name = STATUS_NAMES[status]

    def rule(_system_id: str, obs: Observation) -> Step:
        retry = obs.retry
        if retry is None:
            return Step(Phase.FAILED, None, f"{name}: needs a human")
        if retry.left == 0:
            why = f"{name} after {retry.used} retries: quarantine (tag {retry.tag})"
            return _act(Phase.FAILED, ActionKind.QUARANTINE, why, tag=retry.tag)
        number = f"retry {retry.used + 1} of {retry.limit}"
        if not retry.due:
            return Step(Phase.RETRYING, None, f"{name}: {number} after a backoff")
        why = f"{name}: {number} ({kind})"
        return Step(Phase.RETRYING, Action(kind, {}, why, spends_retry=True), why)

    return rule


def _hands_off(status: int) -> Rule:
    return _still(Phase.HANDS_OFF, f"{STATUS_NAMES[status]}: hands off")


_DEPLOYED_RULES: dict[int, Rule] = {
    NEW: _new,
    READY: _ready,
    ALLOCATED: _allocated,
    DEPLOYED: _deployed,
    **{s: _waiting(Phase.COMMISSIONING, s) for s in (1, 21)},
    9: _waiting(Phase.DEPLOYING, 9),
    **{s: _waiting(Phase.WAITING, s) for s in (12, 14, 17, 19)},
    2: _recover(2, ActionKind.COMMISSION),
    11: _recover(11, ActionKind.RELEASE),
    **{s: _failed(s) for s in (3, 8, 13, 15, 18, 20, 22)},
    **{s: _hands_off(s) for s in (5, 7, 16)},
}

TARGETS: dict[Target, Mapping[int, Rule]] = {Target.DEPLOYED: _DEPLOYED_RULES}
_TARGET_NAMED: dict[str, tuple[Target, Mapping[int, Rule]]] = {
    str(target): (target, rules) for target, rules in TARGETS.items()
}


def _forget(obs: Observation) -> Action | None:
    view = obs.provision
    if obs.status == DEPLOYED or view is None or view.state is ProvisionState.NONE:
        return None
    why = f"{STATUS_NAMES[obs.status]}: not Deployed, clear the provisioning record"
    return Action(ActionKind.FORGET_PROVISION, {}, why)


def _rename(obs: Observation) -> Action | None:
    wanted = obs.desired_hostname
    if not wanted or wanted == obs.hostname:
        return None
    if not (obs.always_rename or obs.status == NEW):
        return None
    why = f"mapped MAC: rename {obs.hostname} to {wanted}"
    return Action(ActionKind.RENAME, {"hostname": wanted}, why)


def decide(rules: Mapping[int, Rule], system_id: str, obs: Observation) -> Step:
    """Apply the rules in priority order (see the module docstring); pure."""
    if obs.locked:
        return Step(Phase.HANDS_OFF, None, "locked")
    if obs.owner and obs.owner != obs.me:
        return Step(Phase.HANDS_OFF, None, f"owned by {obs.owner}")
    if obs.quarantined:
        return Step(Phase.QUARANTINED, None, "quarantine tag set: hands off until it is removed")
    rule = rules.get(obs.status)
    if rule is None:
        return Step(Phase.UNKNOWN, None, f"unknown MAAS status {obs.status}")
    step = rule(system_id, obs)
    if step.phase is Phase.HANDS_OFF or (step.action and step.action.kind is ActionKind.QUARANTINE):
        return step
    chore = _forget(obs) or _rename(obs)
    return step if chore is None else Step(step.phase, chore, chore.reason)


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
# resync. A future target (Ready, Allocated, ...) adds its key and rows here, and its rules to
# TARGETS; the machine below declares one event per (target, destination phase).
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
        known = _TARGET_NAMED.get(target)
        if known is None:
            names = ", ".join(sorted(TARGETS))
            raise ConfigError(f"unknown lifecycle target {target!r}; use one of: {names}")
        self.system_id = system_id
        self.target, self._rules = known
        self._observed = False
        self.phase: Phase = INITIAL  # the machine's initial state, set without its ~1 us lookup

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


def describe(decision: Decision) -> str:
    """One human line for logs and the preview plan."""
    action = decision.action
    if action is None:
        return f"{decision.phase}: no action ({decision.reason})"
    params = " ".join(f"{key}={value}" for key, value in sorted(action.params.items()))
    head = f"{action.kind} {params}".rstrip()
    return f"{head} ({decision.reason})"
