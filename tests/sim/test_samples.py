"""The simulator's machine JSON has the shape of real MAAS machine JSON."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from maasflow.daemon.maas.models import Machine as DaemonMachine
from maasflow.sim import Simulator
from tests.shared_samples import ABSENT, SAMPLES

# Keys of the samples that released MAAS 2.x/3.x serializers no longer emit:
# `macaddress_set` is an API 1.0 field (facts §2.1, §8), `iscsiblockdevice_set` was removed
# from MAAS in 2021 (machine-commissioning.source.txt).
LEGACY = {"macaddress_set", "iscsiblockdevice_set"}
# Our own fixture in the shape of those samples, so the check runs without ../shared.
OWN_SHAPE = {
    "system_id",
    "hostname",
    "fqdn",
    "domain",
    "status",
    "status_name",
    "status_message",
    "status_action",
    "error_description",
    "owner",
    "locked",
    "zone",
    "pool",
    "power_state",
    "power_type",
    "architecture",
    "osystem",
    "distro_series",
    "ip_addresses",
    "interface_set",
    "boot_interface",
    "tag_names",
    "cpu_count",
    "memory",
    "resource_uri",
    "node_type",
    "node_type_name",
    "hardware_info",
    "commissioning_status",
    "testing_status",
    "storage",
}


async def machine_json(admin: httpx.AsyncClient) -> dict[str, Any]:
    listing = (await admin.get("machines/")).json()
    machine: dict[str, Any] = listing[0]
    return machine


async def test_machine_json_has_the_documented_fields(admin: httpx.AsyncClient) -> None:
    """Every field of facts §2.1 that automation reads is present."""
    assert set(await machine_json(admin)) >= OWN_SHAPE


async def test_nested_objects_have_their_fields(admin: httpx.AsyncClient) -> None:
    """zone, pool, domain, interfaces and links carry the fields MAAS gives them."""
    machine = await machine_json(admin)
    assert set(machine["zone"]) == {"id", "name", "description", "resource_uri"}
    assert machine["zone"]["resource_uri"] == "/MAAS/api/2.0/zones/default/"
    assert machine["pool"]["resource_uri"] == f"/MAAS/api/2.0/resourcepool/{machine['pool']['id']}/"
    assert {"id", "name", "ttl", "authoritative", "is_default", "resource_uri"} <= set(
        machine["domain"]
    )
    nic = machine["interface_set"][0]
    assert {"id", "name", "type", "mac_address", "enabled", "links", "vlan", "resource_uri"} <= set(
        nic
    )
    assert set(nic["links"][0]) == {"id", "mode", "subnet"}
    assert machine["boot_interface"]["mac_address"] == nic["mac_address"]
    assert machine["fqdn"] == f"{machine['hostname']}.{machine['domain']['name']}"


async def test_the_daemon_models_parse_it(admin: httpx.AsyncClient) -> None:
    """The daemon's lenient pydantic model reads every listed machine."""
    for raw in (await admin.get("machines/")).json():
        model = DaemonMachine.model_validate(raw)
        assert model.system_id == raw["system_id"]
        assert model.macs


@pytest.mark.parametrize(
    "sample", ["machine-ready.json", "machine-deployed.json", "machine-commissioning.json"]
)
async def test_every_top_level_key_of_the_real_samples(
    admin: httpx.AsyncClient, sim: Simulator, sample: str
) -> None:
    """The simulator emits every top-level key of the real MAAS samples (bar legacy ones)."""
    path = SAMPLES / sample
    if not path.exists():
        pytest.skip(ABSENT)
    real = set(json.loads(path.read_text()))
    ours = set(await machine_json(admin))
    allocated = (await admin.post("machines/", data={"op": "allocate"})).json()
    ours |= set(allocated)  # constraints_by_type is only part of allocate answers
    assert real - LEGACY - ours == set()
