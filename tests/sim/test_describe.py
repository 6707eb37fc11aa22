"""`describe/`: the API description MAAS serves, which python-libmaas and `maas login` need."""

from __future__ import annotations

from typing import Any

import httpx

from maasflow.sim import Simulator
from tests.sim.helpers import api_client

MACHINE_ACTIONS = {
    ("abort", "POST", "abort"),
    ("commission", "POST", "commission"),
    ("delete", "DELETE", None),
    ("deploy", "POST", "deploy"),
    ("lock", "POST", "lock"),
    ("mark_broken", "POST", "mark_broken"),
    ("mark_fixed", "POST", "mark_fixed"),
    ("power_off", "POST", "power_off"),
    ("power_on", "POST", "power_on"),
    ("power_parameters", "GET", "power_parameters"),
    ("query_power_state", "GET", "query_power_state"),
    ("read", "GET", None),
    ("release", "POST", "release"),
    ("unlock", "POST", "unlock"),
    ("update", "PUT", None),
}


async def describe(anonymous: httpx.AsyncClient, **headers: str) -> httpx.Response:
    return await anonymous.get("describe/", headers=headers)


def handler(description: dict[str, Any], name: str) -> dict[str, Any]:
    return next(h for h in description["handlers"] if h["name"] == name)


async def test_describe_is_anonymous_json(anonymous: httpx.AsyncClient) -> None:
    """describe/ needs no key and answers exactly application/json (maas login checks it)."""
    response = await describe(anonymous)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"doc", "resources", "handlers", "hash"}
    assert body["doc"] == "MAAS API"


async def test_resources_are_named_as_maas_names_its_handlers(
    anonymous: httpx.AsyncClient,
) -> None:
    """Resources are sorted by MAAS's handler class names; handlers list anon then auth."""
    body = (await describe(anonymous)).json()
    names = [resource["name"] for resource in body["resources"]]
    assert names == sorted(names)
    assert {"MachinesHandler", "MachineHandler", "ZonesHandler", "TagsHandler"} <= set(names)
    machines = next(r for r in body["resources"] if r["name"] == "MachinesHandler")
    assert (machines["anon"]["name"], machines["auth"]["name"]) == (
        "AnonMachinesHandler",
        "MachinesHandler",
    )
    version = next(r for r in body["resources"] if r["name"] == "VersionHandler")
    assert version["auth"] is None
    anon = [r["anon"]["name"] for r in body["resources"] if r["anon"]]
    auth = [r["auth"]["name"] for r in body["resources"] if r["auth"]]
    assert [h["name"] for h in body["handlers"]] == anon + auth


async def test_machine_handler_describes_the_ops_the_simulator_serves(
    anonymous: httpx.AsyncClient,
) -> None:
    """MachineHandler's actions, templated path and params are MAAS's, sorted by name."""
    body = (await describe(anonymous)).json()
    machine = handler(body, "MachineHandler")
    actions = [(a["name"], a["method"], a["op"]) for a in machine["actions"]]
    assert set(actions) == MACHINE_ACTIONS
    assert [name for name, _, _ in actions] == sorted(name for name, _, _ in actions)
    assert (machine["path"], machine["params"]) == (
        "/MAAS/api/2.0/machines/{system_id}/",
        ["system_id"],
    )
    assert all(a["restful"] is (a["op"] is None) and a["doc"] for a in machine["actions"])


async def test_uris_are_absolute_from_the_request_host(anonymous: httpx.AsyncClient) -> None:
    """Each handler's uri is http://<Host header><path>, as build_absolute_uri makes it."""
    body = (await describe(anonymous, host="maas.example:5240")).json()
    for resource in body["resources"]:
        for kind in ("anon", "auth"):
            if resource[kind]:
                assert resource[kind]["uri"] == "http://maas.example:5240" + resource[kind]["path"]
    assert (
        handler(body, "ZoneHandler")["uri"] == "http://maas.example:5240/MAAS/api/2.0/zones/{name}/"
    )


async def test_a_host_django_would_refuse_is_400(anonymous: httpx.AsyncClient) -> None:
    """A Host header outside Django's host syntax is refused, never echoed into URIs."""
    response = await describe(anonymous, host="evil/x")
    assert response.status_code == 400
    assert "evil" not in response.text


async def test_api_hash_header_is_the_description_hash(
    anonymous: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    """X-MAAS-API-Hash on API answers equals describe's hash; describe itself sends none."""
    response = await describe(anonymous)
    listing = await admin.get("machines/")
    assert listing.headers["x-maas-api-hash"] == response.json()["hash"]
    assert "x-maas-api-hash" not in response.headers


async def test_every_described_collection_read_answers(
    anonymous: httpx.AsyncClient, admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """Every described GET without URI parameters answers 200 to an admin key."""
    body = (await describe(anonymous)).json()
    for described in body["handlers"]:
        for action in described["actions"]:
            if action["method"] != "GET" or described["params"]:
                continue
            params = {"op": action["op"]} if action["op"] else {}
            response = await admin.get(described["uri"], params=params)
            assert response.status_code == 200, (described["name"], action["name"])


async def test_maas_login_sequence_succeeds(
    anonymous: httpx.AsyncClient, admin: httpx.AsyncClient, user: httpx.AsyncClient
) -> None:
    """`maas login` checks the key with users/?op=whoami, then reads describe/ and version/."""
    whoami = await admin.get("users/", params={"op": "whoami"})
    assert (whoami.status_code, whoami.json()["username"]) == (200, "admin")
    assert (await user.get("users/", params={"op": "whoami"})).json()["is_superuser"] is False
    assert (await describe(anonymous)).status_code == 200
    assert "authenticate-api" in (await anonymous.get("version/")).json()["capabilities"]


async def test_bad_key_is_what_maas_login_reports_as_rejected(sim: Simulator) -> None:
    """A key the region does not know answers 401 to whoami, maas login's rejection signal."""
    async with api_client(sim, "nobody12345678901:token12345678901:secret") as stranger:
        response = await stranger.get("users/", params={"op": "whoami"})
    assert response.status_code == 401
