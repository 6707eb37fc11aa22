"""A mixed MAAS region for the one-pass tests, and what the daemon must do to each machine.

One machine per rule of the issue's "Done when": New powered off and on, Ready, Allocated to
us and to someone else, failed and broken ones, a locked one, one excluded by hostname, one
in another zone, Deployed ones (ours: provisioned; someone else's: left alone) and one whose
MAC is mapped to a new hostname. The locked one is Deployed and ours, so only its lock keeps
it from being provisioned: MAAS locks only Deployed or Deploying machines (`Node.lock`).
`EXPECTED` is written from the issue, not from the daemon's code: it is the oracle, keyed by
hostname. The daemon runs with `FLAGS`: `-provision-existing`, since the Deployed machines of
ours are already Deployed at the daemon's first sight and would otherwise be adopted and left
alone (tests/e2e/test_adopted.py covers that default).
"""

from __future__ import annotations

import json

from maasflow.sim import MachineSpec

ADMIN = "admin"  # the simulator's default admin username, who the daemon is
OTHER = "someone-else"
MAPPED_MAC = "52:54:00:aa:00:0d"
NEW_NAME = "renamed-host"
FILTER = {"hosts": {"exclude": ["^skip-"]}, "zones": {"include": ["^default$"]}}
MAPPINGS = {MAPPED_MAC.upper().replace(":", "-"): NEW_NAME}  # another notation on purpose
FLAGS = ["-provision-existing"]  # provision Deployed machines first seen Deployed

# hostname → the one action one pass takes (None: no write request at all).
EXPECTED: dict[str, str | None] = {
    "new-off": "commission",
    "new-on": "power_off",
    "ready": "allocate",
    "ours": "deploy",
    "theirs": None,
    "failed-comm": None,
    "failed-deploy": None,
    "broken": None,
    "locked": None,
    "skip-me": None,
    "far": None,
    "deployed-1": "provision",
    "deployed-2": "provision",
    "theirs-deployed": None,
    "old-name": "rename",
}


def specs() -> list[MachineSpec]:
    """The machines of the scenario, hostnames as in `EXPECTED`."""
    rows: list[MachineSpec] = [
        MachineSpec("new-off"),
        MachineSpec("new-on", power_state="on"),
        MachineSpec("ready", status=4),
        MachineSpec("ours", status=10, owner=ADMIN),
        MachineSpec("theirs", status=10, owner=OTHER),
        MachineSpec("failed-comm", status=2),
        MachineSpec("failed-deploy", status=11, owner=ADMIN),
        MachineSpec("broken", status=8),
        MachineSpec("locked", status=6, owner=ADMIN, locked=True, power_state="on"),
        MachineSpec("skip-me"),
        MachineSpec("far", zone="lab-b"),
        MachineSpec("deployed-1", status=6, owner=ADMIN, power_state="on"),
        MachineSpec("deployed-2", status=6, owner=ADMIN, power_state="on"),
        MachineSpec("theirs-deployed", status=6, owner=OTHER, power_state="on"),
        MachineSpec("old-name", macs=[MAPPED_MAC]),
    ]
    for index, spec in enumerate(rows, start=1):
        if not spec.macs:
            spec.macs = [f"52:54:00:aa:01:{index:02x}"]
    return rows


def filter_json() -> str:
    return json.dumps(FILTER)


def mappings_json() -> str:
    return json.dumps(MAPPINGS)
