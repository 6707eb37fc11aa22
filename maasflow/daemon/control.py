"""The daemon's control routes: pause, resume and retry one machine, over `-listen`.

    POST /control/pause             no new MAAS writes or provisioning starts; running ones
                                    finish, provisioning polls go on    -> 200 {"paused": true}
    POST /control/resume            act again from the next pass       -> 200 {"paused": false}
    POST /control/retry/{machine}   clear what holds the machine back (backoff, retry budget,
                                    a failed provisioning's wait); 404 when the last pass did
                                    not list it (hostname or system_id); 503 when the state
                                    file refused the change

Every route requires `Authorization: Bearer <token>`, the token of `-control-token-file`
(`CONTROL_TOKEN_FILE`), checked by `maasflow.common.bearer` as serve checks its provisioning
token: a missing or wrong one answers 401 with `WWW-Authenticate`. With no token file the
routes answer 403 saying how to turn them on: the read-only endpoint may listen on more than
loopback, and switching the daemon must not be open to whoever reaches it. Answers are JSON;
errors are `{"error": ...}` and never echo the token. `maasflow pause|resume|retry` is the
client (`daemon.control_client`). What a pause or a retry does is the daemon's
(`Daemon.pause`, `Daemon.retry`); this module checks the caller and translates.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from maasflow.common.bearer import credentials, refusal
from maasflow.common.errors import StoreError

log = structlog.get_logger(__name__)

REALM = 'Bearer realm="maasflow-control"'
PREFIX = "/control"
OFF = (
    "control is off: start the daemon with -control-token-file FILE (CONTROL_TOKEN_FILE) "
    "and give maasflow pause|resume|retry the same token"
)


class Controls(Protocol):
    """What the routes switch: the daemon."""

    paused: bool

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def retry(self, key: str) -> dict[str, Any]:
        """Raises LookupError when no machine is known by `key`."""
        ...


Handler = Callable[[Request], Awaitable[Response]]


def control_routes(controls: Controls, token: str | None) -> list[Route]:
    """The three routes, each behind `token` (off, 403, when it is None)."""

    async def pause(_request: Request) -> Response:
        controls.pause()
        return JSONResponse({"paused": True})

    async def resume(_request: Request) -> Response:
        controls.resume()
        return JSONResponse({"paused": False})

    async def retry(request: Request) -> Response:
        machine = str(request.path_params["machine"])
        try:
            return JSONResponse(controls.retry(machine))
        except LookupError:
            why = "no such machine in the last pass; give its hostname or system_id"
            return _error(404, why)
        except StoreError as exc:  # what was cleared before the store failed stays cleared
            return _error(503, f"retry incomplete: {exc}")

    return [
        Route(f"{PREFIX}/pause", _guarded(pause, token), methods=["POST"]),
        Route(f"{PREFIX}/resume", _guarded(resume, token), methods=["POST"]),
        Route(f"{PREFIX}/retry/{{machine}}", _guarded(retry, token), methods=["POST"]),
    ]


def _guarded(handler: Handler, token: str | None) -> Handler:
    """`handler`, answered only for a request bearing `token`."""

    async def guarded(request: Request) -> Response:
        if token is None:
            return _error(403, OFF)
        why = refusal(credentials(request.headers.get("authorization")), token)
        if why is not None:
            log.warning("control request refused", path=request.url.path, reason=why)
            return _error(401, why, {"WWW-Authenticate": REALM})
        log.info("control request", path=request.url.path)
        return await handler(request)

    return guarded


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)
