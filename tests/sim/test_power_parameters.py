"""PUT and create check power_parameters_* against the power type's fields, as MAAS does."""

from __future__ import annotations

import httpx
import pytest

from maasflow.sim import MachineSpec, SimConfig, Simulator
from maasflow.sim.powertypes import FIELDS
from tests.sim.helpers import FAST

URIS = {
    "power_parameters_power_on_uri": "http://127.0.0.1:9/on",
    "power_parameters_power_off_uri": "http://127.0.0.1:9/off",
    "power_parameters_power_query_uri": "http://127.0.0.1:9/q",
}


@pytest.fixture
def config() -> SimConfig:
    machines = [
        MachineSpec("bmc"),  # ipmi, given a BMC address by the simulator
        MachineSpec("dark", power_type=""),
        MachineSpec("half", power_parameters={"power_user": "only"}),
        MachineSpec("hand", power_type="manual"),
    ]
    return SimConfig(seed=5, time_factor=FAST, machines=machines)


async def put(client: httpx.AsyncClient, sim: Simulator, host: str, **data: str) -> httpx.Response:
    return await client.put(f"machines/{sim.find(host).system_id}/", data=data)


async def test_unknown_parameter_is_400(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """A name that is no field of the power type: 400 "Unknown parameter(s)", nothing stored."""
    before = dict(sim.find("hand").power_parameters)
    response = await put(admin, sim, "hand", power_parameters_colour="blue")
    assert response.status_code == 400
    assert response.json() == {"power_parameters": ["Unknown parameter(s): colour."]}
    assert sim.find("hand").power_parameters == before


async def test_missing_required_field_is_400_with_its_label(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """Webhook without power_query_uri: 400 naming the field by MAAS's label."""
    partial = {k: v for k, v in URIS.items() if not k.endswith("query_uri")}
    response = await put(admin, sim, "dark", power_type="webhook", **partial)
    assert response.status_code == 400
    assert response.json() == {
        "power_parameters": ["URI to query the nodes power status: This field is required."]
    }
    assert sim.find("dark").power_type == ""


async def test_type_with_required_fields_and_no_values_is_400(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """Switching to virsh with no parameters at all is 400 "This field is required."."""
    response = await put(admin, sim, "dark", power_type="virsh")
    assert response.json() == {"power_parameters": ["This field is required."]}


async def test_value_outside_a_choice_is_400(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """power_verify_ssl must be n or y: anything else is MAAS's invalid-choice sentence."""
    response = await put(
        admin, sim, "dark", power_type="webhook", power_parameters_power_verify_ssl="maybe", **URIS
    )
    assert response.json() == {
        "power_parameters": [
            "Verify SSL connections with system CA certificates: 'maybe' is not a valid "
            "power_verify_ssl.  It should be one of: 'n', 'y'."
        ]
    }


async def test_valid_webhook_is_stored_with_defaults_filled(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """A valid set is stored with every field of the type, defaults for the ones not given."""
    response = await put(admin, sim, "dark", power_type="webhook", **URIS)
    assert response.status_code == 200
    stored = sim.find("dark").power_parameters
    assert set(stored) == {field.name for field in FIELDS["webhook"]}
    assert stored["power_query_uri"] == "http://127.0.0.1:9/q"
    assert (stored["power_on_regex"], stored["power_verify_ssl"]) == (
        r"status.*\:.*running",
        "n",
    )


async def test_skip_check_stores_anything(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """power_parameters_skip_check=true stores the parameters unchecked."""
    response = await put(
        admin,
        sim,
        "hand",
        power_parameters_colour="blue",
        power_parameters_skip_check="true",
    )
    assert response.status_code == 200
    assert sim.find("hand").power_parameters == {"colour": "blue"}


async def test_rename_keeps_stored_parameters_valid(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """A hostname-only PUT on an IPMI machine passes: its stored BMC address is carried over."""
    address = sim.find("bmc").power_parameters["power_address"]
    response = await put(admin, sim, "bmc", hostname="bmc-renamed")
    assert response.status_code == 200
    stored = sim.find("bmc-renamed").power_parameters
    assert (stored["power_address"], stored["power_driver"]) == (address, "LAN_2_0")


async def test_rename_with_a_required_field_missing_is_400(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """An IPMI machine stored without its address cannot be renamed until it has one."""
    response = await put(admin, sim, "half", hostname="half-renamed")
    assert response.json() == {"power_parameters": ["IP address: This field is required."]}
    fixed = await put(admin, sim, "half", power_parameters_power_address="192.0.2.9")
    assert fixed.status_code == 200
    assert sim.find("half").power_parameters["power_user"] == "only"


async def test_empty_power_type_resets_and_refuses_parameters(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """power_type="" clears the parameters; parameters sent with it are unknown."""
    refused = await put(admin, sim, "bmc", power_type="", power_parameters_address="x")
    assert refused.json() == {"power_parameters": ["Unknown parameter(s): address."]}
    cleared = await put(admin, sim, "bmc", power_type="")
    assert cleared.status_code == 200
    assert (sim.find("bmc").power_type, sim.find("bmc").power_parameters) == ("", {})


async def test_power_helper_answer_is_accepted(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """The daemon's power-helper PUT (ipmi, an address and a user) is a valid IPMI set."""
    response = await put(
        admin,
        sim,
        "dark",
        power_type="ipmi",
        power_parameters_power_address="192.0.2.77",
        power_parameters_power_user="admin",
    )
    assert response.status_code == 200
    assert sim.find("dark").power_type == "ipmi"
    assert sim.find("dark").power_parameters["power_address"] == "192.0.2.77"


async def test_create_checks_power_parameters_too(admin: httpx.AsyncClient) -> None:
    """POST machines/ with an unknown power parameter is refused the same way."""
    response = await admin.post(
        "machines/",
        data={
            "architecture": "amd64/generic",
            "mac_addresses": "52:54:00:aa:bb:10",
            "power_type": "manual",
            "power_parameters_colour": "blue",
        },
    )
    assert response.json() == {"power_parameters": ["Unknown parameter(s): colour."]}
