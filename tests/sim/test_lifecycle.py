"""Machines move through MAAS's lifecycle on their own, reproducibly (facts §3)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from maasflow.sim import MachineSpec, SimConfig, Simulator, generate_machines, serve_simulator
from tests.sim.helpers import FAST, api_client

Wait = Callable[..., Awaitable[None]]
DOC_RANGES = [
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
]


@pytest.fixture
def config() -> SimConfig:
    machines = [
        MachineSpec("fresh", power_state="on"),
        MachineSpec("doomed", commission_outcome="fail"),
        MachineSpec("flaky", commission_outcome="fail_testing"),
        MachineSpec("spare", status=4),
        MachineSpec("crashy", status=4, deploy_outcome="fail"),
        MachineSpec("busy", status=6, owner="admin", power_state="on"),
    ]
    return SimConfig(seed=5, time_factor=FAST, machines=machines)


def transitions(sim: Simulator, hostname: str) -> list[str]:
    """The "From 'X' to 'Y'" descriptions of a machine's status changes, oldest first."""
    system_id = sim.find(hostname).system_id
    return [
        e.description for e in sim.events.for_node(system_id) if e.type == "Node changed status"
    ]


async def op(
    client: httpx.AsyncClient, sim: Simulator, hostname: str, name: str, **data: str
) -> dict[str, Any]:
    response = await client.post(
        f"machines/{sim.find(hostname).system_id}/", params={"op": name}, data=data
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_commission_walks_to_ready(
    admin: httpx.AsyncClient, sim: Simulator, wait_until: Wait
) -> None:
    """Commission: Commissioning (owner = caller) → Testing → Ready, owner cleared, power off."""
    body = await op(admin, sim, "fresh", "commission")
    assert (body["status_name"], body["owner"]) == ("Commissioning", "admin")
    machine = sim.find("fresh")
    await wait_until(lambda: machine.status == 4 and machine.power_state == "off")
    assert machine.owner is None
    assert transitions(sim, "fresh") == [
        "From 'New' to 'Commissioning'",
        "From 'Commissioning' to 'Testing'",
        "From 'Testing' to 'Ready'",
    ]
    assert machine.status_message is not None


async def test_forced_commission_failure(
    admin: httpx.AsyncClient, sim: Simulator, wait_until: Wait
) -> None:
    """A machine whose commissioning always fails ends in Failed commissioning, powered off."""
    await op(admin, sim, "doomed", "commission")
    machine = sim.find("doomed")
    await wait_until(lambda: machine.status == 2 and machine.power_state == "off")
    listed = (await admin.get(f"machines/{machine.system_id}/")).json()
    assert listed["status_name"] == "Failed commissioning"
    assert listed["commissioning_status_name"] == "Failed"
    assert listed["error_description"] == "Commissioning failed"


async def test_forced_testing_failure(
    admin: httpx.AsyncClient, sim: Simulator, wait_until: Wait
) -> None:
    """commission_outcome="fail_testing" passes commissioning and fails testing (22)."""
    await op(admin, sim, "flaky", "commission")
    machine = sim.find("flaky")
    await wait_until(lambda: machine.status == 22)
    assert transitions(sim, "flaky")[-1] == "From 'Testing' to 'Failed testing'"


async def test_deploy_from_ready_allocates_then_deploys(
    admin: httpx.AsyncClient, sim: Simulator, wait_until: Wait
) -> None:
    """Deploy from Ready: Allocated → Deploying (power on) → Deployed with documentation IPs."""
    body = await op(
        admin,
        sim,
        "spare",
        "deploy",
        distro_series="ubuntu/noble",
        user_data="I2Nsb3VkLWNvbmZpZw==",
    )
    assert body["status_name"] == "Deploying"
    machine = sim.find("spare")
    await wait_until(lambda: machine.status == 6)
    listed = (await admin.get(f"machines/{machine.system_id}/")).json()
    assert (listed["osystem"], listed["distro_series"], listed["power_state"]) == (
        "ubuntu",
        "noble",
        "on",
    )
    address = ipaddress.ip_address(listed["ip_addresses"][0])
    assert any(address in network for network in DOC_RANGES)
    assert listed["interface_set"][0]["links"][0]["ip_address"] == str(address)
    assert transitions(sim, "spare") == [
        "From 'Ready' to 'Allocated' (to admin)",  # MAAS names the owner
        "From 'Allocated' to 'Deploying'",
        "From 'Deploying' to 'Deployed'",
    ]
    assert machine.user_data == "I2Nsb3VkLWNvbmZpZw=="


async def test_unknown_distro_series_is_400(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """A series MAAS does not know is a 400 field error and nothing changes."""
    response = await admin.post(
        f"machines/{sim.find('spare').system_id}/",
        params={"op": "deploy"},
        data={"distro_series": "windows95"},
    )
    assert response.status_code == 400
    assert "distro_series" in response.json()
    assert sim.find("spare").status == 4


async def test_forced_deploy_failure(
    admin: httpx.AsyncClient, sim: Simulator, wait_until: Wait
) -> None:
    """deploy_outcome="fail" ends in Failed deployment (11)."""
    await op(admin, sim, "crashy", "deploy")
    machine = sim.find("crashy")
    await wait_until(lambda: machine.status == 11)
    assert machine.error_description == "Installation failed"


async def test_release_returns_to_ready(
    admin: httpx.AsyncClient, sim: Simulator, wait_until: Wait
) -> None:
    """Release: Releasing (power off) → Ready, owner and addresses cleared."""
    body = await op(admin, sim, "busy", "release")
    assert body["status_name"] == "Releasing"
    machine = sim.find("busy")
    await wait_until(lambda: machine.status == 4)
    assert (machine.owner, machine.ip_addresses, machine.power_state) == (None, [], "off")
    assert machine.distro_series == ""


async def test_release_with_erase_goes_through_disk_erasing(
    admin: httpx.AsyncClient, sim: Simulator, wait_until: Wait
) -> None:
    """Any erase flag makes release go through Disk erasing before Ready."""
    body = await op(admin, sim, "busy", "release", quick_erase="true")
    assert body["status_name"] == "Disk erasing"
    machine = sim.find("busy")
    await wait_until(lambda: machine.status == 4 and machine.power_state == "off")
    assert transitions(sim, "busy")[-1] == "From 'Disk erasing' to 'Ready'"


async def test_bad_erase_flag_is_400(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """A non-boolean erase value is refused and the machine stays Deployed."""
    response = await admin.post(
        f"machines/{sim.find('busy').system_id}/", params={"op": "release"}, data={"erase": "maybe"}
    )
    assert response.status_code == 400
    assert sim.find("busy").status == 6


async def test_allocate_sets_owner_and_answers_constraints(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """Allocate takes a Ready machine by name: Allocated, owner = caller."""
    response = await admin.post("machines/", data={"op": "allocate", "name": "spare"})
    body = response.json()
    assert (body["hostname"], body["status_name"], body["owner"]) == ("spare", "Allocated", "admin")
    assert body["constraints_by_type"] == {}


async def test_allocate_dry_run_changes_nothing(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """dry_run=true answers the pick but leaves it Ready."""
    response = await admin.post("machines/", data={"op": "allocate", "dry_run": "true"})
    assert response.json()["status"] == 4
    assert all(m.status != 10 for m in sim.machines.values())


async def test_allocate_without_match_is_409_with_constraints(admin: httpx.AsyncClient) -> None:
    """No match answers 409 text with the constraints as MAAS renders them."""
    response = await admin.post("machines/", data={"op": "allocate", "name": "fresh"})
    assert response.status_code == 409
    assert response.text == (
        "No available machine matches constraints: [('name', ['fresh'])] "
        '(resolved to "name=fresh")'
    )


async def test_allocate_unknown_constraint_is_400(admin: httpx.AsyncClient) -> None:
    """An unknown allocation constraint is a 400 field error."""
    response = await admin.post("machines/", data={"op": "allocate", "flavour": "large"})
    assert (response.status_code, response.json()) == (400, {"flavour": ["No such constraint."]})


async def test_abort_deploying_goes_back_to_allocated(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """Aborting a deployment lands in Allocated and frees the addresses."""
    slow = SimConfig(seed=1, time_factor=10.0, machines=[MachineSpec("slow", status=4)])
    async with serve_simulator(slow) as other, api_client(other, other.admin_key) as client:
        await op(client, other, "slow", "deploy")
        aborted = await op(client, other, "slow", "abort")
        assert aborted["status_name"] == "Allocated"
        assert other.find("slow").ip_addresses == []


async def test_phases_take_their_scaled_time() -> None:
    """At time_factor 10 a commissioning is still running right after it started."""
    slow = SimConfig(seed=1, time_factor=10.0, machines=[MachineSpec("slow")])
    async with serve_simulator(slow) as other, api_client(other, other.admin_key) as client:
        await op(client, other, "slow", "commission")
        assert other.find("slow").status == 1
        assert other.lifecycle.busy(other.find("slow"))


async def test_mark_broken_then_fixed(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """mark_broken stores the comment as error_description; mark_fixed makes it Ready."""
    broken = await op(admin, sim, "spare", "mark_broken", comment="fan died")
    assert (broken["status_name"], broken["error_description"]) == ("Broken", "fan died")
    fixed = await op(admin, sim, "spare", "mark_fixed")
    assert (fixed["status_name"], fixed["error_description"]) == ("Ready", "")


async def test_power_on_and_off_ops(
    admin: httpx.AsyncClient, sim: Simulator, wait_until: Wait
) -> None:
    """power_off turns a deployed machine off after a moment; power_on brings it back."""
    machine = sim.find("busy")
    await op(admin, sim, "busy", "power_off", stop_mode="soft")
    await wait_until(lambda: machine.power_state == "off")
    await op(admin, sim, "busy", "power_on")
    await wait_until(lambda: machine.power_state == "on")
    kinds = [e.type for e in sim.events.for_node(machine.system_id)]
    assert "User powering down node" in kinds
    assert "User powering up node" in kinds
    assert "Node powered on" not in kinds  # MAAS 3.6 (the default) writes none


async def run_with_rate(seed: int) -> set[str]:
    """Commission 20 machines at a 50 % failure rate; return the hostnames that failed."""
    config = SimConfig(
        seed=seed, time_factor=FAST, machines=generate_machines(20, seed), commission_fail_rate=0.5
    )
    async with serve_simulator(config) as sim, api_client(sim, sim.admin_key) as client:
        for system_id in list(sim.machines):
            await client.post(f"machines/{system_id}/", params={"op": "commission"})
        settled = {2, 4, 22}
        deadline = asyncio.get_running_loop().time() + 10
        while not all(m.status in settled for m in sim.machines.values()):
            assert asyncio.get_running_loop().time() < deadline, "machines did not settle"
            await asyncio.sleep(0.005)
        return {m.hostname for m in sim.machines.values() if m.status == 2}


async def test_failure_rate_is_seeded_and_reproducible() -> None:
    """The same seed fails the same machines; the rate really fails some and passes some."""
    first = await run_with_rate(11)
    again = await run_with_rate(11)
    assert first == again
    assert 0 < len(first) < 20
