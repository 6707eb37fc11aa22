"""Canonical's own client, python-libmaas, drives the simulator as it drives MAAS.

libmaas builds its whole client from `describe/`, signs with OAuth PLAINTEXT, sends every
POST/PUT as multipart (ops without parameters as one nameless part) and parses machines
into typed objects, so these tests check the simulator against an implementation that is
not ours. They use libmaas's async API (`maas.client.connect` and `viscera.Origin`,
awaited on pytest's loop): its synchronous facade calls `asyncio.get_event_loop()` outside
a running loop, which newer Pythons refuse. Allocation by system_id goes through the
`bones` session (libmaas's allocate() only takes constraints such as a hostname).
libmaas 0.6.8 imports and runs on Python 3.11 with the aiohttp pip picks: no workaround.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus

import pytest
from maas.client import connect
from maas.client.bones import CallError
from maas.client.enum import NodeStatus, PowerState
from maas.client.errors import OperationNotAllowed
from maas.client.viscera import Origin
from maas.client.viscera.machines import MachineNotFound

from maasflow.sim import Simulator

Wait = Callable[..., Awaitable[None]]


@pytest.fixture
async def origin(sim: Simulator) -> AsyncIterator[Origin]:
    """A libmaas viscera origin connected to the simulator with the admin key."""
    _, connected = await Origin.connect(sim.url, apikey=sim.admin_key)
    yield connected


def sid(sim: Simulator, hostname: str) -> str:
    return sim.find(hostname).system_id


async def test_connect_and_list_machines(sim: Simulator) -> None:
    """maas.client.connect reads describe/ and lists every machine in MAAS's order."""
    client = await connect(sim.url, apikey=sim.admin_key)
    machines = await client.machines.list()
    assert [m.system_id for m in machines] == list(sim.machines)
    assert [m.hostname for m in machines] == [m.hostname for m in sim.machines.values()]


async def test_every_field_maasflow_reads_parses(origin: Origin, sim: Simulator) -> None:
    """libmaas's Machine shows the fields maasflow reads with the simulator's values."""
    live = sim.find("node-09")  # Deployed, locked, owned, with addresses
    machine = await origin.Machine.read(live.system_id)
    raw = await origin.session.Machine.read(system_id=live.system_id)
    assert (machine.system_id, machine.hostname, machine.fqdn) == (
        live.system_id,
        live.hostname,
        live.fqdn,
    )
    assert (machine.status, machine.status_name) == (NodeStatus.DEPLOYED, "Deployed")
    assert machine.status_message == live.status_message
    assert raw["error_description"] == live.error_description
    assert (machine.owner.username, machine.locked) == (live.owner, True)
    assert (machine.zone.name, machine.pool.name, machine.domain.name) == (
        "default",
        "default",
        "maas",
    )
    assert (machine.power_state, machine.power_type) == (PowerState.ON, "ipmi")
    assert [tag.name for tag in machine.tags] == live.tags
    assert machine.ip_addresses == live.ip_addresses
    assert machine.distro_series == live.distro_series == "jammy"


async def test_interfaces_links_and_boot_interface_parse(origin: Origin, sim: Simulator) -> None:
    """Interfaces, their links (mode, address, subnet) and the boot MAC come through."""
    live = sim.find("node-09")
    machine = await origin.Machine.read(live.system_id)
    nic = live.nics[0]
    (interface,) = list(machine.interfaces)
    assert (interface.name, interface.mac_address, interface.type.value) == (
        nic.name,
        nic.mac,
        "physical",
    )
    (link,) = list(interface.links)
    assert (link.mode.value, link.ip_address, link.subnet.cidr) == (
        "auto",
        nic.ip,
        nic.subnet.cidr,
    )
    assert machine.boot_interface.mac_address == nic.mac


async def test_unowned_machine_has_no_owner(origin: Origin, sim: Simulator) -> None:
    """A New machine reads as unowned, unlocked, powered as the simulator says."""
    machine = await origin.Machine.read(sid(sim, "node-02"))
    assert (machine.owner, machine.locked, machine.status) == (None, False, NodeStatus.NEW)
    assert machine.power_state == PowerState.OFF


async def test_lifecycle_commission_allocate_deploy_power_off_release(
    origin: Origin, sim: Simulator, wait_until: Wait
) -> None:
    """Commission, allocate by system_id, deploy jammy, power off and release, each once."""
    target = sid(sim, "node-02")
    live = sim.machines[target]
    machine = await origin.Machine.read(target)
    machine = await machine.commission()
    assert machine.status == NodeStatus.COMMISSIONING
    await wait_until(lambda: live.status_name == "Ready")
    allocated = origin.Machine(await origin.session.Machines.allocate(system_id=target))
    assert (allocated.status, allocated.owner.username) == (NodeStatus.ALLOCATED, "admin")
    deploying = await allocated.deploy(distro_series="jammy")
    assert deploying.status == NodeStatus.DEPLOYING
    await wait_until(lambda: live.status_name == "Deployed")
    deployed = await origin.Machine.read(target)
    assert (deployed.osystem, deployed.distro_series) == ("ubuntu", "jammy")
    assert deployed.ip_addresses == live.ip_addresses != []
    await deployed.power_off()
    await wait_until(lambda: live.power_state == "off")
    released = await deployed.release()
    assert released.status in (NodeStatus.RELEASING, NodeStatus.READY)
    await wait_until(lambda: live.status_name == "Ready")
    writes = [r.action for r in sim.request_log.for_machine(target) if r.method != "GET"]
    assert writes == ["commission", "allocate", "deploy", "power_off", "release"]


async def test_rename_is_one_put(origin: Origin, sim: Simulator) -> None:
    """Setting hostname and saving sends one PUT that renames the machine."""
    target = sid(sim, "node-05")
    machine = await origin.Machine.read(target)
    machine.hostname = "rack1-node05"
    await machine.save()
    assert machine.hostname == "rack1-node05"
    assert sim.machines[target].hostname == "rack1-node05"
    writes = [(r.method, r.action) for r in sim.request_log.writes()]
    assert writes == [("PUT", "update")]


async def test_set_power_checks_parameters(origin: Origin, sim: Simulator) -> None:
    """set_power with a valid webhook set is stored; an unknown parameter is a 400."""
    machine = await origin.Machine.read(sid(sim, "node-03"))
    uris = {f"power_{x}_uri": f"http://127.0.0.1:9/{x}" for x in ("on", "off", "query")}
    await machine.set_power("webhook", uris)
    assert sim.find("node-03").power_type == "webhook"
    with pytest.raises(CallError) as refused:
        await machine.set_power("webhook", {**uris, "colour": "blue"})
    assert refused.value.status == HTTPStatus.BAD_REQUEST


async def test_events_query_parses(origin: Origin, sim: Simulator) -> None:
    """Events for one machine parse, newest first, with MAAS's timestamp format."""
    target = sid(sim, "node-01")
    await (await origin.Machine.read(target)).commission()
    events = await origin.Events.query(system_ids=[target], level="DEBUG")
    types = [event.event_type for event in events]
    assert "User starting node commissioning" in types
    ids = [event.event_id for event in events]
    assert ids == sorted(ids, reverse=True)
    assert all(event.system_id == target and event.created.tzinfo for event in events)


async def test_zones_pools_and_tags(origin: Origin, sim: Simulator) -> None:
    """Zones, resource pools and tags list and read by name."""
    zones = await origin.Zones.read()
    assert [zone.name for zone in zones] == ["default", "lab-b"]
    assert (await origin.Zone.read("lab-b")).name == "lab-b"
    pools = await origin.ResourcePools.read()
    assert [(pool.id, pool.name) for pool in pools] == [(0, "default")]
    tags = await origin.Tags.read()
    assert [tag.name for tag in tags] == ["demo"]
    assert (await origin.Tag.read("demo")).definition == ""


async def test_whoami_and_version(origin: Origin, sim: Simulator) -> None:
    """users.whoami names the admin; version reads MAAS's version and capabilities."""
    me = await origin.Users.whoami()
    assert (me.username, me.is_admin) == (sim.admin_username, True)
    version = await origin.Version.read()
    assert version.version == sim.config.maas_version
    assert "authenticate-api" in version.capabilities


async def test_refusals_surface_as_libmaas_errors(origin: Origin, sim: Simulator) -> None:
    """A locked machine's power_off is OperationNotAllowed; no match to allocate is 409."""
    locked = await origin.Machine.read(sid(sim, "node-09"))
    with pytest.raises(OperationNotAllowed):
        await locked.power_off()
    with pytest.raises(MachineNotFound):
        await origin.Machines.allocate(hostname="no-such-host")


async def test_a_key_the_region_does_not_know_is_refused(sim: Simulator) -> None:
    """connect needs no key (describe/ is anonymous); the first call with a bad key is 401."""
    _, stranger = await Origin.connect(sim.url, apikey="nobody12345678901:token12345678901:secret")
    with pytest.raises(CallError) as refused:
        await stranger.Machines.read()
    assert refused.value.status == HTTPStatus.UNAUTHORIZED
