"""The simulator's tag writes (MAAS 3.6 api/tags.py): create a tag, update_nodes add/remove."""

from __future__ import annotations

import json

import httpx
import pytest

from maasflow.sim import Simulator


def first(sim: Simulator) -> str:
    return next(iter(sim.machines))


async def listed_tags(admin: httpx.AsyncClient, system_id: str) -> list[str]:
    tags: list[str] = (await admin.get(f"machines/{system_id}/")).json()["tag_names"]
    return tags


async def test_create_then_add_shows_the_tag_in_the_listing(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """POST tags/ makes the tag; update_nodes add= puts it in the machine's tag_names."""
    system_id = first(sim)
    made = await admin.post("tags/", data={"name": "quarantine", "comment": "why"})
    assert made.status_code == 200
    assert made.json()["name"] == "quarantine"
    assert (await admin.get("tags/quarantine/")).json() == made.json()
    update = await admin.post(
        "tags/quarantine/", params={"op": "update_nodes"}, data={"add": system_id}
    )
    assert update.json() == {"added": 1, "removed": 0}
    assert "quarantine" in await listed_tags(admin, system_id)
    assert sim.ops_for(system_id)[-2:] == ["update_nodes", "read"]


async def test_remove_takes_the_tag_off_and_unknown_ids_are_not_counted(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """remove= drops the tag; ids MAAS does not know are ignored, as its filter() would."""
    system_id = first(sim)
    await admin.post("tags/", data={"name": "q"})
    await admin.post("tags/q/", params={"op": "update_nodes"}, data={"add": system_id})
    gone = await admin.post(
        "tags/q/", params={"op": "update_nodes"}, data={"remove": [system_id, "nope00"]}
    )
    assert gone.json() == {"added": 0, "removed": 1}
    assert "q" not in await listed_tags(admin, system_id)


async def test_update_nodes_on_a_missing_tag_is_404(
    admin: httpx.AsyncClient, sim: Simulator
) -> None:
    """An unknown tag: 404 with MAAS's sentence, and no machine changes."""
    system_id = first(sim)
    answer = await admin.post("tags/nope/", params={"op": "update_nodes"}, data={"add": system_id})
    assert (answer.status_code, answer.text) == (404, "No Tag matches the given query.")
    assert "nope" not in await listed_tags(admin, system_id)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "This field is required."),
        ("bad tag", "Enter a valid value."),
        ("demo", "Tag with this Name already exists."),  # the demo machines carry it
    ],
)
async def test_create_refuses_bad_or_taken_names_with_field_errors(
    admin: httpx.AsyncClient, name: str, message: str
) -> None:
    """TagForm's validation: 400 JSON {"name": [...]}."""
    answer = await admin.post("tags/", data={"name": name} if name else {})
    assert answer.status_code == 400
    assert json.loads(answer.text) == {"name": [message]}


async def test_tag_writes_are_admin_only(user: httpx.AsyncClient, sim: Simulator) -> None:
    """A non-admin key gets MAAS's PermissionDenied: 403 with an empty body, for both ops."""
    created = await user.post("tags/", data={"name": "mine"})
    updated = await user.post("tags/demo/", params={"op": "update_nodes"}, data={"add": first(sim)})
    assert [(r.status_code, r.text) for r in (created, updated)] == [(403, ""), (403, "")]


async def test_a_definition_that_differs_is_409(admin: httpx.AsyncClient, sim: Simulator) -> None:
    """update_nodes with a definition other than the tag's (none here) is MAAS's 409."""
    answer = await admin.post(
        "tags/demo/",
        params={"op": "update_nodes"},
        data={"add": first(sim), "definition": "//node"},
    )
    assert answer.status_code == 409 and "doesn't match current definition" in answer.text
