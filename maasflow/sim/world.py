"""Everything the simulated region stores: machines, zones, pools, domains, tags, subnets.

Also the rules of who may do what to a machine, the simulator's reading of MAAS 3.6's
`MAASAuthorizationBackend` (`src/maasserver/auth/local.py`, without RBAC) and of
`get_node_or_404` (`src/maasserver/models/node.py`): an unknown system_id is 404; then
"view" needs the machine unowned, the caller's, or an admin caller; "edit" and "lock" need
it editable the same way, and "edit" also unlocked; "admin_read" needs an admin, and
"admin" an admin and an unlocked machine. Every refusal is `PermissionDenied()`: 403 with an
empty body (MAAS's middleware answers `str(exception)`), so a machine the caller may not
see is 403, not 404. Addresses for deployed machines come from three RFC 5737
documentation subnets (735 addresses; a run may give larger ones, `SimConfig.subnets`), and
an IPMI machine given no parameters gets a BMC address from
198.18.0.0/15 (RFC 2544), as enlistment would have recorded one; both are data only,
never contacted.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable

from maasflow.sim.auth import User
from maasflow.sim.events import INFO, Event, EventLog
from maasflow.sim.http import ApiError, fail, text
from maasflow.sim.machine import Machine, Named, Nic, Subnet
from maasflow.sim.scenario import MachineSpec, mac_for
from maasflow.sim.statuses import Status

ADMIN_ONLY = "This method is reserved for admin users."
NOT_FOUND = "No Machine matches the given query."
_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxy"
SUBNETS: tuple[str, ...] = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")


class World:
    """The region's data, in insertion (= internal id) order."""

    def __init__(
        self,
        seed: int,
        events: EventLog,
        zones: Iterable[str] = ("default",),
        pools: Iterable[str] = ("default",),
        domains: Iterable[str] = ("maas",),
        subnets: Iterable[str] = SUBNETS,
        real_sized: bool = False,
    ) -> None:
        self.events = events
        self.real_sized = real_sized  # machines render real-sized objects (`render`)
        self.machines: dict[str, Machine] = {}
        self.zones: dict[str, Named] = {}
        self.pools: dict[str, Named] = {}
        self.domains: dict[str, Named] = {}
        self.tags: dict[str, None] = {}  # names in creation order (MAAS lists tags by id)
        self.subnets = [Subnet(i + 1, cidr, _gateway(cidr)) for i, cidr in enumerate(subnets)]
        self._used_ips: set[str] = set()
        self._rng = random.Random(f"ids:{seed}")
        self._next = {"machine": 1, "nic": 1, "link": 1}
        for name in zones:
            self.zone(name)
        for name in pools:
            self.pool(name)
        for name in domains:
            self.domain(name)

    def zone(self, name: str) -> Named:
        """The zone called `name`, created on first use."""
        return self.zones.setdefault(name, Named("zone", len(self.zones) + 1, name))

    def pool(self, name: str) -> Named:
        """The resource pool called `name`, created on first use (default pool has id 0)."""
        if name not in self.pools:
            number = len(self.pools)
            # MAAS creates its default pool with DEFAULT_RESOURCEPOOL_DESCRIPTION
            # (src/maasserver/models/resourcepool.py).
            about = "Default pool" if (number, name) == (0, "default") else ""
            self.pools[name] = Named("pool", number, name, about)
        return self.pools[name]

    def domain(self, name: str) -> Named:
        """The DNS domain called `name`, created on first use (the first is the default)."""
        return self.domains.setdefault(name, Named("domain", len(self.domains), name))

    def add_tags(self, names: Iterable[str]) -> None:
        """Create the tags in `names` that do not exist yet."""
        self.tags.update(dict.fromkeys(names))

    def new_id(self, kind: str) -> int:
        value = self._next[kind]
        self._next[kind] = value + 1
        return value

    def new_system_id(self) -> str:
        """A fresh six-character system id drawn from the seeded generator."""
        while True:
            candidate = "".join(self._rng.choice(_ID_ALPHABET) for _ in range(6))
            if candidate not in self.machines:
                return candidate

    def add(self, spec: MachineSpec, *, announce: bool = True) -> Machine:
        """Create a live machine from a spec and return it.

        With `announce` it gets the status event of a machine that reached its status (a
        scenario's machines, one enlisting itself). A machine created through the API gets
        none: MAAS 3.6 writes "Node changed status" only when a saved status differs from
        the one the object was built with (`maasserver/utils/signals.py`,
        `connect_to_field_change`), so creating a machine writes no event."""
        number = self.new_id("machine")
        system_id = spec.system_id or self.new_system_id()
        if system_id in self.machines:
            raise ValueError(f"system_id {system_id} already exists")
        machine = Machine(
            id=number,
            system_id=system_id,
            hostname=spec.hostname,
            domain=self.domain(spec.domain),
            zone=self.zone(spec.zone),
            pool=self.pool(spec.pool),
            status=spec.status,
            power_state=spec.power_state,
            power_type=spec.power_type,
            power_parameters=_power_parameters(spec, number),
            architecture=spec.architecture,
            cpu_count=spec.cpu_count,
            memory=spec.memory,
            tags=list(spec.tags),
            nics=self.make_nics(spec.macs or [mac_for(number, prefix=0xEE)], number),
            owner=spec.owner,
            locked=spec.locked,
            description=spec.description,
            outcomes={
                "commission": spec.commission_outcome,
                "deploy": spec.deploy_outcome,
                "release": spec.release_outcome,
            },
            real_sized=self.real_sized,
        )
        _settle(machine)
        self.add_tags(spec.tags)
        self.machines[system_id] = machine
        if machine.status in (Status.DEPLOYED, Status.DEPLOYING):
            self.assign_ips(machine)
        kind = status_event(machine.status)
        if kind is not None and announce:
            self.record(machine, kind)
        machine.to_json()  # pre-serialise: the first full listing is a join, too
        return machine

    def make_nics(self, macs: list[str], number: int) -> list[Nic]:
        """Interfaces eth0, eth1, ... for `macs`; the boot one sits on subnet (number mod 3)."""
        nics = []
        for index, mac in enumerate(macs):
            subnet = self.subnets[(number + index) % len(self.subnets)]
            nic_id, link_id = self.new_id("nic"), self.new_id("link")
            nics.append(Nic(nic_id, f"eth{index}", mac.lower(), link_id, subnet))
        return nics

    def remove(self, machine: Machine) -> None:
        self.release_ips(machine)
        self.machines.pop(machine.system_id, None)

    def record(
        self, machine: Machine, kind: str, description: str = "", user: str | None = None
    ) -> Event:
        """Write an event for `machine`; INFO and above become its `status_message`."""
        event = self.events.add(machine.system_id, machine.hostname, kind, description, user)
        if event.level >= INFO:
            machine.status_message = event.message
        return event

    def by_hostname(self, hostname: str) -> Machine | None:
        return next((m for m in self.machines.values() if m.hostname == hostname), None)

    def hostname_taken(self, hostname: str, other_than: Machine | None = None) -> bool:
        return any(m.hostname == hostname and m is not other_than for m in self.machines.values())

    # -- addresses -------------------------------------------------------------------

    def assign_ips(self, machine: Machine) -> bool:
        """Give each interface an address from its subnet; False when a subnet is full."""
        for nic in machine.nics:
            if nic.ip is None:
                address = self._free_ip(nic.subnet)
                if address is None:
                    return False
                nic.ip = address
                self._used_ips.add(address)
        machine.touch()
        return True

    def release_ips(self, machine: Machine) -> None:
        for nic in machine.nics:
            if nic.ip is not None:
                self._used_ips.discard(nic.ip)
                nic.ip = None
        machine.touch()

    def _free_ip(self, subnet: Subnet) -> str | None:
        network = ipaddress.ip_network(subnet.cidr)
        for offset in range(10, network.num_addresses - 1):
            address = str(network.network_address + offset)
            if address not in self._used_ips:
                return address
        return None

    # -- permissions -----------------------------------------------------------------

    def lookup(self, system_id: str, user: User, perm: str) -> Machine:
        """The machine if `user` has `perm` on it ("view", "edit", "lock", "admin_read",
        "admin"); 404 when there is no such machine, 403 with an empty body otherwise."""
        machine = self.machines.get(system_id)
        if machine is None:
            raise fail(404, NOT_FOUND)
        if not permitted(machine, user, perm):
            raise ApiError(text(403, ""))
        return machine


def permitted(machine: Machine, user: User, perm: str) -> bool:
    """Whether `user` holds `perm` on `machine` (see the module docstring)."""
    if perm in ("admin", "admin_read"):
        return user.is_superuser and not (perm == "admin" and machine.locked)
    if perm == "edit" and machine.locked:
        return False
    return visible(machine, user)


def visible(machine: Machine, user: User) -> bool:
    """Admins see all machines; other users see unowned ones and their own."""
    return user.is_superuser or machine.owner is None or machine.owner == user.username


_STATUS_EVENT = {
    Status.NEW: "NEW",
    Status.COMMISSIONING: "COMMISSIONING",
    Status.FAILED_COMMISSIONING: "FAILED_COMMISSIONING",
    Status.READY: "READY",
    Status.DEPLOYING: "DEPLOYING",
    Status.DEPLOYED: "DEPLOYED",
    Status.RELEASING: "RELEASING",
    Status.TESTING: "TESTING",
    Status.FAILED_TESTING: "FAILED_TESTING",
}


def status_event(status: int) -> str | None:
    """The INFO event kind MAAS writes when a machine enters `status`, if any."""
    return _STATUS_EVENT.get(Status(status))


def _power_parameters(spec: MachineSpec, number: int) -> dict[str, object]:
    """The spec's power parameters; an IPMI machine without any gets a BMC address."""
    if spec.power_type == "ipmi" and not spec.power_parameters:
        return {"power_address": f"198.18.{number >> 8 & 0xFF}.{number & 0xFF}"}
    return dict(spec.power_parameters)


def _settle(machine: Machine) -> None:
    """Make a machine created directly in some status look like it got there."""
    busy = machine.status in (Status.COMMISSIONING, Status.TESTING)
    machine.return_status = Status.NEW if busy else machine.status
    if machine.status >= Status.READY or machine.status == Status.FAILED_COMMISSIONING:
        machine.commissioning_result = 3 if machine.status == Status.FAILED_COMMISSIONING else 2
        machine.testing_result = 3 if machine.status == Status.FAILED_TESTING else 2
    if machine.status in (Status.DEPLOYED, Status.DEPLOYING, Status.FAILED_DEPLOYMENT):
        machine.osystem, machine.distro_series = "ubuntu", "jammy"


def _gateway(cidr: str) -> str:
    """A subnet's gateway: its first host address, as in the default subnets."""
    return str(ipaddress.ip_network(cidr).network_address + 1)
