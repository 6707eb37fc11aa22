"""The lifecycle: what one machine needs next, decided from what MAAS says about it now.

Each pass the daemon hands every selected machine's `Flow` an `Observation` (status, power
state, owner, lock, mapped hostname, provisioning record); the flow answers with a
`Decision` holding at most ONE `Action` and the flow's phase. Decisions are level-triggered:
they depend only on the observation, so a restart, a missed pass or a human acting in the
MAAS UI never confuses the daemon. The flow remembers its phase only to say when a phase is
*entered* (so the daemon logs a failure or a hands-off once, not every pass).

Priority of the rules, highest first (one action per pass)::

    locked / owned by another user / Retired, Reserved, Rescue mode  -> hands-off, no action
    status this target does not know                                 -> unknown, no action
    not Deployed but a provisioning record exists                    -> forget_provision
    mapped hostname differs (always, or only while New)              -> rename
    the status's own rule (TARGETS[target][status])                  -> e.g. commission

Hands-off means no action of any kind, not even clearing our own record (it is cleared once
the machine comes back). The record is cleared before a rename because it is local
bookkeeping that must not outlive the deploy it describes; an unknown status is left alone.

Phases are the states of one shared `transitions.Machine` (built once, never per flow):
a flow is only a small object whose `phase` attribute the machine moves, and a transition
runs only when the phase changes. Status numbers and names come from MAAS's
`src/maascommon/enums/node.py` (see maas-api-facts §2.2); this module does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache

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
HANDS_OFF = "hands-off"
PHASES: tuple[str, ...] = (
    "unknown",
    "new",
    "commissioning",
    "ready",
    "allocated",
    "deploying",
    "deployed",
    "provisioning",
    "provisioned",
    "failed",
    "waiting",
    HANDS_OFF,
)
PROVISION_STATES = ("none", "running", "complete", "failed")


def status_name(status: int) -> str:
    """MAAS's label for `status`, or a readable stand-in for a number we do not know."""
    return STATUS_NAMES.get(status, f"unknown status {status}")


@dataclass(frozen=True)
class ProvisionView:
    """What the lifecycle needs to know of a machine's provisioning record."""

    state: str  # "none" | "running" | "complete" | "failed"
    retry_due: bool = False  # failed and its backoff has elapsed
    poll: bool = False  # URL mode with a submitted job: poll it


@dataclass(frozen=True)
class Observation:
    """Everything one pass knows about one machine; built by the daemon from MAAS's listing."""

    status: int
    power_state: str
    owner: str | None
    locked: bool
    power_type: str
    me: str  # the daemon's own MAAS username (from whoami)
    desired_hostname: str | None  # from mappings; None if no mapping or same as current
    hostname: str
    provision: ProvisionView | None  # None when provisioning is disabled (no PROVISION_URL)
    helper_script: bool  # POWER_HELPER_SCRIPT configured
    always_rename: bool


@dataclass(frozen=True)
class Action:
    """One thing to do to one machine; `params` are the op's parameters."""

    kind: str
    params: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""


@dataclass(frozen=True)
class Decision:
    """The answer to one observation: at most one action, the phase, and why."""

    action: Action | None
    phase: str
    reason: str
    entered: bool  # this observation moved the flow into `phase` (log it once)


@dataclass(frozen=True)
class Step:
    """What a rule decides: the phase, the action (or None) and the reason."""

    phase: str
    action: Action | None
    reason: str


Rule = Callable[[str, Observation], Step]


def _still(phase: str, reason: str) -> Rule:
    """A rule that never acts: the machine is busy, failed or not ours."""
    step = Step(phase, None, reason)
    return lambda _system_id, _obs: step


def _act(phase: str, kind: str, reason: str, **params: str) -> Step:
    return Step(phase, Action(kind, params, reason), reason)


def _new(_system_id: str, obs: Observation) -> Step:
    power = obs.power_state
    if power == "on":
        return _act("new", "power_off", "New and powered on: power off first", stop_mode="soft")
    if power == "off":
        return _act("new", "commission", "New and powered off: commission")
    if obs.power_type == "" and obs.helper_script:
        return _act("new", "power_helper", f"New, power {power}, no power type: run the helper")
    if obs.power_type == "":
        return Step(
            "waiting", None, f"power state {power}; set a power type or POWER_HELPER_SCRIPT"
        )
    return Step("waiting", None, f"power state {power} ({obs.power_type}); waiting for MAAS")


def _ready(system_id: str, _obs: Observation) -> Step:
    return _act("ready", "allocate", "Ready: allocate exactly this machine", system_id=system_id)


def _allocated(_system_id: str, obs: Observation) -> Step:
    if obs.owner and obs.owner == obs.me:
        return _act("allocated", "deploy", "Allocated to us: deploy")
    return Step("waiting", None, "Allocated without an owner; waiting")


def _deployed(_system_id: str, obs: Observation) -> Step:
    view = obs.provision
    if view is None:
        return Step("deployed", None, "Deployed; no PROVISION_URL, nothing more to do")
    if view.state == "none":
        return _act("provisioning", "provision", "Deployed: provision")
    if view.state == "running" and view.poll:
        return _act("provisioning", "provision_poll", "provisioning submitted: poll it")
    if view.state == "running":
        return Step("provisioning", None, "provisioning in progress")
    if view.state == "complete":
        return Step("provisioned", None, "provisioned")
    if view.state == "failed" and view.retry_due:
        return _act("provisioning", "provision", "provisioning failed earlier: retry")
    if view.state == "failed":
        return Step("provisioning", None, "provisioning failed; retrying after a backoff")
    return Step("unknown", None, f"unknown provisioning state {view.state!r}")


def _waiting(phase: str, status: int) -> Rule:
    return _still(phase, f"{STATUS_NAMES[status]}: waiting for MAAS")


def _failed(status: int) -> Rule:
    return _still("failed", f"{STATUS_NAMES[status]}: needs a human")


def _hands_off(status: int) -> Rule:
    return _still(HANDS_OFF, f"{STATUS_NAMES[status]}: hands off")


_DEPLOYED_RULES: dict[int, Rule] = {
    NEW: _new,
    READY: _ready,
    ALLOCATED: _allocated,
    DEPLOYED: _deployed,
    **{s: _waiting("commissioning", s) for s in (1, 21)},
    9: _waiting("deploying", 9),
    **{s: _waiting("waiting", s) for s in (12, 14, 17, 19)},
    **{s: _failed(s) for s in (2, 3, 8, 11, 13, 15, 18, 20, 22)},
    **{s: _hands_off(s) for s in (5, 7, 16)},
}

TARGETS: dict[str, Mapping[int, Rule]] = {"deployed": _DEPLOYED_RULES}


def _forget(obs: Observation) -> Action | None:
    view = obs.provision
    if obs.status == DEPLOYED or view is None or view.state == "none":
        return None
    why = f"{STATUS_NAMES[obs.status]}: not Deployed, clear the provisioning record"
    return Action("forget_provision", {}, why)


def _rename(obs: Observation) -> Action | None:
    wanted = obs.desired_hostname
    if not wanted or wanted == obs.hostname:
        return None
    if not (obs.always_rename or obs.status == NEW):
        return None
    return Action("rename", {"hostname": wanted}, f"mapped MAC: rename {obs.hostname} to {wanted}")


def decide(rules: Mapping[int, Rule], system_id: str, obs: Observation) -> Step:
    """Apply the rules in priority order (see the module docstring); pure."""
    if obs.locked:
        return Step(HANDS_OFF, None, "locked")
    if obs.owner and obs.owner != obs.me:
        return Step(HANDS_OFF, None, f"owned by {obs.owner}")
    rule = rules.get(obs.status)
    if rule is None:
        return Step("unknown", None, f"unknown MAAS status {obs.status}")
    step = rule(system_id, obs)
    if step.phase == HANDS_OFF:
        return step
    chore = _forget(obs) or _rename(obs)
    return step if chore is None else Step(step.phase, chore, chore.reason)


@cache
def phase_machine() -> transitions.Machine:
    """The one `transitions.Machine` every flow shares; built on first use, never again."""
    return transitions.Machine(
        model=None,
        states=list(PHASES),
        initial="unknown",
        model_attribute="phase",
        auto_transitions=True,
    )


class Flow:
    """One machine's long-lived lifecycle; cheap to build, kept across passes."""

    __slots__ = ("_observed", "_rules", "phase", "system_id", "target")

    def __init__(self, system_id: str, target: str = "deployed") -> None:
        rules = TARGETS.get(target)
        if rules is None:
            known = ", ".join(sorted(TARGETS))
            raise ConfigError(f"unknown lifecycle target {target!r}; use one of: {known}")
        self.system_id = system_id
        self.target = target
        self._rules = rules
        self._observed = False
        self.phase: str = "unknown"
        phase_machine().set_state("unknown", model=self)

    def observe(self, obs: Observation) -> Decision:
        """Decide this pass's action (at most one) and move to the resulting phase."""
        step = decide(self._rules, self.system_id, obs)
        entered = not self._observed or step.phase != self.phase
        self._observed = True
        if step.phase != self.phase:
            # Event.trigger on the shared machine moves this flow without add_model(), which
            # would bind ~40 methods per flow and keep every flow alive in Machine.models.
            phase_machine().events[f"to_phase_{step.phase}"].trigger(self)
        return Decision(step.action, step.phase, step.reason, entered)

    def __repr__(self) -> str:
        return f"Flow({self.system_id!r}, target={self.target!r}, phase={self.phase!r})"


def describe(decision: Decision) -> str:
    """One human line for logs and the preview plan."""
    action = decision.action
    if action is None:
        return f"{decision.phase}: no action ({decision.reason})"
    params = " ".join(f"{key}={value}" for key, value in sorted(action.params.items()))
    head = f"{action.kind} {params}".rstrip()
    return f"{head} ({decision.reason})"
