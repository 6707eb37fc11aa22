"""The webhook power target: HTTP routes that MAAS's `webhook` power driver calls.

MAAS (3.6 `src/provisioningserver/drivers/power/webhook.py`) POSTs `power_on_uri` and
`power_off_uri` with no body, GETs `power_query_uri`, and sends `User-Agent: MAAS <version>`,
`Accept: application/json` and either `Authorization: Bearer <token>` or Basic. It reads the
query body with two regex searches (by default `status.*\\:.*running`, then
`status.*\\:.*stopped`), so the query answers exactly `{"status": "running"}`,
`{"status": "stopped"}` or `{"status": "unknown"}` and nothing else that could match.
Since 3.5 on/off/cycle run in MAAS's power CLI on the rack's agent, which passes no
system_id: only the rack's power monitor sends `System_id: <id>` (with its queries). So
the path alone picks the machine, `{system_id}` comes from the config, and a monitor's
header that names another machine is logged (`power.system_id_mismatch`), never refused:
refusing it would turn every monitor pass into a power "error" while on/off still work.

Routes (each also with a trailing slash): `POST /power/{machine}/on`, `.../off`, `.../ack`,
`GET /power/{machine}`, `GET /power/` (a listing) and `GET /power/acks` (an HTML page of
power-offs waiting for a person). `{machine}` is a configured name, a MAC or a system_id.
A `System_Id` header not shaped like a MAAS system_id is refused (400): it did not come
from MAAS. Errors are JSON: 400 (no such machine, or any other path under `/power/`), 401
(with `WWW-Authenticate`), 403, 409, and 502/503/504 for backend failures, never a 500 or
a 404: MAAS treats the body of a 404 as a successful answer (webhook.py, 3.6), so a typo in
a URI would pass for on/off and read "unknown". Error bodies never echo the path.
A POST whose `Origin` is not this service's Host, or that says `Sec-Fetch-Site: cross-site`,
is refused with 403 before anything else: a browser that remembers Basic credentials must
not let another site's page switch machines. MAAS sends neither header. The page and its
buttons also take their own Basic credentials (`--power-ack-pass-file`), which switch
nothing, so a person can acknowledge in a browser when MAAS uses a token.

This module wires config, auth and backends into an `APIRouter` (`PowerComponent`); the app,
TLS and the server itself belong to the service shell (`maasflow/serve/app.py`).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.convertors import Convertor, register_url_convertor

from maasflow.common.errors import ConfigError, PowerError
from maasflow.common.options import state_directory
from maasflow.serve.backends import Backend, Target, http_status
from maasflow.serve.backends.ack_page import render_acks_page
from maasflow.serve.backends.acks import AckBoard
from maasflow.serve.backends.command import CommandBackend
from maasflow.serve.backends.dli import DliBackend
from maasflow.serve.backends.wol import WolBackend
from maasflow.serve.power_config import (
    CommandMachine,
    DliMachine,
    MachineSpec,
    PowerAuth,
    PowerConfig,
    WolMachine,
    add_auth_arguments,
    add_config_argument,
    load_power_auth,
    load_power_config,
)
from maasflow.serve.power_state import PowerState, PowerStateStore
from maasflow.serve.system_id import SHAPE, is_system_id

log = structlog.get_logger(__name__)

REALM = "maasflow-power"
_QUERY_WORDS: dict[PowerState, str] = {"on": "running", "off": "stopped", "unknown": "unknown"}


class _Refusal(Exception):
    """A request answered with an error status before any backend ran."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


# --- auth ---------------------------------------------------------------------------------


def _same(given: str, wanted: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), wanted.encode("utf-8"))


def _basic_ok(user: str | None, password: str | None, header: str | None) -> bool:
    """Whether `header` is Basic with exactly this user and password (both compared, always)."""
    scheme, _, credentials = (header or "").strip().partition(" ")
    if scheme.lower() != "basic" or user is None or password is None:
        return False
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    given_user, _, given_password = decoded.partition(":")
    return _same(given_user, user) & _same(given_password, password)


def authorized(auth: PowerAuth, header: str | None) -> bool:
    """Whether an `Authorization` header carries the configured token or user and password."""
    if auth.is_open:
        return True
    scheme, _, credentials = (header or "").strip().partition(" ")
    if scheme.lower() == "bearer" and auth.token is not None:
        return _same(credentials.strip(), auth.token)
    return _basic_ok(auth.user, auth.password, header)


def page_authorized(auth: PowerAuth, header: str | None) -> bool:
    """Whether a request may use the acknowledgement page: the power credentials, or the
    page's own Basic user and password (which a browser can send; MAAS's token it cannot)."""
    return authorized(auth, header) or _basic_ok(auth.ack_user, auth.ack_password, header)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _authority(scheme: str, netloc: str) -> tuple[str, int] | None:
    """(host, port) of `netloc` with the scheme's default port filled in; None if malformed."""
    try:
        parts = urlsplit(f"//{netloc}")
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.hostname.lower(), port


def cross_site(origin: str | None, host: str | None, fetch_site: str | None) -> bool:
    """Whether a request comes from another site's page: a foreign `Origin` or
    `Sec-Fetch-Site: cross-site` (MAAS sends neither, so it is never refused)."""
    if (fetch_site or "").strip().lower() == "cross-site":
        return True
    if origin is None:
        return False
    parts = urlsplit(origin.strip())  # "null" (opaque origins) has no authority: refused
    mine = _authority(parts.scheme.lower(), host or "")
    return mine is None or _authority(parts.scheme.lower(), parts.netloc) != mine


def _unauthorized(auth: PowerAuth) -> JSONResponse:
    response = _error(401, "authentication required")
    if auth.token is not None:
        response.headers.append("WWW-Authenticate", f'Bearer realm="{REALM}"')
    if auth.user is not None:
        response.headers.append("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')
    return response


_NO_PAGE_CREDENTIAL = (
    "authentication required; a browser cannot send the power token: start serve with "
    "--power-ack-pass-file (the acknowledgement page's own Basic password)"
)


def _page_unauthorized(auth: PowerAuth) -> JSONResponse:
    """The page's 401: a Basic challenge, so a browser asks for the user and password."""
    if not auth.browser_can_ack:
        return _error(401, _NO_PAGE_CREDENTIAL)
    response = _error(401, "authentication required")
    realm = f"{REALM}-acks" if auth.user is None else REALM
    response.headers.append("WWW-Authenticate", f'Basic realm="{realm}", charset="UTF-8"')
    return response


# --- the component ------------------------------------------------------------------------

_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}


class PowerComponent:
    """The power routes plus what they own (backends, pending acks, the state file)."""

    def __init__(
        self,
        config: PowerConfig,
        auth: PowerAuth,
        backends: dict[str, Backend],
        acks: AckBoard,
        store: PowerStateStore,
    ) -> None:
        self.config = config
        self.auth = auth
        self.backends = backends
        self.acks = acks
        self.store = store
        self.seen_system_ids: dict[str, str] = {}  # machine → last System_id MAAS sent
        # Told (backend, action, HTTP status) of every on/off/query answered; set by the app.
        self.observe: Callable[[str, str, int], None] | None = None
        self.router = APIRouter(tags=["power"])
        _add_routes(self.router, self)

    def secret_env_names(self) -> frozenset[str]:
        """Environment variables the config names as holding passwords (children lose them)."""
        return self.config.password_envs()

    def end_waits(self) -> None:
        """Answer every power-off waiting for an acknowledgement 503 (the service is stopping)."""
        self.acks.close()

    async def aclose(self) -> None:
        """Fail pending acknowledgements and close backend connections (idempotent)."""
        self.acks.close()
        for backend in self.backends.values():
            await backend.aclose()

    def target(self, key: str, request: Request) -> Target:
        """Resolve `{machine}` to a configured machine; the path alone decides.

        MAAS 3.5+ sends `System_id` only with its power monitor's queries, never with on/off
        (see `note_system_id`), so a header that chose or refused the machine would make the
        monitor and the actions disagree. `{system_id}` is the configured one."""
        header = request.headers.get("system_id") or request.headers.get("system-id")
        if header and not is_system_id(header):
            raise _Refusal(400, f"the System_Id header is not a MAAS system_id ({SHAPE})")
        name = self.config.find(key)
        if name is None:
            raise _Refusal(400, "no such machine is configured")
        spec = self.config.machines[name]
        if header:
            self.note_system_id(name, spec.system_id, header.lower())
        return Target(name, spec.mac, spec.hostname or name, spec.system_id or "")

    def note_system_id(self, name: str, configured: str | None, header: str) -> None:
        """Remember which MAAS machine asks through `name`; warn once when it is not the
        configured one (the monitor's header names the machine MAAS asks about:
        `src/provisioningserver/rpc/power.py`, MAAS 3.6)."""
        if self.seen_system_ids.get(name) == header:
            return
        self.seen_system_ids[name] = header
        if configured is None:
            log.info("power.system_id_seen", machine=name, maas_system_id=header)
        elif configured != header:
            log.warning(
                "power.system_id_mismatch",
                machine=name,
                configured=configured,
                maas_system_id=header,
                hint="MAAS powers that machine through this one's URIs: fix system_id in the "
                "power config, or the power parameters in MAAS",
            )

    def denied(self, request: Request, *, page: bool = False) -> Response | None:
        """The 403 for a cross-site POST, the 401 for missing credentials, else None.

        `page`: the acknowledgement page and its buttons, which also take the page's own
        credentials."""
        headers = request.headers
        if request.method == "POST" and cross_site(
            headers.get("origin"), headers.get("host"), headers.get("sec-fetch-site")
        ):
            return _error(403, "cross-site request refused")
        header = headers.get("authorization")
        if page:
            return None if page_authorized(self.auth, header) else _page_unauthorized(self.auth)
        return None if authorized(self.auth, header) else _unauthorized(self.auth)

    async def act(self, action: str, key: str, request: Request) -> Response:
        """Run one backend call for a request and turn its outcome into a response."""
        if (refused := self.denied(request)) is not None:
            self._observe(None, action, refused.status_code)
            return refused
        started = time.monotonic()
        try:
            target = self.target(key, request)
            state = await _call(self.backends[target.name], action, target)
        except _Refusal as refusal:
            _log_request(request, action, None, refusal.status, started)
            self._observe(None, action, refusal.status)
            return _error(refusal.status, refusal.message)
        except PowerError as exc:
            _log_request(request, action, target.name, http_status(exc), started, error=str(exc))
            self._observe(target.name, action, http_status(exc))
            return _error(http_status(exc), str(exc))
        _log_request(request, action, target.name, 200, started, state=state)
        self._observe(target.name, action, 200)
        return _answer(action, target.name, state)

    def _observe(self, name: str | None, action: str, status: int) -> None:
        """Tell the metrics (when the app gave some) how a request for `name` was answered."""
        if self.observe is not None:
            spec = None if name is None else self.config.machines.get(name)
            self.observe("none" if spec is None else spec.backend, action, status)

    # Route handlers (FastAPI reads their signatures; `machine` is the path segment).

    async def power_on(self, machine: str, request: Request) -> Response:
        """Power a machine on (idempotent; answers once done or under way)."""
        return await self.act("on", machine, request)

    async def power_off(self, machine: str, request: Request) -> Response:
        """Power a machine off (idempotent; Wake-on-LAN machines wait for an ack)."""
        return await self.act("off", machine, request)

    async def query(self, machine: str, request: Request) -> Response:
        """Query the power state: {"status": "running" | "stopped" | "unknown"}."""
        return await self.act("query", machine, request)

    async def listing(self, request: Request) -> Response:
        """List the configured machines and their last known state."""
        if (refused := self.denied(request)) is not None:
            return refused
        pending = {entry.target.name for entry in self.acks.pending()}
        return JSONResponse([self._summary(name, name in pending) for name in self.config.machines])

    async def acks_page(self, request: Request) -> Response:
        """HTML page of power-offs waiting for a person's acknowledgement."""
        if (refused := self.denied(request, page=True)) is not None:
            return refused
        page = render_acks_page(self.acks.pending(), _prefix(request) + "/power")
        return HTMLResponse(page, headers=_PAGE_HEADERS)

    async def acknowledge(self, machine: str, request: Request) -> Response:
        """Acknowledge a waiting power-off (a form post is sent back to the page)."""
        if (refused := self.denied(request, page=True)) is not None:
            return refused
        try:
            name = self.target(machine, request).name
        except _Refusal as refusal:
            return _error(refusal.status, refusal.message)
        done = self.acks.ack(name)
        log.info("power.ack", machine=name, acknowledged=done)
        if request.headers.get("content-type", "").startswith("application/x-www-form-"):
            return RedirectResponse(_prefix(request) + "/power/acks", status_code=303)
        if not done:
            return _error(409, "no power-off of this machine is waiting for acknowledgement")
        return JSONResponse({"machine": name, "acknowledged": True})

    def _summary(self, name: str, waiting: bool) -> dict[str, object]:
        spec = self.config.machines[name]
        return {
            "name": name,
            "backend": spec.backend,
            "mac": spec.mac,
            "system_id": spec.system_id,
            "last_state": self.store.get(name),
            "off_waiting_for_ack": waiting,
            "maas_system_id": self.seen_system_ids.get(name),
        }

    async def nothing(self, request: Request) -> Response:
        """Any other path under /power/: 400, never 404 (MAAS's driver takes a 404 for a
        successful answer, webhook.py 3.6), so a typo in a power URI fails in MAAS."""
        _log_request(request, "unknown", None, 400, time.monotonic())
        return _error(400, "no such power route; see GET /power/ and /openapi.json")


async def _call(backend: Backend, action: str, target: Target) -> PowerState:
    try:
        if action == "on":
            return await backend.power_on(target)
        if action == "off":
            return await backend.power_off(target)
        return await backend.query(target)
    except PowerError:
        raise
    except Exception as exc:  # a backend bug must still answer MAAS with JSON, not a 500
        log.exception("power.backend_crashed", machine=target.name, action=action)
        raise PowerError(f"the {action} backend failed ({exc.__class__.__name__})") from exc


def _answer(action: str, name: str, state: PowerState) -> Response:
    if action == "query":
        # Exactly this body: MAAS's regexes search the raw text (webhook.py, 3.6).
        body = json.dumps({"status": _QUERY_WORDS[state]}) + "\n"
        return Response(body, media_type="application/json")
    return JSONResponse({"machine": name, "action": action, "state": state})


def _log_request(
    request: Request, action: str, name: str | None, status: int, started: float, **extra: str
) -> None:
    log.info(
        "power.request",
        action=action,
        machine=name,
        status=status,
        client=request.client.host if request.client else None,
        duration_ms=round((time.monotonic() - started) * 1000, 1),
        **extra,
    )


def _prefix(request: Request) -> str:
    path = request.url.path
    return path[: path.rfind("/power/")] if "/power/" in path else ""


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR: dict[str, Any] = {
    "type": "object",
    "properties": {"error": {"type": "string"}},
    "required": ["error"],
}
_ERRORS: dict[int | str, dict[str, object]] = {
    400: _json("No such machine is configured", _ERROR),
    401: _json("Missing or wrong credentials (see WWW-Authenticate)", _ERROR),
    403: _json("A cross-site POST (foreign Origin, or Sec-Fetch-Site: cross-site)", _ERROR),
    409: _json("Superseded by a newer request (an on while an off waits)", _ERROR),
    502: _json("The backend failed", _ERROR),
    503: _json("The backend is unreachable, or the service is stopping", _ERROR),
    504: _json("Nobody acknowledged the power-off in time", _ERROR),
}
_STATE = {"type": "string", "enum": ["on", "off", "unknown"]}
_DONE = _json(
    "Done, or under way",
    {
        "type": "object",
        "required": ["machine", "action", "state"],
        "properties": {
            "machine": {"type": "string"},
            "action": {"type": "string"},
            "state": _STATE,
        },
    },
)
_STATUS = _json(
    "The state, in the words MAAS's default regexes look for",
    {
        "type": "object",
        "required": ["status"],
        "additionalProperties": False,
        "properties": {"status": {"type": "string", "enum": ["running", "stopped", "unknown"]}},
    },
)
_ACKED = _json(
    "Acknowledged",
    {
        "type": "object",
        "properties": {"machine": {"type": "string"}, "acknowledged": {"type": "boolean"}},
    },
)
_LISTING = _json("Configured machines", {"type": "array", "items": {"type": "object"}})
_PAGE = {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}
_SEE_OTHER = {"description": "A form post: back to the page"}


def _route(
    router: APIRouter,
    method: str,
    path: str,
    endpoint: Callable[..., Awaitable[Response]],
    responses: dict[int | str, Any],
) -> None:
    """Register `path` and its trailing-slash twin (hidden from the schema) for `method`."""
    twin = path[:-1] if path.endswith("/") else path + "/"
    summary = (endpoint.__doc__ or "").strip().splitlines()[0]
    router.add_api_route(
        path,
        endpoint,
        methods=[method],
        summary=summary,
        response_class=Response,
        responses=responses,
    )
    router.add_api_route(
        twin, endpoint, methods=[method], include_in_schema=False, response_class=Response
    )


_ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class _AnyText(Convertor[str]):
    """A path parameter matching anything, newlines too (Starlette's `path` stops at one)."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("power_any", _AnyText())


def _add_routes(router: APIRouter, power: PowerComponent) -> None:
    """The routes, `/power/acks` before `/power/{machine}` so the page is not a machine, and
    last a 400 for every other path or method under `/power/`."""
    only_401: dict[int | str, Any] = {401: _ERRORS[401]}
    _route(router, "GET", "/power/", power.listing, {200: _LISTING, **only_401})
    _route(router, "GET", "/power/acks", power.acks_page, {200: _PAGE, **only_401})
    _route(router, "POST", "/power/{machine}/on", power.power_on, {200: _DONE, **_ERRORS})
    _route(router, "POST", "/power/{machine}/off", power.power_off, {200: _DONE, **_ERRORS})
    ack_errors: dict[int | str, Any] = {code: _ERRORS[code] for code in (400, 401, 403, 409)}
    _route(
        router,
        "POST",
        "/power/{machine}/ack",
        power.acknowledge,
        {200: _ACKED, 303: _SEE_OTHER, **ack_errors},
    )
    _route(router, "GET", "/power/{machine}", power.query, {200: _STATUS, **_ERRORS})
    router.add_api_route(
        "/power/{rest:power_any}",
        power.nothing,
        methods=list(_ALL_METHODS),
        include_in_schema=False,
        response_class=Response,
    )


# --- building -----------------------------------------------------------------------------


def _backend(
    spec: MachineSpec, config: PowerConfig, store: PowerStateStore, acks: AckBoard
) -> Backend:
    if isinstance(spec, DliMachine):
        return DliBackend(spec, spec.resolve_password())
    if isinstance(spec, CommandMachine):
        return CommandBackend(spec, store, config.password_envs())
    return WolBackend(spec, config.wol, store, acks)


def build_power_component(
    config: PowerConfig, auth: PowerAuth, state_path: Path | None
) -> PowerComponent:
    """Backends for every configured machine, behind one router."""
    store = PowerStateStore(state_path)
    acks = AckBoard()
    backends = {name: _backend(spec, config, store, acks) for name, spec in config.machines.items()}
    _warn_about_auth(auth, config)
    log.info("power.ready", machines=len(backends), state_file=str(state_path))
    return PowerComponent(config, auth, backends, acks, store)


def _warn_about_auth(auth: PowerAuth, config: PowerConfig) -> None:
    """Log at start-up when anyone may switch machines, or nobody can acknowledge one."""
    if auth.is_open:
        log.warning(
            "power.open",
            reason="no power credentials configured: anyone who can "
            "reach the service can switch machines; set --power-token-file or "
            "--power-user/--power-pass-file",
        )
    wol = any(isinstance(spec, WolMachine) for spec in config.machines.values())
    if wol and not auth.browser_can_ack:
        log.warning(
            "power.acks_unusable",
            reason="Wake-on-LAN power-offs wait for a person, but only a token is "
            "configured and a browser cannot send it: set --power-ack-pass-file so "
            "someone can use /power/acks",
        )


def add_power_arguments(parser: argparse.ArgumentParser) -> None:
    """The `serve` flags of the power target (credentials only through files or env)."""
    group = parser.add_argument_group("webhook power target")
    add_config_argument(group, "power config JSON; enables /power/ (or env MAASFLOW_POWER_CONFIG)")
    group.add_argument(
        "--power-state",
        type=Path,
        metavar="PATH",
        help="file for the last known power states (default: <state dir>/power-state.json)",
    )
    add_auth_arguments(group)
    group.add_argument(
        "--power-ack-user",
        metavar="NAME",
        help="Basic auth user for the /power/acks page only (default: ack)",
    )
    group.add_argument(
        "--power-ack-pass-file",
        type=Path,
        metavar="PATH",
        help="file holding the /power/acks page's own Basic password, so a person can "
        "acknowledge power-offs in a browser (or env MAASFLOW_POWER_ACK_PASS)",
    )
    group.add_argument(
        "--require-power-auth",
        action="store_true",
        help="with --power-config, refuse to start without power credentials instead of "
        "warning (the systemd unit sets it: its token credential is optional)",
    )


def default_state_path(args: argparse.Namespace, env: Mapping[str, str]) -> Path:
    """Beside `--db` when it is a file, else the service's state directory (as `serve` does)."""
    db = getattr(args, "db", None)
    if db and str(db) != ":memory:":
        return Path(db).parent / "power-state.json"
    return state_directory(env) / "power-state.json"


_NO_POWER_AUTH = (
    "--power-config needs power credentials here (--require-power-auth): put MAAS's "
    "power_token in /etc/maasflow/power_token (the unit's credential), or give "
    "--power-token-file or --power-user with --power-pass-file"
)


def power_router_from_args(args: argparse.Namespace) -> PowerComponent | None:
    """The power component `serve` should mount, or None without `--power-config`."""
    if not getattr(args, "power_config", None):
        return None
    config = load_power_config(Path(args.power_config))
    auth = load_power_auth(
        args.power_token_file,
        args.power_user,
        args.power_pass_file,
        ack_user=args.power_ack_user,
        ack_pass_file=args.power_ack_pass_file,
    )
    if auth.is_open and getattr(args, "require_power_auth", False):
        raise ConfigError(_NO_POWER_AUTH)
    state_path = args.power_state or default_state_path(args, os.environ)
    if state_path.is_dir():
        raise ConfigError(f"--power-state {state_path}: is a directory; name a file in it")
    return build_power_component(config, auth, state_path)
