"""The simulated MAAS API: routing, authentication order and every handler.

Order of work per request, as piston does it in MAAS: route the path (404 "Unknown API
endpoint"), authenticate (401 for a bad OAuth attempt; anonymous requests go to the
anonymous handlers, which for `machines/` only offer enlistment, so `GET machines/` is
400 "Unrecognised signature: method=GET op=None", facts §1.3), pick the handler for
(method, op) (400 "Unrecognised signature" otherwise), then look the machine up with the
permission the op needs (404/403, see `world.py`) and check its status (400/409 with MAAS's
words, facts §3). Successful answers are the machine JSON. Version endpoints and the 1.0
stub need no key. Faults, the request log and HTTP plumbing are `asgi.py`'s.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from maasflow.sim import forms, query
from maasflow.sim.auth import Authenticator, User
from maasflow.sim.config import SimConfig
from maasflow.sim.events import EventLog
from maasflow.sim.http import (
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
    MARK_FIXED_FROM,
    RELEASABLE,
    RELEASE_NOOP,
    Status,
)
from maasflow.sim.world import World

API_ROOT = "/MAAS/api/2.0/"
QUERY_POWER_TIMEOUT = 60.0  # seconds MAAS waits for a rack's power query (facts §3.6)
GONE = "The 1.0 API is no longer available. Please use API version 2.0."
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
_MACHINE_PATH = re.compile(r"^/MAAS/api/2\.0/machines/([^/]+)/$")
_COLLECTIONS = {
    API_ROOT + "machines/": "machines",
    API_ROOT + "users/": "users",
    API_ROOT + "events/": "events",
}


@dataclass
class Call:
    """One request on its way through the API, plus what handling it learned."""

    request: Request
    user: User | None = None
    system_id: str | None = None
    dry_run: bool = False  # the handler served the request without changing anything

    @property
    def caller(self) -> User:
        assert self.user is not None, "handler reached without a user"
        return self.user

    @property
    def params(self) -> dict[str, list[str]]:
        return self.request.params()


Handler = Callable[[Call], Awaitable[Response]]


def is_api(path: str) -> bool:
    """True for paths under /MAAS/api/2.0/ other than the anonymous version endpoint."""
    return path.startswith(API_ROOT) and path != API_ROOT + "version/"


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
    ) -> None:
        self._world = world
        self._lifecycle = lifecycle
        self._power = power
        self._auth = auth
        self._config = config
        self._table: dict[tuple[str, str, str | None], Handler] = {
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
            ("users", "GET", "whoami"): self._whoami,
            ("events", "GET", "query"): self._events,
        }

    @property
    def events(self) -> EventLog:
        return self._world.events

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
        if path == API_ROOT + "version/":
            return json_response(self._version())
        resource = self._route(call)
        call.user = self._auth.authenticate(request)
        if call.user is None:
            return await self._anonymous(call, resource)
        handler = self._table.get((resource, request.method, request.op))
        if handler is None:
            raise unrecognised(request.method, request.op)
        return await handler(call)

    def _route(self, call: Call) -> str:
        path = call.request.path
        if path in _COLLECTIONS:
            return _COLLECTIONS[path]
        match = _MACHINE_PATH.match(path)
        if match is None:
            raise fail(404, f"Unknown API endpoint: {path[:200]}.")
        call.system_id = match.group(1)
        return "machine"

    async def _anonymous(self, call: Call, resource: str) -> Response:
        request = call.request
        if resource != "machines":
            raise fail(401, "Forbidden")
        if request.method == "POST" and request.op is None:
            return await self._create(call)
        raise unrecognised(request.method, request.op)

    def _version(self) -> dict[str, object]:
        return {
            "capabilities": CAPABILITIES,
            "version": self._config.maas_version,
            "subversion": "",
        }

    # -- collection handlers ---------------------------------------------------------

    async def _list(self, call: Call) -> Response:
        return _listing(query.select(self._world, call.caller, call.params))

    async def _list_allocated(self, call: Call) -> Response:
        name = call.caller.username
        return _listing([m for m in self._world.machines.values() if m.owner == name])

    async def _create(self, call: Call) -> Response:
        user = call.user
        if user is not None and not user.is_superuser:
            forms.require_admin(False)
        new = forms.create_request(self._world, call.params, is_admin=user is not None)
        machine = self._world.add(new.spec)
        machine.power_type, machine.power_parameters = new.power_type, new.power_parameters
        call.system_id = machine.system_id
        if new.deployed and user is not None:
            machine.owner = user.username
        elif new.commission and user is not None:
            self._lifecycle.commission(machine, user.username)
        return _machine(machine)

    async def _allocate(self, call: Call) -> Response:
        params = call.params
        machine = query.choose_for_allocation(self._world, call.caller, params)
        call.system_id = machine.system_id
        call.dry_run = forms.parse_bool(params, "dry_run")
        if not call.dry_run:
            agent = forms.first(params, "agent_name") or ""
            self._lifecycle.allocate(machine, call.caller.username, agent)
        return json_response(render(machine) | {"constraints_by_type": {}})

    async def _all_power_parameters(self, call: Call) -> Response:
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
        return _machine(self._get(call, "view"))

    async def _update(self, call: Call) -> Response:
        machine = self._get(call, "admin")
        for name, value in forms.update_changes(self._world, machine, call.params).items():
            setattr(machine, name, value)
        return _machine(machine)

    async def _delete(self, call: Call) -> Response:
        machine = self._get(call, "admin")
        self._lifecycle.forget(machine)
        self._world.remove(machine)
        return Response(204, b"", JSON)

    async def _power_parameters(self, call: Call) -> Response:
        return json_response(self._get(call, "admin_read").power_parameters)

    async def _query_power_state(self, call: Call) -> Response:
        machine = self._get(call, "view")
        try:
            state = await asyncio.wait_for(
                self._power.query(machine), self._config.scaled(QUERY_POWER_TIMEOUT)
            )
        except TimeoutError:
            # MAAS's APIRPCErrorsMiddleware turns an RPC TimeoutError into 504 (facts §3.6, 5.2).
            return text(504, "Timed out waiting for the power state from the BMC.")
        return json_response({"state": state})

    async def _commission(self, call: Call) -> Response:
        machine = self._get(call, "admin")
        params = call.params
        for flag in ("enable_ssh", "skip_bmc_config", "skip_networking", "skip_storage"):
            forms.parse_bool(params, flag)
        if machine.status not in COMMISSION_FROM or not machine.nics or machine.locked:
            raise field_errors(
                {
                    "__all__": [
                        "Commission is not available because of the current state of the node."
                    ]
                }
            )
        if not machine.power_type:
            # MAAS raises a plain Exception here (a 500, facts §3.1, unconfirmed); the
            # simulator answers 400 with the same sentence so no input can produce a 500.
            raise fail(
                400, "Unconfigured power type. Please configure the power type and try again."
            )
        self._lifecycle.commission(machine, call.caller.username)
        return _machine(machine)

    async def _deploy(self, call: Call) -> Response:
        machine = self._get(call, "edit")
        user = call.caller
        wanted = forms.deploy_request(call.params, user.is_superuser)
        if machine.status == Status.READY and machine.owner not in (None, user.username):
            raise fail(409, "Can't allocate a machine belonging to another user.")
        if machine.status not in DEPLOY_FROM:
            raise fail(409, f"Can't deploy a machine that is in the '{machine.status_name}' state")
        if not self._world.assign_ips(machine):
            self._world.release_ips(machine)
            raise fail(
                503,
                f"{machine.system_id}: Unable to allocate static IP due to address exhaustion.",
            )
        machine.user_data, machine.hwe_kernel = wanted.user_data, wanted.hwe_kernel
        self._lifecycle.deploy(machine, user.username, wanted.osystem, wanted.series)
        return _machine(machine)

    async def _release(self, call: Call) -> Response:
        machine = self._get(call, "edit")
        params = call.params
        erase = [forms.parse_bool(params, f) for f in ("erase", "secure_erase", "quick_erase")]
        if machine.status in RELEASE_NOOP:
            return _machine(machine)
        if machine.status not in RELEASABLE:
            raise fail(
                409,
                f"Machine cannot be released in its current state ('{machine.status_name}').",
            )
        self._lifecycle.release(machine, call.caller.username, any(erase))
        return _machine(machine)

    async def _power_on(self, call: Call) -> Response:
        machine = self._get(call, "edit")
        if machine.owner is None:
            raise fail(409, "Can't start node: it hasn't been allocated.")
        user_data = forms.first(call.params, "user_data")
        if user_data is not None:
            machine.user_data = user_data
        self._lifecycle.user_power(machine, call.caller.username, "on")
        return _machine(machine)

    async def _power_off(self, call: Call) -> Response:
        machine = self._get(call, "edit")
        self._lifecycle.user_power(machine, call.caller.username, "off")
        return _machine(machine)

    async def _abort(self, call: Call) -> Response:
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
        machine = self._get(call, "edit")
        user = call.caller
        if not user.is_superuser and machine.owner != user.username:
            raise ApiError(text(403, ""))
        comment = forms.first(call.params, "comment") or ""
        self._lifecycle.mark_broken(machine, user.username, comment)
        return _machine(machine)

    async def _mark_fixed(self, call: Call) -> Response:
        machine = self._get(call, "admin")
        if machine.status not in MARK_FIXED_FROM:
            raise fail(409, "Can't mark a non-broken machine as 'Ready'.")
        comment = forms.first(call.params, "comment") or ""
        self._lifecycle.mark_fixed(machine, call.caller.username, comment)
        return _machine(machine)

    async def _lock(self, call: Call) -> Response:
        return self._set_lock(call, True)

    async def _unlock(self, call: Call) -> Response:
        return self._set_lock(call, False)

    def _set_lock(self, call: Call, locked: bool) -> Response:
        machine = self._get(call, "lock")
        if machine.locked == locked:
            raise fail(409, "Machine is already locked" if locked else "Machine is not locked")
        comment = forms.first(call.params, "comment") or ""
        self._lifecycle.set_locked(machine, call.caller.username, locked, comment)
        return _machine(machine)

    # -- other resources -------------------------------------------------------------

    async def _whoami(self, call: Call) -> Response:
        return json_response(call.caller.whoami())

    async def _events(self, call: Call) -> Response:
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
