"""The simulator's own copy of MAAS's machine status table and of which op is allowed when.

Written from the facts file (§2.2 and §3.11), never imported from the daemon: if both sides
shared one table, a wrong number would pass every test. Numbers, `status_name` labels and
the lower-case names used by the `status=` listing filter come from MAAS's
`src/maascommon/enums/node.py` / `src/maasserver/enum.py` (NODE_STATUS, NODE_STATUS_LABELS).
This module is data only: who moves a machine between statuses is `lifecycle.py`.
"""

from __future__ import annotations

from enum import IntEnum


class Status(IntEnum):
    """NODE_STATUS: the number MAAS reports in a machine's `status` field."""

    NEW = 0
    COMMISSIONING = 1
    FAILED_COMMISSIONING = 2
    MISSING = 3
    READY = 4
    RESERVED = 5
    DEPLOYED = 6
    RETIRED = 7
    BROKEN = 8
    DEPLOYING = 9
    ALLOCATED = 10
    FAILED_DEPLOYMENT = 11
    RELEASING = 12
    FAILED_RELEASING = 13
    DISK_ERASING = 14
    FAILED_DISK_ERASING = 15
    RESCUE_MODE = 16
    ENTERING_RESCUE_MODE = 17
    FAILED_ENTERING_RESCUE_MODE = 18
    EXITING_RESCUE_MODE = 19
    FAILED_EXITING_RESCUE_MODE = 20
    TESTING = 21
    FAILED_TESTING = 22


# Exact display labels; only the first word is capitalised, and 13 is "Releasing failed".
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

# `GET machines/?status=<name>` takes the lower-case constant names.
FILTER_NAMES: dict[str, int] = {member.name.lower(): member.value for member in Status}

# SimplifiedNodeStatusEnum grouping used by `simple_status=` (names lower-cased for the filter).
SIMPLE_STATUS: dict[int, str] = {
    0: "new",
    1: "commissioning",
    2: "failed",
    3: "other",
    4: "ready",
    5: "other",
    6: "deployed",
    7: "other",
    8: "broken",
    9: "deploying",
    10: "allocated",
    11: "failed",
    12: "releasing",
    13: "failed",
    14: "releasing",
    15: "failed",
    16: "rescue_mode",
    17: "rescue_mode",
    18: "failed",
    19: "rescue_mode",
    20: "failed",
    21: "testing",
    22: "failed",
}

# Which op is allowed from which status (facts §3.11).
COMMISSION_FROM = frozenset({0, 2, 4, 8})
ALLOCATE_FROM = frozenset({4})
DEPLOY_FROM = frozenset({4, 10})
RELEASABLE = frozenset({5, 6, 8, 9, 10, 11, 13, 15})
RELEASE_NOOP = frozenset({4, 12})
ABORT_FROM = frozenset({1, 9, 14, 21})
MARK_FIXED_FROM = frozenset({8})
LOCKABLE = frozenset({6, 9})  # Node.lock: only Deployed or Deploying


def status_name(status: int) -> str:
    """The display label of a status number ("Unknown" for a number MAAS does not have)."""
    return STATUS_NAMES.get(status, "Unknown")
