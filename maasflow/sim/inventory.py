"""The region's other objects as MAAS's API shows them: zones, resource pools, tags, users.

Shapes and order from MAAS 3.6: a zone or pool is `{id, name, description, resource_uri}`
(`src/maasserver/api/zones.py`, `resourcepools.py`), both listed by name
(`ModelCollectionOperationsHandler.order_field`); a pool is read by id or by name
(`get_object_by_specifiers_or_raise`); a tag is `{name, definition, comment, kernel_opts,
resource_uri}` listed in creation order (`src/maasserver/api/tags.py`); a user is
`{username, email, is_local, is_superuser, resource_uri}` listed by username
(`src/maasserver/api/users.py`). Unknown names answer 404 "No <Model> matches the given
query.". Simulated tags have no definition, comment or kernel options. Machines are shown
by `machine.py`; who may see which is `world.py`'s rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from maasflow.sim.auth import User
from maasflow.sim.http import Response, fail, json_response
from maasflow.sim.machine import API, Machine, Named
from maasflow.sim.world import World, visible


def zones(world: World) -> Response:
    """`GET zones/`."""
    return json_response([zone.to_json() for zone in _by_name(world.zones.values())])


def zone(world: World, name: str) -> Response:
    """`GET zones/<name>/`."""
    found = world.zones.get(name)
    if found is None:
        raise fail(404, "No Zone matches the given query.")
    return json_response(found.to_json())


def pools(world: World) -> Response:
    """`GET resourcepools/`."""
    return json_response([pool.to_json() for pool in _by_name(world.pools.values())])


def pool(world: World, key: str) -> Response:
    """`GET resourcepool/<id or name>/`."""
    by_id = {str(found.id): found for found in world.pools.values()}
    found = by_id.get(key) or world.pools.get(key)
    if found is None:
        raise fail(404, "No ResourcePool matches the given query.")
    return json_response(found.to_json())


def tags(world: World) -> Response:
    """`GET tags/`."""
    return json_response([_tag(name) for name in world.tags])


def tag(world: World, name: str) -> Response:
    """`GET tags/<name>/`."""
    return json_response(_tag(_known_tag(world, name)))


def tagged_machines(world: World, user: User, name: str) -> list[Machine]:
    """`GET tags/<name>/?op=machines`: the machines with the tag the caller may see."""
    known = _known_tag(world, name)
    return [m for m in world.machines.values() if known in m.tags and visible(m, user)]


def users(known: list[User]) -> Response:
    """`GET users/`."""
    return json_response([user.whoami() for user in sorted(known, key=lambda u: u.username)])


def _known_tag(world: World, name: str) -> str:
    if name not in world.tags:
        raise fail(404, "No Tag matches the given query.")
    return name


def _tag(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "definition": "",
        "comment": "",
        "kernel_opts": "",
        "resource_uri": f"{API}/tags/{name}/",
    }


def _by_name(items: Iterable[Named]) -> list[Named]:
    return sorted(items, key=lambda item: item.name)
