"""One simulated machine's live state and its MAAS 2.0 JSON.

The JSON has the shape of MAAS's machine serializer (facts §2, `DISPLAYED_MACHINE_FIELDS` in
`src/maasserver/api/machines.py`; samples in `maas-samples/`): ids, names, status fields,
zone/pool/domain objects, interfaces with links and subnets, one disk, script-result
summaries. API 1.0 leftovers (`macaddress_set`) and fields removed from MAAS
(`iscsiblockdevice_set`) are not emitted. Each machine caches its serialised bytes and any
attribute assignment drops the cache, so a listing of 10,000 machines is a join of cached
blobs. Who changes the state, and when, is `lifecycle.py`'s business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from maasflow.sim.http import dump
from maasflow.sim.statuses import STATUS_NAMES

API = "/MAAS/api/2.0"
SCRIPT_STATUS_NAMES = {-1: "Unknown", 0: "Pending", 1: "Running", 2: "Passed", 3: "Failed"}
SCRIPT_STATUS_NAMES[5] = "Aborted"
DISK_SIZE = 500_107_862_016
_VLAN: dict[str, Any] = {
    "id": 5001,
    "name": "untagged",
    "vid": 0,
    "fabric": "fabric-0",
    "fabric_id": 0,
    "mtu": 1500,
    "primary_rack": "sim0rk",
    "secondary_rack": None,
    "dhcp_on": True,
    "external_dhcp": None,
    "relay_vlan": None,
    "space": "undefined",
    "resource_uri": f"{API}/vlans/5001/",
}


@dataclass(frozen=True)
class Named:
    """A zone, resource pool or DNS domain."""

    kind: str
    id: int
    name: str
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        if self.kind == "domain":
            return {
                "id": self.id,
                "name": self.name,
                "ttl": None,
                "authoritative": True,
                "resource_record_count": 0,
                "is_default": self.id == 0,
                "resource_uri": f"{API}/domains/{self.id}/",
            }
        if self.kind == "zone":
            uri = f"{API}/zones/{self.name}/"
        else:
            uri = f"{API}/resourcepool/{self.id}/"
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "resource_uri": uri,
        }


@dataclass(frozen=True)
class Subnet:
    """A documentation-range subnet (RFC 5737), never contacted: addresses are data only."""

    id: int
    cidr: str
    gateway: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.cidr,
            "description": "",
            "vlan": _VLAN,
            "cidr": self.cidr,
            "rdns_mode": 2,
            "gateway_ip": self.gateway,
            "dns_servers": [],
            "allow_dns": True,
            "allow_proxy": True,
            "active_discovery": False,
            "managed": True,
            "disabled_boot_architectures": [],
            "space": "undefined",
            "resource_uri": f"{API}/subnets/{self.id}/",
        }


@dataclass(eq=False)
class Nic:
    """A physical interface with one `auto` link; `ip` is set while deployed."""

    id: int
    name: str
    mac: str
    link_id: int
    subnet: Subnet
    ip: str | None = None

    def to_json(self, system_id: str) -> dict[str, Any]:
        link: dict[str, Any] = {"id": self.link_id, "mode": "auto", "subnet": self.subnet.to_json()}
        if self.ip is not None:
            link["ip_address"] = self.ip
        return {
            "id": self.id,
            "name": self.name,
            "type": "physical",
            "mac_address": self.mac,
            "enabled": True,
            "vlan": _VLAN,
            "parents": [],
            "children": [],
            "tags": [],
            "links": [link],
            "discovered": None,
            "params": "",
            "effective_mtu": 1500,
            "vendor": None,
            "product": None,
            "firmware_version": None,
            "link_connected": True,
            "interface_speed": 1000,
            "link_speed": 1000,
            "numa_node": 0,
            "sriov_max_vf": 0,
            "system_id": system_id,
            "resource_uri": f"{API}/nodes/{system_id}/interfaces/{self.id}/",
        }


@dataclass(eq=False)
class Machine:
    """Live state of one machine; assigning any attribute invalidates the cached JSON."""

    id: int
    system_id: str
    hostname: str
    domain: Named
    zone: Named
    pool: Named
    status: int
    power_state: str
    power_type: str
    power_parameters: dict[str, Any]
    architecture: str
    cpu_count: int
    memory: int
    tags: list[str]
    nics: list[Nic]
    owner: str | None = None
    locked: bool = False
    return_status: int = 0
    osystem: str = ""
    distro_series: str = ""
    hwe_kernel: str | None = None
    error_description: str = ""
    description: str = ""
    status_message: str | None = None
    agent_name: str = ""
    user_data: str | None = None
    commissioning_result: int = -1
    testing_result: int = -1
    outcomes: dict[str, str | None] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    real_sized: bool = False  # render what a real region adds (partitions, ...): ~8.7 KB
    blob: bytes | None = field(default=None, repr=False)

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)
        if name != "blob":
            object.__setattr__(self, "blob", None)

    def touch(self) -> None:
        """Drop the cached JSON after changing something inside a list or dict."""
        self.blob = None

    @property
    def status_name(self) -> str:
        return STATUS_NAMES[self.status]

    @property
    def fqdn(self) -> str:
        return f"{self.hostname}.{self.domain.name}"

    @property
    def macs(self) -> list[str]:
        return [nic.mac for nic in self.nics]

    @property
    def ip_addresses(self) -> list[str]:
        return [nic.ip for nic in self.nics if nic.ip is not None]

    @property
    def resource_uri(self) -> str:
        return f"{API}/machines/{self.system_id}/"

    def to_json(self) -> bytes:
        """The machine's JSON bytes, serialised at most once per change."""
        if self.blob is None:
            self.blob = dump(render(self))
        return self.blob


def render(machine: Machine) -> dict[str, Any]:
    """The machine as MAAS's API 2.0 serializer shows it."""
    data = _identity(machine) | _hardware(machine) | _scripts(machine)
    data |= _network(machine) | _storage(machine)
    if machine.real_sized:
        data |= _real_storage(machine)
    return data


def _identity(m: Machine) -> dict[str, Any]:
    return {
        "system_id": m.system_id,
        "hostname": m.hostname,
        "fqdn": m.fqdn,
        "domain": m.domain.to_json(),
        "description": m.description,
        "node_type": 0,
        "node_type_name": "Machine",
        "status": m.status,
        "status_name": m.status_name,
        "status_message": m.status_message,
        "status_action": "",
        "error_description": m.error_description,
        "owner": m.owner,
        "owner_data": {},
        "workload_annotations": {},
        "locked": m.locked,
        "zone": m.zone.to_json(),
        "pool": m.pool.to_json(),
        "power_state": m.power_state,
        "power_type": m.power_type,
        "osystem": m.osystem,
        "distro_series": m.distro_series,
        "hwe_kernel": m.hwe_kernel,
        "min_hwe_kernel": "",
        "netboot": m.status != 6,
        "ephemeral_deploy": False,
        "enable_hw_sync": False,
        "tag_names": list(m.tags),
        "address_ttl": None,
        "pod": None,
        "resource_uri": m.resource_uri,
    }


def _hardware(m: Machine) -> dict[str, Any]:
    info = dict.fromkeys(_HARDWARE_KEYS, "Unknown")
    info |= {"system_vendor": "Simulated", "system_product": "maasflow-sim"}
    info["system_serial"] = f"SIM-{m.system_id}"
    return {
        "architecture": m.architecture,
        "cpu_count": m.cpu_count,
        "cpu_speed": 2400,
        "memory": m.memory,
        "swap_size": None,
        "hardware_uuid": None,
        "hardware_info": info,
        "bios_boot_method": "pxe",
        "numanode_set": [{"index": 0, "memory": m.memory, "cores": list(range(m.cpu_count))}],
    }


_HARDWARE_KEYS = [
    "system_vendor",
    "system_product",
    "system_family",
    "system_version",
    "system_sku",
    "system_serial",
    "cpu_model",
    "mainboard_vendor",
    "mainboard_product",
    "mainboard_serial",
    "mainboard_version",
    "mainboard_firmware_vendor",
    "mainboard_firmware_date",
    "mainboard_firmware_version",
    "chassis_vendor",
    "chassis_type",
    "chassis_serial",
    "chassis_version",
]


def _scripts(m: Machine) -> dict[str, Any]:
    commissioning, testing = m.commissioning_result, m.testing_result
    data: dict[str, Any] = {
        "commissioning_status": commissioning,
        "commissioning_status_name": SCRIPT_STATUS_NAMES[commissioning],
        "testing_status": testing,
        "testing_status_name": SCRIPT_STATUS_NAMES[testing],
        "current_commissioning_result_id": m.id * 10 + 1 if commissioning >= 0 else None,
        "current_testing_result_id": m.id * 10 + 2 if testing >= 0 else None,
        "current_installation_result_id": m.id * 10 + 3 if m.status in (6, 9, 11) else None,
    }
    for kind in ("cpu", "memory", "network", "storage", "other", "interface"):
        data[f"{kind}_test_status"] = testing
        data[f"{kind}_test_status_name"] = SCRIPT_STATUS_NAMES[testing]
    return data


def _network(m: Machine) -> dict[str, Any]:
    interfaces = [nic.to_json(m.system_id) for nic in m.nics]
    boot = m.nics[0] if m.nics else None
    gateway = {"gateway_ip": boot.subnet.gateway if boot else None, "link_id": None}
    return {
        "interface_set": interfaces,
        "boot_interface": interfaces[0] if interfaces else None,
        "ip_addresses": m.ip_addresses,
        "default_gateways": {"ipv4": gateway, "ipv6": {"gateway_ip": None, "link_id": None}},
        "disable_ipv4": False,
    }


def _storage(m: Machine) -> dict[str, Any]:
    disk = _disk(m)
    return {
        "storage": DISK_SIZE / 1_000_000,
        "boot_disk": disk,
        "blockdevice_set": [disk],
        "physicalblockdevice_set": [disk],
        "virtualblockdevice_set": [],
        "volume_groups": [],
        "raids": [],
        "cache_sets": [],
        "bcaches": [],
        "special_filesystems": [],
    }


def _disk(m: Machine) -> dict[str, Any]:
    disk_id = m.id * 10 + 1
    return {
        "id": disk_id,
        "name": "sda",
        "type": "physical",
        "path": "/dev/disk/by-dname/sda",
        "id_path": f"/dev/disk/by-id/wwn-0x5000c500{m.id:08x}",
        "model": "SIMDISK",
        "serial": f"SIM{m.id:08d}",
        "size": DISK_SIZE,
        "block_size": 512,
        "available_size": DISK_SIZE,
        "used_size": 0,
        "used_for": "Unused",
        "tags": ["ssd"],
        "uuid": None,
        "partition_table_type": None,
        "partitions": [],
        "filesystem": None,
        "numa_node": 0,
        "system_id": m.system_id,
        "resource_uri": f"{API}/nodes/{m.system_id}/blockdevices/{disk_id}/",
    }


def _real_storage(m: Machine) -> dict[str, Any]:
    """The storage a deployed machine of a real region shows: a partitioned disk (an EFI and a
    root partition, each formatted and mounted), as MAAS's flat layout leaves it; about
    8.7 KB a machine with one interface, as a real region's listing."""
    disk = _disk(m) | {"partition_table_type": "GPT", "used_for": "GPT partitioned"}
    disk["partitions"] = [
        _partition(m, 1, 536_870_912, "fat32", "/boot/efi"),
        _partition(m, 2, DISK_SIZE - 537_919_488, "ext4", "/"),
    ]
    disk["used_size"] = DISK_SIZE
    disk["available_size"] = 0
    return {
        "blockdevice_set": [disk],
        "physicalblockdevice_set": [disk],
        "constraints_by_type": {},
        "macaddress_set": [{"mac_address": nic.mac} for nic in m.nics],
    }


def _partition(m: Machine, index: int, size: int, fstype: str, mount: str) -> dict[str, Any]:
    disk_id = m.id * 10 + 1
    part_id = disk_id * 10 + index
    return {
        "id": part_id,
        "uuid": f"{m.id:08x}-0000-4000-8000-{part_id:012x}",
        "size": size,
        "bootable": index == 1,
        "tags": [],
        "type": "partition",
        "path": f"/dev/disk/by-dname/sda-part{index}",
        "system_id": m.system_id,
        "device_id": disk_id,
        "used_for": f"{fstype} formatted filesystem mounted at {mount}",
        "filesystem": {
            "fstype": fstype,
            "label": "efi" if index == 1 else "root",
            "uuid": f"{m.id:08x}-1111-4000-8000-{part_id:012x}",
            "mount_point": mount,
            "mount_options": None,
        },
        "resource_uri": f"{API}/nodes/{m.system_id}/blockdevices/{disk_id}/partition/{part_id}",
    }
