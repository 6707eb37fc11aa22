"""zones/, resourcepools/, tags/ and users/ answer as MAAS 3.6's handlers do."""

from __future__ import annotations

import httpx
import pytest

from maasflow.sim import MachineSpec, SimConfig, Simulator
from tests.sim.helpers import FAST


@pytest.fixture
def config() -> SimConfig:
    machines = [
        MachineSpec("a1", zone="lab-b", pool="gpu", tags=["fast", "demo"]),
        MachineSpec("a2", tags=["demo"]),
        MachineSpec("theirs", status=10, owner="someone-else", tags=["fast"]),
    ]
    return SimConfig(seed=3, time_factor=FAST, machines=machines, tags=["spare"])


async def test_zones_are_listed_by_name(admin: httpx.AsyncClient) -> None:
    """zones/ lists {id, name, description, resource_uri} ordered by name."""
    zones = (await admin.get("zones/")).json()
    assert [z["name"] for z in zones] == ["default", "lab-b"]
    assert zones[0] == {
        "id": 1,
        "name": "default",
        "description": "",
        "resource_uri": "/MAAS/api/2.0/zones/default/",
    }


async def test_zone_is_read_by_name_or_404(admin: httpx.AsyncClient) -> None:
    """zones/<name>/ reads one zone; an unknown name is 404 with Django's sentence."""
    assert (await admin.get("zones/lab-b/")).json()["name"] == "lab-b"
    missing = await admin.get("zones/nowhere/")
    assert (missing.status_code, missing.text) == (404, "No Zone matches the given query.")


async def test_pools_are_listed_by_name_with_the_default_pool_first_by_id(
    admin: httpx.AsyncClient,
) -> None:
    """resourcepools/ lists pools by name; the default pool is id 0, "Default pool"."""
    pools = (await admin.get("resourcepools/")).json()
    assert [p["name"] for p in pools] == ["default", "gpu"]
    assert pools[0] == {
        "id": 0,
        "name": "default",
        "description": "Default pool",
        "resource_uri": "/MAAS/api/2.0/resourcepool/0/",
    }


async def test_pool_is_read_by_id_or_by_name(admin: httpx.AsyncClient) -> None:
    """resourcepool/<id>/ and resourcepool/<name>/ read the same pool; unknown is 404."""
    by_id = (await admin.get("resourcepool/1/")).json()
    by_name = (await admin.get("resourcepool/gpu/")).json()
    assert by_id == by_name
    assert by_id["name"] == "gpu"
    assert (await admin.get("resourcepool/9/")).status_code == 404


async def test_tags_are_listed_in_creation_order(admin: httpx.AsyncClient) -> None:
    """tags/ lists {name, definition, comment, kernel_opts, resource_uri} oldest first."""
    tags = (await admin.get("tags/")).json()
    assert [t["name"] for t in tags] == ["spare", "fast", "demo"]
    assert tags[1] == {
        "name": "fast",
        "definition": "",
        "comment": "",
        "kernel_opts": "",
        "resource_uri": "/MAAS/api/2.0/tags/fast/",
    }
    missing = await admin.get("tags/slow/")
    assert (missing.status_code, missing.text) == (404, "No Tag matches the given query.")


async def test_tag_machines_shows_only_what_the_caller_may_see(
    admin: httpx.AsyncClient, user: httpx.AsyncClient
) -> None:
    """tags/<name>/?op=machines lists tagged machines, without other users' for non-admins."""
    seen_by_admin = (await admin.get("tags/fast/", params={"op": "machines"})).json()
    seen_by_user = (await user.get("tags/fast/", params={"op": "machines"})).json()
    assert [m["hostname"] for m in seen_by_admin] == ["a1", "theirs"]
    assert [m["hostname"] for m in seen_by_user] == ["a1"]


async def test_users_are_listed_by_username(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """users/ lists every user, sorted by username, shaped like whoami."""
    users = (await admin.get("users/")).json()
    assert [u["username"] for u in users] == sorted(
        [sim.admin_username, sim.user_username, sim.other_username]
    )
    assert users[0]["resource_uri"] == f"/MAAS/api/2.0/users/{users[0]['username']}/"


async def test_listings_need_a_key(anonymous: httpx.AsyncClient) -> None:
    """Without a key, zones/, resourcepools/ and tags/ answer 401."""
    for path in ("zones/", "resourcepools/", "tags/", "zones/default/"):
        assert (await anonymous.get(path)).status_code == 401, path
