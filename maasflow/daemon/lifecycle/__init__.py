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

Each machine has a target (Deployed by default; Allocated, Ready or Ignore by a targets
rule, see `tables`) and a `Wanted` (deploy parameters, power, release flags, redeploy) that
the daemon derives from the machine's desire. A Deployed machine is redeployed (released)
only when its rule says `redeploy` and the deploy parameters maasflow last sent differ;
once provisioned, its power is turned on or off only when MAAS reports the opposite state.

An adopted machine (already Deployed when first seen, `daemon.adoption`) keeps the step's phase
and reason when it has no action; an action, whatever it is, is withheld and the reason says
so. Hands-off means no action of any kind, not even clearing our own record (it is cleared once
the machine comes back). The record is cleared before a rename because it is local bookkeeping
that must not outlive the deploy it describes; an unknown status is left alone.

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
`src/maascommon/enums/node.py` (see maas-api-facts §2.2). This package does no I/O; the
listener does. `vocabulary` holds the enums, `rules` the decisions, `tables` each target's
rules, `phases` the machine.
"""

from __future__ import annotations

from maasflow.daemon.lifecycle.phases import (
    ANY,
    DETOURS,
    EXPECTED,
    INITIAL,
    QUIET,
    Flow,
    PhaseListener,
    Phases,
    Rows,
    onward,
    phase_machine,
)
from maasflow.daemon.lifecycle.rules import (
    NOTHING_MORE,
    Action,
    Decision,
    Observation,
    ProvisionView,
    RetryView,
    Rule,
    Step,
    Wanted,
    decide,
    describe,
)
from maasflow.daemon.lifecycle.tables import TARGETS, TARGETS_BY_NAME
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
    Target,
    status_name,
)

__all__ = [
    "ALLOCATED",
    "ANY",
    "DEPLOYED",
    "DETOURS",
    "EXPECTED",
    "INITIAL",
    "NEW",
    "NOTHING_MORE",
    "QUIET",
    "READY",
    "STATUS_NAMES",
    "TARGETS",
    "TARGETS_BY_NAME",
    "Action",
    "ActionKind",
    "Decision",
    "Flow",
    "Observation",
    "Phase",
    "PhaseListener",
    "Phases",
    "PowerState",
    "ProvisionState",
    "ProvisionView",
    "RetryView",
    "Rows",
    "Rule",
    "Step",
    "Target",
    "Wanted",
    "decide",
    "describe",
    "onward",
    "phase_machine",
    "status_name",
]
