"""What machines a simulator starts with: `MachineSpec` and two ready-made sets.

`generate_machines(n, seed)` gives `n` New, powered-off machines named `node-0001`… with
deterministic MACs (the same n and seed always give the same list). `demo_machines(seed)`
gives the dozen of the `maasflow demo` scenario: New machines powered on and off, Ready
ones, a locked one, one in zone `lab-b`, one Allocated to "someone-else" and one whose
commissioning always fails. The locked one is Deployed and owned by the admin: MAAS locks
only Deployed or Deploying machines (`Node.lock`, `src/maasserver/models/node.py`). Specs
are plain data; `world.py` turns them into live machines.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from maasflow.common.errors import ConfigError
from maasflow.sim.statuses import STATUS_NAMES

OUTCOMES = {
    "commission_outcome": (None, "pass", "fail", "fail_testing"),
    "deploy_outcome": (None, "pass", "fail"),
    "release_outcome": (None, "pass", "fail"),
}
POWER_STATES = ("on", "off", "unknown", "error")
ADMIN = "admin"  # the default admin user's name (SimConfig.admin_username)
OTHER_OWNER = "someone-else"


@dataclass
class MachineSpec:
    """One machine to create.

    Outcomes force how its next commissioning / deployment / release (or disk erase) ends;
    None rolls the config's failure rate. A machine created in a transitional status
    (Commissioning, Deploying, Releasing, ...) stays there until an op moves it.
    """

    hostname: str
    status: int = 0
    power_state: str = "off"
    zone: str = "default"
    pool: str = "default"
    owner: str | None = None
    locked: bool = False
    power_type: str = "ipmi"
    power_parameters: dict[str, str] = field(default_factory=dict)
    macs: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    commission_outcome: str | None = None
    deploy_outcome: str | None = None
    release_outcome: str | None = None
    domain: str = "maas"
    architecture: str = "amd64/generic"
    cpu_count: int = 4
    memory: int = 8192
    system_id: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUS_NAMES:
            raise ConfigError(f"machine {self.hostname!r}: status {self.status} is no MAAS status")
        if self.power_state not in POWER_STATES:
            raise ConfigError(
                f"machine {self.hostname!r}: power_state must be one of {', '.join(POWER_STATES)}"
            )
        for name, allowed in OUTCOMES.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"machine {self.hostname!r}: {name} must be one of "
                    f"{', '.join(str(value) for value in allowed)}"
                )


def mac_for(index: int, prefix: int = 0) -> str:
    """A locally administered-looking MAC (52:54:00 is QEMU's prefix) for a machine index."""
    octets = (prefix & 0xFF, (index >> 16) & 0xFF, (index >> 8) & 0xFF, index & 0xFF)
    return "52:54:" + ":".join(f"{octet:02x}" for octet in octets)


def generate_machines(n: int, seed: int = 0, start: int = 1) -> list[MachineSpec]:
    """`n` New, powered-off machines `node-0001`…, hardware sizes drawn from `seed`."""
    rng = random.Random(f"machines:{seed}")
    specs = []
    for index in range(start, start + n):
        specs.append(
            MachineSpec(
                hostname=f"node-{index:04d}",
                macs=[mac_for(index)],
                cpu_count=rng.choice((2, 4, 8, 16)),
                memory=rng.choice((4096, 8192, 16384, 32768)),
            )
        )
    return specs


def demo_machines(seed: int = 0) -> list[MachineSpec]:
    """The dozen machines of the demo, in mixed states (see the module docstring)."""
    rng = random.Random(f"demo:{seed}")
    rows: list[tuple[str, dict[str, object]]] = [
        ("node-01", {"power_state": "on"}),
        ("node-02", {}),
        ("node-03", {"power_state": "on"}),
        ("node-04", {}),
        ("node-05", {}),
        ("node-06", {"power_state": "on"}),
        ("node-07", {"status": 4}),
        ("node-08", {"status": 4}),
        ("node-09", {"status": 6, "owner": ADMIN, "power_state": "on", "locked": True}),
        ("node-10", {"zone": "lab-b"}),
        ("node-11", {"status": 10, "owner": OTHER_OWNER}),
        ("node-12", {"commission_outcome": "fail"}),
    ]
    specs = []
    for index, (hostname, extra) in enumerate(rows, start=1):
        spec = MachineSpec(hostname=hostname, macs=[mac_for(index, prefix=0xD0)], tags=["demo"])
        for name, value in extra.items():
            setattr(spec, name, value)
        spec.cpu_count = rng.choice((2, 4, 8))
        spec.memory = rng.choice((4096, 8192, 16384))
        specs.append(spec)
    return specs
