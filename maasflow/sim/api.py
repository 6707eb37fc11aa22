"""The simulated MAAS API: routing, authentication order and every handler.

Order of work per request, as piston does it in MAAS: `describe/` (the API description,
`description.py`) and the version endpoints need no key and skip everything else; route
the path (404 "Unknown API endpoint"), authenticate (401 for a bad OAuth attempt;
anonymous requests go to the anonymous handlers, which only `machines/` has, and it only
offers enlistment, so `GET machines/` is 400 "Unrecognised signature: method=GET op=None",
facts §1.3; other resources answer anonymous callers 401), pick the handler for
(method, op) (400 "Unrecognised signature" otherwise), then look the machine up with the
permission the op needs (404/403, see `world.py`) and check its status (400/409 with MAAS's
words, facts §3). Successful answers are the machine JSON. The two dispatch tables are also
what `describe/` lists, each action documented by its handler's docstring. Zones, pools,
tags and users are `inventory.py`'s. Faults, the request log and HTTP plumbing are
`asgi.py`'s.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from maasflow.sim import description, forms, inventory, query, tagging
from maasflow.sim.auth import Authenticator, User
from maasflow.sim.clock import SimClock
from maasflow.sim.config import SimConfig
from maasflow.sim.description import API_ROOT
from maasflow.sim.events import EventLog
from maasflow.sim.faults import exhausted
from maasflow.sim.http import (
    HTML,
    JSON,
    ApiError,
    Request,
    Response,
    fail,
    field_errors,
    json_response,
    text,
)
from maasflow.sim.machine import Machine, render
from maasflow.sim.power import PowerControl
from maasflow.sim.progression import Lifecycle
from maasflow.sim.statuses import (
    ABORT_FROM,
    COMMISSION_FROM,
    DEPLOY_FROM,
    LOCKABLE,
    MARK_FIXED_FROM,
    RELEASABLE,
    RELEASE_NOOP,
    Status,
)
from maasflow.sim.world import World

QUERY_POWER_TIMEOUT = 60.0  # seconds MAAS waits for a rack's power query (facts §3.6)
GONE = "The 1.0 API is no longer available. Please use API version 2.0."
DESCRIBE = API_ROOT + "describe/"
VERSION = API_ROOT + "version/"
# Django's answer when the Host header fails its validation (DisallowedHost → 400).
BAD_HOST = "<h1>Bad Request (400)</h1>"
CAPABILITIES = [
    "networks-management",
    "static-ipaddresses",
    "ipv6-deployment-ubuntu",
    "devices-management",
    "storage-deployment-ubuntu",
    "network-deployment-ubuntu",
    "bridging-interface-ubuntu",
    "bridging-automatic-ubuntu",
    "authenticate-api",
]


@dataclass
class Call:
    """One request on its way through the API, plus what handling it learned."""

    request: Request
    user: User | None = None
    system_id: str | None = None  # the machine the request is about, once known
    arg: str = ""  # the value of the route's URI parameter (zone name, pool id, ...)
    dry_run: bool = False  # the handler served the request without changing anything

    @property
    def caller(self) -> User:
        assert self.user is not None, "handler reached without a user"
        return self.user

    @property
    def params(self) -> dict[str, list[str]]:
        return self.request.params()


Handler = Callable[[Call], Awaitable[Response]]
Signature = description.Signature


def is_api(path: str) -> bool:
    """True for API paths that faults apply to: under /MAAS/api/2.0/, except the anonymous
    bootstrap endpoints a client reads once (`version/`, `describe/`)."""
    return path.startswith(API_ROOT) and path not in (VERSION, DESCRIBE)


def carries_api_hash(path: str) -> bool:
    """MAAS's piston resources add X-MAAS-API-Hash; the `describe/` view does not."""
    return path.startswith(API_ROOT) and path != DESCRIBE


def unrecognised(method: str, op: str | None) -> ApiError:
    return fail(400, f"Unrecognised signature: method={method} op={(op or 'None')[:64]}")


class Api:
    """Answers requests against one simulated region."""

    def __init__(
        self,
        world: World,
        lifecycle: Lifecycle,
        power: PowerControl,
        auth: Authenticator,
        config: SimConfig,
        clock: SimClock,
    ) -> None:
        self._world = world
        self._lifecycle = lifecycle
        self._power = power
        self._auth = auth
        self._config = config
        self._clock = clock
        self._table: dict[Signature, Handler] = {
            ("machines", "GET", None): self._list,
            ("machines", "POST", None): self._create,
            ("machines", "POST", "allocate"): self._allocate,
            ("machines", "GET", "power_parameters"): self._all_power_parameters,
            ("machines", "GET", "list_allocated"): self._list_allocated,
            ("machine", "GET", None): self._read,
            ("machine", "PUT", None): self._update,
            ("machine", "DELETE", None): self._delete,
            ("machine", "GET", "power_parameters"): self._power_parameters,
            ("machine", "GET", "query_power_state"): self._query_power_state,
            ("machine", "POST", "commission"): self._commission,
            ("machine", "POST", "deploy"): self._deploy,
            ("machine", "POST", "release"): self._release,
            ("machine", "POST", "power_on"): self._power_on,
            ("machine", "POST", "power_off"): self._power_off,
            ("machine", "POST", "abort"): self._abort,
            ("machine", "POST", "mark_broken"): self._mark_broken,
            ("machine", "POST", "mark_fixed"): self._mark_fixed,
            ("machine", "POST", "lock"): self._lock,
            ("machine", "POST", "unlock"): self._unlock,
            ("users", "GET", None): self._users,
            ("users", "GET", "whoami"): self._whoami,
            ("events", "GET", "query"): self._events,
            ("zones", "GET", None): self._zones,
            ("zone", "GET", None): self._zone,
            ("pools", "GET", None): self._pools,
            ("pool", "GET", None): self._pool,
            ("tags", "GET", None): self._tags,
            ("tag", "GET", None): self._tag,
            ("tag", "GET", "machines"): self._tagged_machines,
            ("tags", "POST", None): self._create_tag,
            ("tag", "POST", "update_nodes"): self._update_tag_nodes,
        }
        self._anonymous_table: dict[Signature, Handler] = {
            ("machines", "POST", None): self._create,
            ("version", "GET", None): self._version,
        }
        self.description = description.describe(self._table, self._anonymous_table)

    @property
    def events(self) -> EventLog:
        return self._world.events

    @property
    def api_hash(self) -> str:
        """The description's hash, sent as X-MAAS-API-Hash."""
        return str(self.description["hash"])

    async def handle(self, call: Call) -> Response:
        """Answer one request; errors raised by handlers become their responses."""
        try:
            return await self._dispatch(call)
        except ApiError as exc:
            return exc.response

    async def _dispatch(self, call: Call) -> Response:
        request = call.request
        path = request.path
        if path == "/MAAS/api/version/":
            return text(200, "2.0")
        if path.startswith("/MAAS/api/1.0/"):
            return text(410, GONE)
        if path == DESCRIBE:
            return self._describe(request)
        route = self._route(call)
        if route.authenticated:
            call.user = self._auth.authenticate(request)
        table = self._table if call.user else self._anonymous_table
        handler = table.get((route.key, request.method, request.op))
        if handler is not None:
            return await handler(call)
        if call.user is None and route.authenticated and route.anon is None:
            raise fail(401, "Forbidden")
        raise unrecognised(request.method, request.op)

    def _route(self, call: Call) -> description.Route:
        path = call.request.path
        found = description.route_for(path)
        if found is None:
            raise fail(404, f"Unknown API endpoint: {path[:200]}.")
        route, arg = found
        call.arg = arg or ""
        if route.key == "machine":
            call.system_id = arg
        return route

    def _describe(self, request: Request) -> Response:
        host = description.host_or_none(request.headers.get("host", ""))
        if host is None:
            return Response(400, BAD_HOST.encode(), HTML)
        answer = description.absolute(self.description, f"http://{host}")
        return Response(200, json.dumps(answer, sort_keys=True).encode("utf-8"), JSON)

    async def _version(self, call: Call) -> Response:
        """Read version and capabilities information."""
        return json_response(
            {
                "capabilities": CAPABILITIES,
                "version": self._config.maas_version,
                "subversion": "",
            }
        )

    # -- collection handlers ---------------------------------------------------------

    async def _list(self, call: Call) -> Response:
        """List machines, filtered by the given constraints (hostname, zone, status...)."""
        return _listing(query.select(self._world, call.caller, call.params))

    async def _list_allocated(self, call: Call) -> Response:
        """List the machines allocated to the caller."""
        name = call.caller.username
        return _listing([m for m in self._world.machines.values() if m.owner == name])

    async def _create(self, call: Call) -> Response:
        """Create (enlist) a machine; admins may commission it or record it as deployed."""
        user = call.user
        if user is not None and not user.is_superuser:
            forms.require_admin(False)
        new = forms.create_request(
            self._world,
            call.params,
            is_admin=user is not None,
            deployed_field=self._config.deployed_enlistment,
        )
        machine = self._world.add(new.spec, announce=False)
        machine.power_type, machine.power_parameters = new.power_type, new.power_parameters
        call.system_id = machine.system_id
        if new.deployed and user is not None:
            self._lifecycle.enlist_deployed(machine, user.username)
        elif new.commission and user is not None:
            self._lifecycle.commission(machine, user.username)
        return _machine(machine)

    async def _allocate(self, call: Call) -> Response:
        """Allocate a Ready machine matching the constraints (name, system_id, zone...)."""
        params = call.params
        machine = query.choose_for_allocation(self._world, call.caller, params)
        call.system_id = machine.system_id
        call.dry_run = forms.parse_bool(params, "dry_run")
        if not call.dry_run:
            agent = forms.first(params, "agent_name") or ""
            self._lifecycle.allocate(machine, call.caller.username, agent)
        return json_response(render(machine) | {"constraints_by_type": {}})

    async def _all_power_parameters(self, call: Call) -> Response:
        """Read the power parameters of several machines (admin)."""
        forms.require_admin(call.caller.is_superuser)
        wanted = set(call.params.get("id", [])) or set(self._world.machines)
        return json_response(
            {sid: m.power_parameters for sid, m in self._world.machines.items() if sid in wanted}
        )

    # -- single-machine handlers -----------------------------------------------------

    def _get(self, call: Call, perm: str) -> Machine:
        assert call.system_id is not None
        return self._world.lookup(call.system_id, call.caller, perm)

    async def _read(self, call: Call) -> Response:
        """Read a machine."""
        return _machine(self._get(call, "view"))

    async def _update(self, call: Call) -> Response:
        """Update a machine: hostname, domain, zone, pool, power type and parameters (admin)."""
        machine = self._get(call, "admin")
        for name, value in forms.update_changes(self._world, machine, call.params).items():
            setattr(machine, name, value)
        return _machine(machine)

    async def _delete(self, call: Call) -> Response:
        """Delete a machine (admin)."""
        machine = self._get(call, "admin")
        self._lifecycle.forget(machine)
        self._world.remove(machine)
        return Response(204, b"", JSON)

    async def _power_parameters(self, call: Call) -> Response:
        """Read the machine's power parameters (admin)."""
        return json_response(self._get(call, "admin_read").power_parameters)

    async def _query_power_state(self, call: Call) -> Response:
        """Query the machine's BMC for its power state."""
        machine = self._get(call, "view")
        try:
            async with self._clock.timeout(QUERY_POWER_TIMEOUT):
                state = await self._power.query(machine)
        except TimeoutError:
            # MAAS's APIRPCErrorsMiddleware turns an RPC TimeoutError into 504 (facts §3.6, 5.2).
            return text(504, "Timed out waiting for the power state from the BMC.")
        return json_response({"state": state})

    async def _commission(self, call: Call) -> Response:
        """Commission a New, Ready, Broken or Failed commissioning machine (admin)."""
        machine = self._get(call, "admin")
        params = call.params
        for flag in ("enable_ssh", "skip_bmc_config", "skip_networking", "skip_storage"):
            forms.parse_bool(params, flag)
        if machine.status not in COMMISSION_FROM or not machine.nics:
            raise field_errors(
                {
                    "__all__": [
                        "Commission is not available because of the current state of the node."
                    ]
                }
            )
        if not machine.power_type:
            # Node.start_commissioning raises UnknownPowerType, a plain Exception, which
            # MAAS's ExceptionMiddleware answers 500 with its text (src/maasserver/models/
            # node.py, src/maasserver/middleware.py).
            raise fail(
                500, "Unconfigured power type. Please configure the power type and try again."
            )
        self._lifecycle.commission(machine, call.caller.username)
        return _machine(machine)

    async def _deploy(self, call: Call) -> Response:
        """Deploy a Ready or Allocated machine with the given distro_series."""
        machine = self._get(call, "edit")
        user = call.caller
        wanted = forms.deploy_request(call.params, user.is_superuser)
        if machine.status == Status.READY and machine.owner not in (None, user.username):
            raise fail(409, "Can't allocate a machine belonging to another user.")
        if machine.status not in DEPLOY_FROM:
            raise fail(409, f"Can't deploy a machine that is in the '{machine.status_name}' state")
        doomed = exhausted(self._config.faults, self._config.seed, machine.system_id)
        if doomed or not self._world.assign_ips(machine):
            self._world.release_ips(machine)
            raise fail(
                503,
                f"{machine.system_id}: Unable to allocate static IP due to address exhaustion.",
            )
        machine.user_data, machine.hwe_kernel = wanted.user_data, wanted.hwe_kernel
        self._lifecycle.deploy(machine, user.username, wanted.osystem, wanted.series)
        return _machine(machine)

    async def _release(self, call: Call) -> Response:
        """Release an allocated or deployed machine, optionally erasing its disks."""
        machine = self._get(call, "edit")
        params = call.params
        flags = [forms.parse_bool(params, f) for f in ("erase", "secure_erase", "quick_erase")]
        erase = any(flags) if self._config.any_erase_flag_erases else flags[0]
        if machine.status in RELEASE_NOOP:
            return _machine(machine)
        if machine.status not in RELEASABLE:
            raise fail(
                409,
                f"Machine cannot be released in its current state ('{machine.status_name}').",
            )
        self._lifecycle.release(machine, call.caller.username, erase)
        return _machine(machine)

    async def _power_on(self, call: Call) -> Response:
        """Power on an allocated machine."""
        machine = self._get(call, "edit")
        if machine.owner is None:
            raise fail(409, "Can't start node: it hasn't been allocated.")
        user_data = forms.first(call.params, "user_data")
        if user_data is not None:
            machine.user_data = user_data
        self._lifecycle.user_power(machine, call.caller.username, "on")
        return _machine(machine)

    async def _power_off(self, call: Call) -> Response:
        """Power off the machine (stop_mode soft or hard)."""
        machine = self._get(call, "edit")
        self._lifecycle.user_power(machine, call.caller.username, "off")
        return _machine(machine)

    async def _abort(self, call: Call) -> Response:
        """Abort commissioning, deployment, disk erasing or testing."""
        machine = self._get(call, "edit")
        if machine.status not in ABORT_FROM:
            raise fail(
                409,
                f"Cannot abort in current state: node {machine.system_id} is in state "
                f"{machine.status_name}.",
            )
        self._lifecycle.abort(machine, call.caller.username)
        return _machine(machine)

    async def _mark_broken(self, call: Call) -> Response:
        """Mark the machine broken."""
        machine = self._get(call, "edit")
        user = call.caller
        if not user.is_superuser and machine.owner != user.username:
            raise ApiError(text(403, ""))
        comment = forms.first(call.params, "comment") or ""
        self._lifecycle.mark_broken(machine, user.username, comment)
        return _machine(machine)

    async def _mark_fixed(self, call: Call) -> Response:
        """Mark a broken machine fixed (admin)."""
        machine = self._get(call, "admin")
        if machine.status not in MARK_FIXED_FROM:
            raise fail(409, "Can't mark a non-broken machine as 'Ready'.")
        comment = forms.first(call.params, "comment") or ""
        self._lifecycle.mark_fixed(machine, call.caller.username, comment)
        return _machine(machine)

    async def _lock(self, call: Call) -> Response:
        """Lock a Deployed or Deploying machine against changes."""
        return self._set_lock(call, True)

    async def _unlock(self, call: Call) -> Response:
        """Unlock the machine."""
        return self._set_lock(call, False)

    def _set_lock(self, call: Call, locked: bool) -> Response:
        machine = self._get(call, "lock")
        if machine.locked == locked:
            raise fail(409, "Machine is already locked" if locked else "Machine is not locked")
        if locked and machine.status not in LOCKABLE:
            # Node.lock (src/maasserver/models/node.py) raises NodeStateViolation: 409.
            raise fail(409, "Can't lock, node is not deployed or deploying")
        comment = forms.first(call.params, "comment") or ""
        self._lifecycle.set_locked(machine, call.caller.username, locked, comment)
        return _machine(machine)

    # -- other resources -------------------------------------------------------------

    async def _users(self, call: Call) -> Response:
        """List users."""
        return inventory.users(self._auth.users)

    async def _whoami(self, call: Call) -> Response:
        """Retrieve the logged-in user."""
        return json_response(call.caller.whoami())

    async def _zones(self, call: Call) -> Response:
        """List all zones (there is always at least one: default)."""
        return inventory.zones(self._world)

    async def _zone(self, call: Call) -> Response:
        """Read a zone by name."""
        return inventory.zone(self._world, call.arg)

    async def _pools(self, call: Call) -> Response:
        """List all resource pools (there is always at least one: default)."""
        return inventory.pools(self._world)

    async def _pool(self, call: Call) -> Response:
        """Read a resource pool by id or name."""
        return inventory.pool(self._world, call.arg)

    async def _tags(self, call: Call) -> Response:
        """List all tags."""
        return inventory.tags(self._world)

    async def _tag(self, call: Call) -> Response:
        """Read a tag by name."""
        return inventory.tag(self._world, call.arg)

    async def _tagged_machines(self, call: Call) -> Response:
        """List the machines that carry the tag."""
        return _listing(inventory.tagged_machines(self._world, call.caller, call.arg))

    async def _create_tag(self, call: Call) -> Response:
        """Create a tag (admin)."""
        return tagging.create(self._world, call)

    async def _update_tag_nodes(self, call: Call) -> Response:
        """Add machines to the tag, or take them off it (admin)."""
        return tagging.update_nodes(self._world, call)

    async def _events(self, call: Call) -> Response:
        """Query node events, newest first (filters: id, hostname, zone, level, after...)."""
        params = call.params
        node_filters = {
            name: values
            for name, values in params.items()
            if name in ("id", "hostname", "mac_address", "domain", "zone", "pool", "agent_name")
        }
        nodes = {m.system_id for m in query.select(self._world, call.caller, node_filters)}
        return json_response(self.events.query(params, nodes))


def _machine(machine: Machine) -> Response:
    return Response(200, machine.to_json(), JSON)


def _listing(machines: list[Machine]) -> Response:
    return Response(200, b"[" + b",".join(m.to_json() for m in machines) + b"]", JSON)
