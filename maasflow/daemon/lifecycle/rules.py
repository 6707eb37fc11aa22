"""The rules: what one machine needs next, decided from what MAAS says about it now.

`decide()` is a pure function of an `Observation` (see the package docstring for the rules'
priority): it answers a `Step` holding the phase, at most one `Action`, and why. It keeps no
state and knows nothing of the phase machine that remembers where a flow has been.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from maasflow.daemon.lifecycle.vocabulary import (
    ALLOCATED,
    DEPLOYED,
    NEW,
    READY,
    STATUS_NAMES,
    ActionKind,
    Phase,
    PowerState,
    ProvisionState,
)


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
class Wanted:
    """What a machine's desire asks beyond its target, in the shape the rules use.

    The daemon builds it from the machine's `Desire` (rule or default). `deploy` holds the
    deploy op's parameters as shown and remembered (user data as a digest), `hidden` the
    parts sent but never shown (the user data itself). `power` is None when power is not
    managed (maasflow's default); `release` is None when a Ready target must never release.
    """

    deploy: Mapping[str, str] = field(default_factory=dict)
    hidden: Mapping[str, str] = field(default_factory=dict, repr=False)
    power: PowerState | None = None
    release: Mapping[str, str] | None = None
    redeploy: bool = False


NOTHING_MORE = Wanted()


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
    wanted: Wanted = field(default_factory=lambda: NOTHING_MORE)  # the desire beyond its target
    applied: Mapping[str, str] | None = None  # the deploy parameters maasflow last sent it
    adopted: bool = False  # already Deployed when first seen, nobody asked to change it
    commission_unknown_power: bool = False  # -commission-unknown-power


@dataclass(frozen=True)
class Action:
    """One thing to do to one machine; `params` are the op's parameters."""

    kind: ActionKind
    params: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""
    spends_retry: bool = False  # a retry of a failed machine: counts against its budget
    hidden: Mapping[str, str] = field(default_factory=dict, repr=False)  # sent, never shown


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


def still(phase: Phase, reason: str) -> Rule:
    """A rule that never acts: the machine is busy, failed or not ours."""
    step = Step(phase, None, reason)
    return lambda _system_id, _obs: step


def act(phase: Phase, kind: ActionKind, reason: str, **params: str) -> Step:
    return Step(phase, Action(kind, params, reason), reason)


def new_machine(_system_id: str, obs: Observation) -> Step:
    power = obs.power_state
    if power == PowerState.ON:
        return act(
            Phase.NEW, ActionKind.POWER_OFF, "New and powered on: power off first", stop_mode="soft"
        )
    if power == PowerState.OFF:
        return act(Phase.NEW, ActionKind.COMMISSION, "New and powered off: commission")
    if power == PowerState.UNKNOWN and obs.power_type and obs.commission_unknown_power:
        why = f"New, power unknown ({obs.power_type}): commission; MAAS asks its driver for power"
        return act(Phase.NEW, ActionKind.COMMISSION, why)
    if obs.power_type == "" and obs.helper_script:
        why = f"New, power {power}, no power type: run the helper"
        return act(Phase.NEW, ActionKind.POWER_HELPER, why)
    if obs.power_type == "":
        why = f"power state {power}; set a power type or POWER_HELPER_SCRIPT"
        return Step(Phase.WAITING, None, why)
    why = f"power state {power} ({obs.power_type}); waiting for MAAS"
    return Step(Phase.WAITING, None, why)


def allocate(system_id: str, _obs: Observation) -> Step:
    why = "Ready: allocate exactly this machine"
    return act(Phase.READY, ActionKind.ALLOCATE, why, system_id=system_id)


def _allocated(_system_id: str, obs: Observation) -> Step:
    if obs.owner and obs.owner == obs.me:
        why = "Allocated to us: deploy"
        wanted = obs.wanted
        action = Action(ActionKind.DEPLOY, wanted.deploy, why, hidden=wanted.hidden)
        return Step(Phase.ALLOCATED, action, why)
    return Step(Phase.WAITING, None, "Allocated without an owner; waiting")


def _deployed(system_id: str, obs: Observation) -> Step:
    """Redeploy when asked to and the parameters changed; provision; then mind the power."""
    wanted = obs.wanted
    ours = bool(obs.owner) and obs.owner == obs.me
    if ours and wanted.redeploy and obs.applied is not None and obs.applied != wanted.deploy:
        why = "Deployed with other deploy parameters and redeploy is set: release, then deploy"
        return act(Phase.DEPLOYED, ActionKind.RELEASE, why)
    step = _provisioned(system_id, obs)
    if step.action is not None or step.phase not in (Phase.DEPLOYED, Phase.PROVISIONED):
        return _powered_for_provisioning(obs, step)
    return _power(obs, step)


def _powered_for_provisioning(obs: Observation, step: Step) -> Step:
    """A provisioning run needs the machine running: when the rule manages power, power it on
    first if MAAS says off (without a power rule, maasflow never touches a Deployed machine's
    power, as before targets existed)."""
    action = step.action
    if action is None or action.kind is not ActionKind.PROVISION:
        return step
    if obs.wanted.power is None or obs.power_state != PowerState.OFF:
        return step
    return act(step.phase, ActionKind.POWER_ON, "Deployed and off: power on to provision")


def _power(obs: Observation, step: Step) -> Step:
    """Power on or off only when MAAS reports the opposite state; never on unknown or error
    (MAAS's power_on of a running machine is a power cycle, facts §3.4)."""
    wanted, power = obs.wanted.power, obs.power_state
    if wanted is PowerState.OFF and power == PowerState.ON:
        why = "Deployed and on, the rule says power off"
        return act(step.phase, ActionKind.POWER_OFF, why, stop_mode="soft")
    if wanted is PowerState.ON and power == PowerState.OFF:
        return act(step.phase, ActionKind.POWER_ON, "Deployed and off, the rule says power on")
    return step


def _provisioned(_system_id: str, obs: Observation) -> Step:
    view = obs.provision
    if view is None:
        return Step(Phase.DEPLOYED, None, "Deployed; no PROVISION_URL, nothing more to do")
    state = view.state
    if state is ProvisionState.NONE:
        return act(Phase.PROVISIONING, ActionKind.PROVISION, "Deployed: provision")
    if state is ProvisionState.RUNNING and view.poll:
        why = "provisioning submitted: poll it"
        return act(Phase.PROVISIONING, ActionKind.PROVISION_POLL, why)
    if state is ProvisionState.RUNNING:
        return Step(Phase.PROVISIONING, None, "provisioning in progress")
    if state is ProvisionState.COMPLETE:
        return Step(Phase.PROVISIONED, None, "provisioned")
    if state is ProvisionState.FAILED and view.retry_due:
        why = "provisioning failed earlier: retry"
        return act(Phase.PROVISIONING, ActionKind.PROVISION, why)
    if state is ProvisionState.FAILED:
        return Step(Phase.PROVISIONING, None, "provisioning failed; retrying after a backoff")
    return Step(Phase.UNKNOWN, None, f"unknown provisioning state {state!r}")


def _waiting(phase: Phase, status: int) -> Rule:
    return still(phase, f"{STATUS_NAMES[status]}: waiting for MAAS")


def _failed(status: int) -> Rule:
    return still(Phase.FAILED, f"{STATUS_NAMES[status]}: needs a human")


def _recover(status: int, kind: ActionKind) -> Rule:
    """Failed commissioning/deployment: retry with `kind` while the budget lasts, then tag."""
    name = STATUS_NAMES[status]

    def rule(_system_id: str, obs: Observation) -> Step:
        retry = obs.retry
        if retry is None:
            return Step(Phase.FAILED, None, f"{name}: needs a human")
        if retry.left == 0:
            why = f"{name} after {retry.used} retries: quarantine (tag {retry.tag})"
            return act(Phase.FAILED, ActionKind.QUARANTINE, why, tag=retry.tag)
        number = f"retry {retry.used + 1} of {retry.limit}"
        if not retry.due:
            return Step(Phase.RETRYING, None, f"{name}: {number} after a backoff")
        why = f"{name}: {number} ({kind})"
        return Step(Phase.RETRYING, Action(kind, {}, why, spends_retry=True), why)

    return rule


def _hands_off(status: int) -> Rule:
    return still(Phase.HANDS_OFF, f"{STATUS_NAMES[status]}: hands off")


# What every target does alike: commission a New machine, wait while MAAS works, leave
# failures to a human (or the retry budget) and rescue modes and retirement alone.
COMMON_RULES: dict[int, Rule] = {
    NEW: new_machine,
    **{s: _waiting(Phase.COMMISSIONING, s) for s in (1, 21)},
    9: _waiting(Phase.DEPLOYING, 9),
    **{s: _waiting(Phase.WAITING, s) for s in (12, 14, 17, 19)},
    2: _recover(2, ActionKind.COMMISSION),
    **{s: _failed(s) for s in (3, 8, 11, 13, 15, 18, 20, 22)},
    **{s: _hands_off(s) for s in (5, 7, 16)},
}

DEPLOYED_RULES: dict[int, Rule] = {
    **COMMON_RULES,
    READY: allocate,
    ALLOCATED: _allocated,
    DEPLOYED: _deployed,
    11: _recover(11, ActionKind.RELEASE),
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
        return _unless_adopted(obs, step)
    chore = _forget(obs) or _rename(obs)
    return _unless_adopted(obs, step if chore is None else Step(step.phase, chore, chore.reason))


def _unless_adopted(obs: Observation, step: Step) -> Step:
    """An adopted machine (running when maasflow first saw it) gets no action of any kind,
    not even a rename; a step without an action stands as it is."""
    if not obs.adopted or step.action is None:
        return step
    why = (
        f"adopted: {STATUS_NAMES.get(obs.status, obs.status)} before maasflow first saw it, "
        f"so not {step.action.kind}; left as it runs (-provision-existing, or a rule naming "
        "it, changes that)"
    )
    return Step(Phase.DEPLOYED if obs.status == DEPLOYED else step.phase, None, why)


def describe(decision: Decision) -> str:
    """One human line for logs and the preview plan."""
    action = decision.action
    if action is None:
        return f"{decision.phase}: no action ({decision.reason})"
    params = " ".join(f"{key}={value}" for key, value in sorted(action.params.items()))
    head = f"{action.kind} {params}".rstrip()
    return f"{head} ({decision.reason})"
