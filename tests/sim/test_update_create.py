"""PUT update (hostname rules, power parameters), create and delete (facts §3.8, §3.9)."""

from __future__ import annotations

import httpx
import pytest

from maasflow.sim import MachineSpec, SimConfig, Simulator
from tests.sim.helpers import FAST

WEBHOOK = {
    "power_type": "webhook",
    "power_parameters_power_on_uri": "http://127.0.0.1:9/on",
    "power_parameters_power_off_uri": "http://127.0.0.1:9/off",
    "power_parameters_power_query_uri": "http://127.0.0.1:9/q",
    "power_parameters_power_token": "t0k3n",
}


@pytest.fixture
def config() -> SimConfig:
    machines = [
        MachineSpec("first"),
        MachineSpec("second"),
        MachineSpec("held", status=6, owner="admin", locked=True),
    ]
    return SimConfig(seed=4, time_factor=FAST, machines=machines, domains=["maas", "lab.example"])


def first(sim: Simulator) -> str:
    return sim.find("first").system_id


async def test_put_multipart_renames(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """A multipart PUT (what MAAS's client sends) changes the hostname and FQDN."""
    response = await admin.put(f"machines/{first(sim)}/", files={"hostname": (None, "renamed")})
    assert response.status_code == 200
    assert (response.json()["hostname"], response.json()["fqdn"]) == ("renamed", "renamed.maas")


async def test_put_urlencoded_renames(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """An application/x-www-form-urlencoded PUT works the same."""
    response = await admin.put(f"machines/{first(sim)}/", data={"hostname": "plain"})
    assert response.json()["hostname"] == "plain"


async def test_put_fqdn_with_known_domain_moves_domain(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """A dotted hostname is an FQDN: its domain becomes the machine's domain."""
    response = await admin.put(f"machines/{first(sim)}/", data={"hostname": "web1.lab.example"})
    body = response.json()
    assert (body["hostname"], body["domain"]["name"], body["fqdn"]) == (
        "web1",
        "lab.example",
        "web1.lab.example",
    )


@pytest.mark.parametrize(
    ("hostname", "message"),
    [
        ("second", "Node with this Hostname already exists."),
        ("bad_name", "Host label cannot contain underscore: 'bad_name'."),
        ("web1.nowhere.example", "Nonexistant domain."),
        ("-dash", "Label cannot start or end with hyphen: '-dash'."),
        ("sp ace", "Label contains disallowed characters: 'sp ace'."),
        ("a" * 64, f"Label is too long: '{'a' * 64}'.  Maximum allowed is 63 characters."),
        ("x" * 256, "Hostname is too long.  Maximum allowed is 255 characters."),
    ],
)
async def test_put_bad_hostname_is_400_and_changes_nothing(
    admin: httpx.AsyncClient, sim: Simulator, hostname: str, message: str
) -> None:
    """Hostname rules answer 400 {"hostname": [...]} and leave the machine as it was."""
    response = await admin.put(f"machines/{first(sim)}/", data={"hostname": hostname})
    assert response.status_code == 400
    assert response.json() == {"hostname": [message]}
    assert sim.find("first").hostname == "first"


async def test_put_webhook_power_parameters(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """power_type plus power_parameters_* set the machine's power configuration."""
    response = await admin.put(f"machines/{first(sim)}/", data=WEBHOOK)
    assert response.json()["power_type"] == "webhook"
    params = (await admin.get(f"machines/{first(sim)}/", params={"op": "power_parameters"})).json()
    assert params["power_on_uri"] == "http://127.0.0.1:9/on"
    assert params["power_token"] == "t0k3n"


async def test_put_power_parameters_merge_when_type_unchanged(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """Changing one parameter keeps the others while the power type stays the same."""
    await admin.put(f"machines/{first(sim)}/", data=WEBHOOK)
    await admin.put(f"machines/{first(sim)}/", data={"power_parameters_power_user": "u"})
    params = sim.find("first").power_parameters
    assert params["power_user"] == "u"
    assert params["power_token"] == "t0k3n"


async def test_put_unknown_power_type_is_400(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """A power type MAAS does not have is refused."""
    response = await admin.put(f"machines/{first(sim)}/", data={"power_type": "telepathy"})
    assert response.status_code == 400
    assert "power_type" in response.json()


async def test_put_is_admin_only(user: httpx.AsyncClient, sim: Simulator) -> None:
    """A non-admin PUT answers 403."""
    response = await user.put(f"machines/{first(sim)}/", data={"hostname": "mine"})
    assert response.status_code == 403


async def test_admin_put_on_a_locked_machine_is_403_with_an_empty_body(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """MAAS's admin permission includes "not locked": even an admin's PUT is refused."""
    response = await admin.put(f"machines/{sim.find('held').system_id}/", data={"hostname": "x"})
    assert (response.status_code, response.text) == (403, "")
    assert sim.find("held").locked


async def test_create_deployed_machine(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """POST machines/ with deployed=true stores a Deployed machine owned by the caller."""
    response = await admin.post("machines/", data={"deployed": "true", "hostname": "legacy"})
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["status_name"], body["owner"]) == (6, "Deployed", "admin")
    assert sim.machines[body["system_id"]].status == 6


async def test_create_commissions_by_default(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """An admin-created machine starts commissioning unless commission=false."""
    commissioning = await admin.post(
        "machines/",
        data={"architecture": "amd64/generic", "mac_addresses": "52:54:00:aa:bb:01"},
    )
    assert commissioning.json()["status_name"] == "Commissioning"
    new = await admin.post(
        "machines/",
        data={
            "architecture": "amd64",
            "mac_addresses": "52:54:00:aa:bb:02",
            "commission": "false",
            "power_type": "manual",
        },
    )
    assert new.json()["status_name"] == "New"
    assert new.json()["interface_set"][0]["mac_address"] == "52:54:00:aa:bb:02"


async def test_create_without_architecture_or_macs_is_400(admin: httpx.AsyncClient) -> None:
    """A normal creation needs architecture and MAC addresses."""
    response = await admin.post("machines/", data={"power_type": "virsh"})
    assert response.status_code == 400
    assert response.json() == {
        "architecture": ["This field is required."],
        "mac_addresses": ["This field is required."],
        "power_parameters": ["This field is required."],
    }


async def test_create_is_admin_only(user: httpx.AsyncClient) -> None:
    """A non-admin cannot create machines through the simulator."""
    response = await user.post("machines/", data={"deployed": "true"})
    assert response.status_code == 403


async def test_delete_is_204_and_removes(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """DELETE answers 204 with no body; the machine is then a 404."""
    target = first(sim)
    response = await admin.delete(f"machines/{target}/")
    assert (response.status_code, response.content) == (204, b"")
    assert target not in sim.machines
    assert (await admin.get(f"machines/{target}/")).status_code == 404


async def test_anonymous_post_enlists_a_new_machine(
    anonymous: httpx.AsyncClient, sim: Simulator
) -> None:
    """Without a key, POST machines/ is enlistment: a New, unowned machine, no commissioning."""
    response = await anonymous.post(
        "machines/", data={"architecture": "amd64/generic", "mac_addresses": "52:54:00:aa:bb:03"}
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["status_name"], body["owner"]) == ("New", None)
    assert sim.machines[body["system_id"]].status == 0


async def test_duplicate_mac_is_refused(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """A MAC already on another machine cannot be registered again."""
    taken = sim.find("first").macs[0]
    response = await admin.post(
        "machines/", data={"architecture": "amd64/generic", "mac_addresses": taken}
    )
    assert response.status_code == 400
    assert response.json() == {"mac_addresses": [f"MAC address {taken} already in use."]}
