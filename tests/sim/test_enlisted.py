"""Machines that already run: `deployed=true` creation, release to New, erase, power, images.

Written from the facts (§3.7, §3.9, §10.1) and MAAS 3.6's source where they are silent:
`Node._finalize_release` (New without passed commissioning), `ReleaseForm.clean` (3.5+: any
erase flag erases) and the 3.4 behaviour the facts recorded (quick_erase alone does not).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from maasflow.sim import MachineSpec, SimConfig, Simulator, serve_simulator
from tests.sim.helpers import FAST, api_client

Wait = Callable[..., Awaitable[None]]
MAC = "52:54:00:aa:bb:01"


@pytest.fixture
def config() -> SimConfig:
    machines = [
        MachineSpec("busy", status=6, owner="admin", power_state="on"),
        MachineSpec("spare", status=4),
    ]
    return SimConfig(seed=11, time_factor=FAST, machines=machines)


async def enlist(admin: httpx.AsyncClient, **extra: str) -> httpx.Response:
    data = {"deployed": "true", "hostname": "legacy", "mac_addresses": MAC} | extra
    return await admin.post("machines/", data=data)


async def op(client: httpx.AsyncClient, system_id: str, name: str, **data: str) -> dict[str, Any]:
    response = await client.post(f"machines/{system_id}/", params={"op": name}, data=data)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_deployed_creation_is_as_maas_records_it(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """deployed=true: Deployed, owned by the caller, no power type, power unknown, no IP."""
    response = await enlist(admin)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status_name"], body["owner"], body["power_type"]) == ("Deployed", "admin", "")
    assert (body["power_state"], body["ip_addresses"]) == ("unknown", [])
    assert body["current_commissioning_result_id"] is None
    assert sim.machines[body["system_id"]].status == 6


async def test_deployed_creation_twice_is_refused_and_the_mac_finds_the_first(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """A second deployed=true create for the same hostname and MAC is 400 and adds nothing."""
    first = (await enlist(admin)).json()
    again = await enlist(admin)
    assert again.status_code == 400
    assert set(again.json()) == {"hostname", "mac_addresses"}
    found = await admin.get("machines/", params={"mac_address": MAC})
    assert [m["system_id"] for m in found.json()] == [first["system_id"]]
    assert len(sim.machines) == 3


async def test_a_non_admin_cannot_record_a_deployed_machine(user: httpx.AsyncClient) -> None:
    """Only admins have the deployed field: a user's create is 403."""
    response = await user.post("machines/", data={"deployed": "true", "hostname": "nope"})
    assert response.status_code == 403


async def test_maas_3_0_ignores_deployed_and_commissions() -> None:
    """Before 3.1 `deployed` is no field of the form: the machine is commissioned instead."""
    config = SimConfig(seed=3, time_factor=FAST, maas_version="3.0.2")
    async with serve_simulator(config) as sim, api_client(sim, sim.admin_key) as admin:
        bare = await admin.post("machines/", data={"deployed": "true", "hostname": "old"})
        assert bare.status_code == 400  # architecture and MACs are required again
        response = await enlist(admin, architecture="amd64/generic")
        assert response.json()["status_name"] == "Commissioning"


async def test_releasing_an_enlisted_machine_sends_it_to_new(
    admin: httpx.AsyncClient, sim: Simulator, wait_until: Wait
) -> None:
    """Release of a machine that never passed commissioning ends in New, owner cleared."""
    system_id = (await enlist(admin)).json()["system_id"]
    assert (await op(admin, system_id, "release"))["status_name"] == "Releasing"
    machine = sim.machines[system_id]
    await wait_until(lambda: machine.status == 0)
    assert machine.owner is None


async def test_releasing_a_commissioned_machine_sends_it_to_ready(
    admin: httpx.AsyncClient, sim: Simulator, wait_until: Wait
) -> None:
    """Release of a machine with passed commissioning ends in Ready."""
    machine = sim.find("busy")
    await op(admin, machine.system_id, "release")
    await wait_until(lambda: machine.status == 4)


async def test_erase_goes_through_disk_erasing_then_new_for_an_enlisted_machine(
    admin: httpx.AsyncClient, sim: Simulator, wait_until: Wait
) -> None:
    """erase=true with quick_erase: Disk erasing (owner kept), then New (never commissioned)."""
    system_id = (await enlist(admin)).json()["system_id"]
    body = await op(admin, system_id, "release", erase="true", quick_erase="true")
    assert (body["status_name"], body["owner"]) == ("Disk erasing", "admin")
    machine = sim.machines[system_id]
    await wait_until(lambda: machine.status == 0 and machine.power_state == "off")


@pytest.mark.parametrize(
    ("version", "first_status"), [("3.4.10", "Releasing"), ("3.6.1", "Disk erasing")]
)
async def test_quick_erase_alone_erases_only_from_3_5(version: str, first_status: str) -> None:
    """quick_erase without erase: 3.4 releases with no erase, 3.5+ erases (release scripts)."""
    spec = MachineSpec("busy", status=6, owner="admin")
    config = SimConfig(seed=3, time_factor=FAST, maas_version=version, machines=[spec])
    async with serve_simulator(config) as sim, api_client(sim, sim.admin_key) as admin:
        body = await op(admin, sim.find("busy").system_id, "release", quick_erase="true")
        assert body["status_name"] == first_status


async def test_power_off_and_on_change_a_deployed_machines_power(
    admin: httpx.AsyncClient, sim: Simulator, wait_until: Wait
) -> None:
    """power_off then power_on of a Deployed machine change its power state, status kept."""
    machine = sim.find("busy")
    await op(admin, machine.system_id, "power_off", stop_mode="soft")
    await wait_until(lambda: machine.power_state == "off")
    await op(admin, machine.system_id, "power_on")
    await wait_until(lambda: machine.power_state == "on")
    assert machine.status == 6


async def test_deploy_takes_a_synced_non_ubuntu_image(
    admin: httpx.AsyncClient, sim: Simulator, wait_until: Wait
) -> None:
    """distro_series centos/centos70 deploys CentOS; an image MAAS lacks is 400 naming choices."""
    machine = sim.find("spare")
    refused = await admin.post(
        f"machines/{machine.system_id}/",
        params={"op": "deploy"},
        data={"distro_series": "centos/centos6"},
    )
    assert refused.status_code == 400
    assert "'centos/centos70'" in refused.json()["distro_series"][0]
    await op(admin, machine.system_id, "deploy", distro_series="centos/centos70")
    await wait_until(lambda: machine.status == 6)
    assert (machine.osystem, machine.distro_series) == ("centos", "centos70")
