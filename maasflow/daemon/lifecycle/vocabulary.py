"""The lifecycle's vocabulary: MAAS's statuses, and the phases, action kinds, provisioning and
power states and targets maasflow speaks of, as enums compared by identity.

Status numbers and names come from MAAS's `src/maascommon/enums/node.py` (see maas-api-facts
§2.2). Data only: no rule, no machine, no I/O.
"""

from __future__ import annotations

from enum import StrEnum

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
    POWER_ON = "power_on"
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

    DEPLOYED = "deployed"  # deployed with the rule's parameters, then provisioned (the default)
    ALLOCATED = "allocated"  # commissioned and held by maasflow's MAAS user
    READY = "ready"  # commissioned and not owned; released only when a rule says so
    IGNORE = "ignore"  # hands off


def status_name(status: int) -> str:
    """MAAS's label for `status`, or a readable stand-in for a number we do not know."""
    return STATUS_NAMES.get(status, f"unknown status {status}")
