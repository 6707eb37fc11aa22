"""The simulator's tag writes: create a tag, and add machines to it or take them off it.

Written from MAAS 3.6's `src/maasserver/api/tags.py` and `urls_api.py` (routes `tags/` and
`tags/<name>/`), not from the daemon:

- `POST tags/` (`TagsHandler.create`): admin only (403, empty body); `TagForm` validates
  `name` (required, unique, `^[a-zA-Z0-9_-]+$` from `models/tag.py`); errors are 400 JSON
  field dicts; the answer is the tag as `GET tags/<name>/` shows it. Simulated tags keep no
  comment or kernel options (see `inventory.py`) and no XPath definition (automatic tags),
  so a `definition` is refused with a 400.
- `POST tags/<name>/?op=update_nodes` (`TagHandler.update_nodes`): admin only (403, empty
  body); an unknown tag is 404 "No Tag matches the given query."; a `definition` that differs
  from the tag's is 409 text; `add` and `remove` are repeated system ids, unknown ones
  ignored; the answer is `{"added": n, "removed": m}`, counting the ids that matched.

A machine's tags are its `tag_names` in the listing. The request log names the machine an
`update_nodes` touched (when it touched exactly one), so `ops_for(system_id)` shows it.
`api.py` routes to these handlers (the tag's name is the route's argument); listing and
reading tags are `inventory.py`'s.
"""

from __future__ import annotations

import re
from typing import Protocol

from maasflow.sim import inventory
from maasflow.sim.auth import User
from maasflow.sim.http import (
    ApiError,
    Params,
    Response,
    fail,
    field_errors,
    json_response,
    text,
)
from maasflow.sim.world import World

_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
NO_TAG = "No Tag matches the given query."


class TagCall(Protocol):
    """What a tag handler reads of the request on its way through the API (`api.Call`)."""

    system_id: str | None
    arg: str  # the route's argument: the tag's name

    @property
    def caller(self) -> User: ...

    @property
    def params(self) -> Params: ...


def create(world: World, call: TagCall) -> Response:
    """`POST tags/`: a new tag, or MAAS's 400 for a missing, invalid or taken name."""
    _require_admin(call.caller)
    params = call.params
    name = (params.get("name") or [""])[0]
    if not name:
        raise field_errors({"name": ["This field is required."]})
    if len(name) > 256 or not _NAME.match(name):
        raise field_errors({"name": ["Enter a valid value."]})
    if name in world.tags:
        raise field_errors({"name": ["Tag with this Name already exists."]})
    if (params.get("definition") or [""])[0]:
        raise field_errors({"definition": ["The simulator keeps no tag definitions."]})
    world.add_tags([name])
    return inventory.tag(world, name)


def update_nodes(world: World, call: TagCall) -> Response:
    """`POST tags/<name>/?op=update_nodes add=<id> remove=<id>`: tag and untag machines."""
    _require_admin(call.caller)
    name = call.arg
    if name not in world.tags:
        raise fail(404, NO_TAG)
    params = call.params
    definition = (params.get("definition") or [""])[0]
    if definition:
        message = f"Definition supplied '{definition}' doesn't match current definition ''"
        raise ApiError(text(409, message))
    added = _known(world, params.get("add", []))
    removed = _known(world, params.get("remove", []))
    for system_id in added:
        machine = world.machines[system_id]
        if name not in machine.tags:
            machine.tags = [*machine.tags, name]
    for system_id in removed:
        machine = world.machines[system_id]
        machine.tags = [t for t in machine.tags if t != name]
    touched = {*added, *removed}
    if len(touched) == 1:
        call.system_id = touched.pop()
    return json_response({"added": len(added), "removed": len(removed)})


def _known(world: World, system_ids: list[str]) -> list[str]:
    return [sid for sid in dict.fromkeys(system_ids) if sid in world.machines]


def _require_admin(user: User) -> None:
    if not user.is_superuser:
        raise ApiError(text(403, ""))  # PermissionDenied() in both handlers: an empty body
