"""The rule table of every target: Deployed (the default), Allocated, Ready and Ignore.

`TARGETS[target]` maps each MAAS status to the rule `decide()` applies. Deployed's table
lives with its rules in `rules`; the three below share its common part (commission a New
machine, wait while MAAS works, leave failures to a human) and differ where a machine stops:

    Allocated  Ready -> allocate; Allocated to us -> held, no action
    Ready      Ready -> no action; Allocated, Deployed or Failed deployment of OURS -> release
               with the rule's erase flags, only when the rule has `release` (facts §3.7)
    Ignore     every status -> hands off

No target but Deployed deploys, and none releases a machine by default: a Deployed machine
under an Allocated rule, or under a Ready rule without `release`, is left as it is. Pure:
no I/O, like the rest of the package.
"""

from __future__ import annotations

from collections.abc import Mapping

from maasflow.daemon.lifecycle.rules import (
    COMMON_RULES,
    DEPLOYED_RULES,
    Action,
    Observation,
    Rule,
    Step,
    allocate,
    still,
)
from maasflow.daemon.lifecycle.vocabulary import (
    ALLOCATED,
    DEPLOYED,
    READY,
    STATUS_NAMES,
    ActionKind,
    Phase,
    Target,
)

FAILED_DEPLOYMENT = 11


def _held(_system_id: str, obs: Observation) -> Step:
    if obs.owner and obs.owner == obs.me:
        return Step(Phase.ALLOCATED, None, "Allocated to us: held, as the rule wants")
    return Step(Phase.WAITING, None, "Allocated without an owner; waiting")


def _release_if_asked(phase: Phase) -> Rule:
    """Release one of OUR machines with the rule's erase flags; without `release`, leave it."""

    def rule(_system_id: str, obs: Observation) -> Step:
        name = STATUS_NAMES[obs.status]
        flags = obs.wanted.release
        if obs.owner is None or obs.owner != obs.me:
            return Step(Phase.WAITING, None, f"{name} without an owner; waiting")
        if flags is None:
            return Step(phase, None, f"{name}; the Ready rule has no release: left as it is")
        erase = " ".join(sorted(flags)) or "no erase"
        why = f"{name}, the rule wants it Ready: release ({erase})"
        return Step(phase, Action(ActionKind.RELEASE, flags, why), why)

    return rule


_ALLOCATED_RULES: dict[int, Rule] = {
    **COMMON_RULES,
    READY: allocate,
    ALLOCATED: _held,
    DEPLOYED: still(Phase.DEPLOYED, "Deployed; an Allocated rule never releases it"),
}

_READY_RULES: dict[int, Rule] = {
    **COMMON_RULES,
    READY: still(Phase.READY, "Ready, as the rule wants"),
    ALLOCATED: _release_if_asked(Phase.ALLOCATED),
    DEPLOYED: _release_if_asked(Phase.DEPLOYED),
    FAILED_DEPLOYMENT: _release_if_asked(Phase.FAILED),
}

_IGNORE_RULES: dict[int, Rule] = {
    status: still(Phase.HANDS_OFF, f"{name}: the rule says Ignore, hands off")
    for status, name in STATUS_NAMES.items()
}

TARGETS: dict[Target, Mapping[int, Rule]] = {
    Target.DEPLOYED: DEPLOYED_RULES,
    Target.ALLOCATED: _ALLOCATED_RULES,
    Target.READY: _READY_RULES,
    Target.IGNORE: _IGNORE_RULES,
}
TARGETS_BY_NAME: dict[str, tuple[Target, Mapping[int, Rule]]] = {
    str(target): (target, rules) for target, rules in TARGETS.items()
}
