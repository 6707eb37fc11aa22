"""The API description the simulator serves at `describe/`, and the routes it is made of.

MAAS answers `GET /MAAS/api/2.0/describe/` (anonymous, any method; a plain Django view, so
no `X-MAAS-API-Hash` header) with JSON `{doc, resources, handlers, hash}`: `resources` is
sorted by name, each `{name, anon, auth}`; `handlers` repeats every anon handler, then
every auth one. A handler is `{name, doc, params, path, uri, actions}`, its `uri` made
absolute from the request's scheme and Host; an action is `{name, op, method, restful,
doc}`, named after its op, or for plain CRUD after the method (GET read, POST create, PUT
update, DELETE delete), sorted by name (`src/maasserver/api/doc_handler.py` `describe`,
`src/maasserver/api/doc.py` `_describe_api`, `src/maasserver/utils/__init__.py`
`build_absolute_uri`, MAAS 3.6). python-libmaas builds its whole client from this, and
`maas login` fetches it after checking the key with `users/?op=whoami`.

The simulator describes exactly what it serves: `ROUTES` names each resource the way MAAS
names its handler class, with MAAS's URI template; its actions come from the API's own
dispatch tables, their docs from the docstrings of the methods that answer them, so the
description cannot promise an op the simulator lacks. `hash` is a SHA-1 of the relative
description, as MAAS's is of its own (the same value goes in `X-MAAS-API-Hash`). A Host
header that Django's `ALLOWED_HOSTS` check would not parse is refused by `host_or_none`.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

API_ROOT = "/MAAS/api/2.0/"
CRUD = {"GET": "read", "POST": "create", "PUT": "update", "DELETE": "delete"}
# django.http.request.host_validation_re, applied to the lower-cased Host header.
_HOST = re.compile(r"^([a-z0-9.-]+|\[[a-f0-9]*:[a-f0-9.:]+\])(:[0-9]+)?$")

Signature = tuple[str, str, str | None]  # (route key, HTTP method, op)


@dataclass(frozen=True)
class Route:
    """One API resource: the simulator's key for it and how MAAS names and places it."""

    key: str
    handler: str  # MAAS's handler class name (python-libmaas derives its names from it)
    template: str  # MAAS's URI template under API_ROOT, e.g. "machines/{system_id}/"
    doc: str
    anon: str | None = None  # MAAS's anonymous handler class name, if it has one
    authenticated: bool = True  # False: the resource has only an anonymous handler

    @property
    def path(self) -> str:
        return API_ROOT + self.template

    @property
    def params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.template)

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        pieces = re.split(r"{\w+}", self.path)
        return re.compile("^" + "([^/]+)".join(re.escape(piece) for piece in pieces) + "$")


ROUTES: tuple[Route, ...] = (
    # src/maasserver/urls_api.py and the handlers' resource_uri, MAAS 3.6.
    Route(
        "machines",
        "MachinesHandler",
        "machines/",
        "Manage the collection of all the machines in the MAAS.",
        anon="AnonMachinesHandler",
    ),
    Route("machine", "MachineHandler", "machines/{system_id}/", "Manage an individual machine."),
    Route("events", "EventsHandler", "events/", "Retrieve filtered node events."),
    Route("users", "UsersHandler", "users/", "Manage the user accounts of this MAAS."),
    Route("zones", "ZonesHandler", "zones/", "Manage physical zones."),
    Route("zone", "ZoneHandler", "zones/{name}/", "Manage a physical zone."),
    Route("pools", "ResourcePoolsHandler", "resourcepools/", "Manage resource pools."),
    Route("pool", "ResourcePoolHandler", "resourcepool/{id}/", "Manage a resource pool."),
    Route("tags", "TagsHandler", "tags/", "Manage all tags known to MAAS."),
    Route("tag", "TagHandler", "tags/{name}/", "A tag: a node property used to select nodes."),
    Route(
        "version",
        "VersionHandler",
        "version/",
        "Information about this MAAS instance.",
        authenticated=False,
    ),
)


def route_for(path: str) -> tuple[Route, str | None] | None:
    """The route serving `path` and the value of its one URI parameter, if any."""
    for route in ROUTES:
        match = route.pattern.match(path)
        if match:
            return route, (match.group(1) if match.groups() else None)
    return None


def describe(
    auth: Mapping[Signature, Callable[..., Any]], anon: Mapping[Signature, Callable[..., Any]]
) -> dict[str, Any]:
    """The relative description (no `uri`s yet) of what the two dispatch tables serve."""
    resources = []
    for route in ROUTES:
        anon_name = route.anon if route.authenticated else route.handler
        anon_handler = _handler(route, anon_name, anon) if anon_name else None
        auth_handler = _handler(route, route.handler, auth) if route.authenticated else None
        resources.append({"name": route.handler, "anon": anon_handler, "auth": auth_handler})
    resources.sort(key=lambda resource: str(resource["name"]))
    description: dict[str, Any] = {"doc": "MAAS API", "resources": resources}
    description["handlers"] = [r["anon"] for r in resources if r["anon"] is not None] + [
        r["auth"] for r in resources if r["auth"] is not None
    ]
    description["hash"] = digest(description)
    return description


def digest(description: Mapping[str, Any]) -> str:
    """SHA-1 of the description's canonical JSON (sorted keys), the API hash."""
    text = json.dumps(description, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def absolute(description: Mapping[str, Any], origin: str) -> dict[str, Any]:
    """A copy whose handlers carry `uri` = `origin` + path (origin like http://host:port)."""
    copied = copy.deepcopy(dict(description))  # keeps handlers shared with resources
    for resource in copied["resources"]:
        for kind in ("anon", "auth"):
            handler = resource[kind]
            if handler is not None:
                handler["uri"] = origin + handler["path"]
    return copied


def host_or_none(header: str) -> str | None:
    """The Host header if Django would accept it, else None."""
    return header if _HOST.match(header.lower()) else None


def _handler(
    route: Route, name: str, table: Mapping[Signature, Callable[..., Any]]
) -> dict[str, Any]:
    actions = [
        _action(method, op, answer)
        for (key, method, op), answer in table.items()
        if key == route.key
    ]
    return {
        "name": name,
        "doc": route.doc,
        "params": route.params,
        "path": route.path,
        "actions": sorted(actions, key=lambda action: str(action["name"])),
    }


def _action(method: str, op: str | None, answer: Callable[..., Any]) -> dict[str, Any]:
    return {
        "name": op or CRUD[method],
        "op": op,
        "method": method,
        "restful": op is None,
        "doc": inspect.getdoc(answer) or "",
    }
