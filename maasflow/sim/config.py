"""How one simulator run is set up: `SimConfig` and the lifecycle `Durations`.

Durations are seconds at `time_factor=1` (roughly a small real MAAS lab); every wait the
simulator does, including the webhook confirm loop, is multiplied by `time_factor` (by the
`clock.ScaledClock` built from it, which keeps timeouts above real I/O latency), so tests
run the same lifecycle in milliseconds. Failure rates are per attempt, rolled from a
per-machine seeded generator, so a run is reproducible. `maas_version` is the version the
simulator reports and also picks how it powers webhook machines (`PowerPath`): MAAS 3.5 and
later run power through the rack's agent, earlier versions through the rack's RPC driver;
before 3.1 a create's `deployed=true` is not a field MAAS knows, so it is ignored.
This module only validates values; `server.py` builds a simulator from them.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from enum import StrEnum

from maasflow.common.errors import ConfigError
from maasflow.sim.faults import Faults
from maasflow.sim.scenario import ADMIN, OTHER_OWNER, MachineSpec
from maasflow.sim.world import SUBNETS

MAAS_VERSION = "3.6.1"
AGENT_SINCE = (3, 5)  # the first MAAS whose power actions run on the rack's agent
DEPLOYED_ENLISTMENT_SINCE = (3, 1)  # `POST machines/ deployed=true` (facts §3.9)
RELEASE_SCRIPTS_SINCE = (3, 5)  # release's erase flags become the `wipe-disks` release script
_VERSION = re.compile(r"(\d+)\.(\d+)")


class PowerPath(StrEnum):
    """How the region reaches a webhook BMC, which depends on the MAAS version (facts §10.2)."""

    RACK_RPC = "rack-rpc"  # <= 3.4: the rack's driver, System_id on every request
    AGENT_WORKFLOW = "agent-workflow"  # >= 3.5: a workflow runs the power CLI on the agent


@dataclass(frozen=True)
class Durations:
    """Seconds each lifecycle phase takes at time_factor 1."""

    commissioning: float = 20.0
    testing: float = 10.0
    deploying: float = 40.0
    releasing: float = 5.0
    disk_erasing: float = 20.0
    power: float = 2.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value < 0:
                raise ConfigError(f"duration {name}={value} must not be negative")


@dataclass
class SimConfig:
    """Everything a simulator needs; defaults give an empty, fault-free MAAS."""

    seed: int = 0
    time_factor: float = 1.0
    faults: Faults = field(default_factory=Faults)
    machines: list[MachineSpec] = field(default_factory=list)
    durations: Durations = field(default_factory=Durations)
    commission_fail_rate: float = 0.0
    testing_fail_rate: float = 0.0
    deploy_fail_rate: float = 0.0
    release_fail_rate: float = 0.0
    erase_fail_rate: float = 0.0
    admin_key: str | None = None
    admin_username: str = ADMIN
    user_username: str = "user"
    other_username: str = OTHER_OWNER
    maas_version: str = MAAS_VERSION
    zones: list[str] = field(default_factory=lambda: ["default"])
    pools: list[str] = field(default_factory=lambda: ["default"])
    domains: list[str] = field(default_factory=lambda: ["maas"])
    tags: list[str] = field(default_factory=list)
    subnets: list[str] = field(default_factory=lambda: list(SUBNETS))  # IPv4 CIDRs to deploy on
    # Seconds (at time_factor 1) between passes of the rack's power monitor over webhook
    # machines; None runs no monitor. MAAS queries each machine about every 300 s.
    power_monitor_interval: float | None = None
    # Serve machine objects the size of a real region's (~8.7 KB, partitioned disks) rather
    # than the leaner default (~6.5 KB): for benchmarks of the listing.
    real_sized: bool = False

    def __post_init__(self) -> None:
        if not self.time_factor > 0:
            raise ConfigError(f"time_factor={self.time_factor} must be greater than 0")
        if not _VERSION.match(self.maas_version):
            raise ConfigError(
                f"maas_version={self.maas_version!r} must start with major.minor, e.g. 3.6.1"
            )
        interval = self.power_monitor_interval
        if interval is not None and not interval > 0:
            raise ConfigError(f"power_monitor_interval={interval} must be greater than 0")
        for name in (
            "commission_fail_rate",
            "testing_fail_rate",
            "deploy_fail_rate",
            "release_fail_rate",
            "erase_fail_rate",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name}={value} must be between 0 and 1")
        for cidr in self.subnets:
            _check_subnet(cidr)

    @property
    def version(self) -> tuple[int, int]:
        """The simulated MAAS's (major, minor)."""
        found = _VERSION.match(self.maas_version)
        assert found is not None  # checked in __post_init__
        return (int(found.group(1)), int(found.group(2)))

    @property
    def power_path(self) -> PowerPath:
        """The way the simulated MAAS version powers webhook machines."""
        return PowerPath.AGENT_WORKFLOW if self.version >= AGENT_SINCE else PowerPath.RACK_RPC

    @property
    def any_erase_flag_erases(self) -> bool:
        """3.5+: any of erase/quick_erase/secure_erase erases (`ReleaseForm.clean` in
        `src/maasserver/forms/ephemeral.py`); before, `Node.release_or_erase` erased only
        with erase=true, the other two choosing how (facts §3.7, §10.1 on 3.4)."""
        return self.version >= RELEASE_SCRIPTS_SINCE

    @property
    def deployed_enlistment(self) -> bool:
        """True when the admin create form has `deployed` (MAAS 3.1+); 3.0 ignores it."""
        return self.version >= DEPLOYED_ENLISTMENT_SINCE


def _check_subnet(cidr: str) -> None:
    try:
        network = ipaddress.IPv4Network(cidr)
    except ValueError:
        raise ConfigError(f"subnet {cidr!r}: not an IPv4 network such as 192.0.2.0/24") from None
    if network.num_addresses < 16:
        raise ConfigError(f"subnet {cidr}: too small; give a /28 or larger")
