"""`GET machines/` server-side filters behave like MAAS's ReadNodesForm (facts §2.4).

Listing changes nothing, so one simulator serves the whole module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from maasflow.sim import MachineSpec, SimConfig, Simulator, serve_simulator
from tests.sim.helpers import FAST, api_client

Query = list[tuple[str, str | int | float | bool | None]]
MACHINES = [
    MachineSpec("alpha", status=0, tags=["gpu", "big"], macs=["52:54:00:00:00:01"]),
    MachineSpec("bravo", status=4, zone="lab-b", tags=["gpu"], power_state="on"),
    MachineSpec("charlie", status=6, owner="admin", pool="prod", cpu_count=16, memory=65536),
    MachineSpec("delta", status=10, owner="someone-else", tags=["big"]),
]


pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def shared() -> AsyncIterator[Simulator]:
    async with serve_simulator(SimConfig(seed=2, time_factor=FAST, machines=MACHINES)) as sim:
        yield sim


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def admin(shared: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(shared, shared.admin_key) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def user(shared: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(shared, shared.user_key) as client:
        yield client


async def names(client: httpx.AsyncClient, params: Query) -> list[str]:
    response = await client.get("machines/", params=params)
    assert response.status_code == 200, response.text
    return [machine["hostname"] for machine in response.json()]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([], ["alpha", "bravo", "charlie", "delta"]),
        ([("hostname", "alpha"), ("hostname", "delta")], ["alpha", "delta"]),
        ([("hostname", "bravo.maas")], ["bravo"]),
        ([("zone", "lab-b")], ["bravo"]),
        ([("not_in_zone", "lab-b")], ["alpha", "charlie", "delta"]),
        ([("pool", "prod")], ["charlie"]),
        ([("status", "new"), ("status", "ready")], ["alpha", "bravo"]),
        ([("not_status", "deployed")], ["alpha", "bravo", "delta"]),
        ([("simple_status", "allocated")], ["delta"]),
        ([("tags", "gpu"), ("tags", "big")], ["alpha"]),
        ([("tags", "gpu,big")], ["alpha"]),
        ([("not_tags", "gpu")], ["charlie", "delta"]),
        ([("owner", "someone-else")], ["delta"]),
        ([("not_owner", "admin")], ["alpha", "bravo", "delta"]),
        ([("power_state", "on")], ["bravo"]),
        ([("mac_address", "52-54-00-00-00-01")], ["alpha"]),
        ([("cpu_count", "8")], ["charlie"]),
        ([("mem", "32768")], ["charlie"]),
        ([("arch", "amd64")], ["alpha", "bravo", "charlie", "delta"]),
        ([("domain", "maas"), ("zone", "default"), ("status", "new")], ["alpha"]),
    ],
)
async def test_filter(
    admin: httpx.AsyncClient,
    params: Query,
    expected: list[str],
) -> None:
    """Each filter selects what MAAS would (OR within a key, AND across keys and for tags)."""
    assert await names(admin, params) == expected


async def test_id_filter_selects_by_system_id(admin: httpx.AsyncClient) -> None:
    """`id` is the system_id and may repeat."""
    everyone = (await admin.get("machines/")).json()
    wanted = [everyone[1]["system_id"], everyone[3]["system_id"]]
    assert await names(admin, [("id", wanted[0]), ("id", wanted[1])]) == ["bravo", "delta"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([("colour", "red")], {"colour": ["No such constraint."]}),
        ([("zone", "mars")], {"zone": ["No such zone(s): mars."]}),
        ([("not_in_zone", "mars")], {"not_in_zone": ["No such zone(s): mars."]}),
        ([("pool", "gold")], {"pool": ["No such pool(s): gold."]}),
        ([("tags", "shiny")], {"tags": ["No such tag(s): 'shiny'."]}),
        ([("mac_address", "zz:zz")], {"mac_address": ["'zz:zz' is not a valid MAC address."]}),
        ([("cpu_count", "many")], {"cpu_count": ["Invalid CPU count: number required."]}),
        (
            [("status", "sleeping")],
            {"status": ["Select a valid choice. sleeping is not one of the available choices."]},
        ),
    ],
)
async def test_bad_filter_is_400_json(
    admin: httpx.AsyncClient,
    params: Query,
    expected: dict[str, list[str]],
) -> None:
    """Unknown constraint names and unknown values answer 400 with a JSON field dict."""
    response = await admin.get("machines/", params=params)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json() == expected


async def test_op_and_oauth_query_params_are_not_constraints(admin: httpx.AsyncClient) -> None:
    """Parameters the form ignores (op, oauth_*) do not make the listing fail."""
    response = await admin.get("machines/", params={"oauth_extra": "x"})
    assert response.status_code == 200


async def test_non_admin_filters_apply_within_what_they_see(user: httpx.AsyncClient) -> None:
    """A non-admin filtering on owner=someone-else sees nothing: those are invisible."""
    assert await names(user, [("owner", "someone-else")]) == []
    assert await names(user, [("tags", "big")]) == ["alpha"]


async def test_list_allocated_lists_own_machines(admin: httpx.AsyncClient) -> None:
    """op=list_allocated lists the caller's machines only."""
    assert await names(admin, [("op", "list_allocated")]) == ["charlie"]
