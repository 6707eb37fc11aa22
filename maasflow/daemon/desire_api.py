"""The desired-state routes: an orchestrator says per machine what it should be, over `-listen`.

    GET    /machines/{machine}/desired  the stored desire ("source": "api", with when and by
                                        whom), else the one the last pass used ("source":
                                        "default" or the rule's label)        -> 200
    PUT    /machines/{machine}/desired  body: a JSON object of `Desire` fields (target,
                                        distro_series, hwe_kernel, user_data, install_kvm,
                                        ephemeral_deploy, enable_hw_sync, comment, power,
                                        release, redeploy, provision); stored, it wins over
                                        the rules from the next pass          -> 200 as GET
    DELETE /machines/{machine}/desired  back to the rules  -> 200 {"deleted": bool, ...}

`{machine}` is a hostname or a system_id. A machine the last pass did not list answers 404
(GET and DELETE also find a stored desire by its system_id or hostname); a PUT for one
maasflow cannot touch (the filters leave it out, it is locked, another MAAS user owns it)
answers 409 with why; a bad field answers 400 with `Desire.parse`'s one line; a store that
refused the write answers 503 and nothing changed. Every PUT and DELETE is an operator
event in the machine's history.

Every route requires `Authorization: Bearer <token>`: the token of `-desire-token-file`
(`DESIRE_TOKEN_FILE`), which opens these routes only, so an orchestrator holding it cannot
pause the daemon; or the control token (`daemon.control`), the operator's, which opens
every route. With neither configured the routes answer 403 saying how to turn them on. An
optional `X-Maasflow-By` header names who asks (recorded with the peer's address and the
kind of token). Answers are JSON; errors are `{"error": ...}` and never echo a token.
`maasflow desire` is the client (`daemon.desire_client`); what is stored, and when it is
acted on, is the daemon's (`daemon.desired_states`, `Daemon.desire_for`).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from maasflow.common.bearer import MISSING, WRONG, credentials, refusal
from maasflow.common.errors import ConfigError, StoreError
from maasflow.common.safe_text import escape
from maasflow.daemon.desired_states import Untouchable

log = structlog.get_logger(__name__)

REALM = 'Bearer realm="maasflow-desired"'
PATH = "/machines/{machine}/desired"
BY_HEADER = "x-maasflow-by"
MAX_BODY = 160 * 1024  # bytes: 64 KiB of user data, JSON-escaped, and the other fields
MAX_BY = 64
OFF = (
    "the desired-state API is off: start the daemon with -desire-token-file FILE "
    "(DESIRE_TOKEN_FILE) or -control-token-file FILE, and give maasflow desire that token"
)
NOT_LISTED = "no such machine in the last pass; give its hostname or system_id"


class DesireHolder(Protocol):
    """What the routes read and change: the daemon's `DesiredStates`."""

    def show(self, key: str) -> dict[str, Any]: ...

    def store(self, key: str, raw: dict[str, Any], by: str) -> dict[str, Any]: ...

    def clear(self, key: str, by: str) -> dict[str, Any]: ...


def desire_routes(
    holder: DesireHolder, desire_token: str | None, control_token: str | None
) -> list[Route]:
    """The route, behind the desire or the control token (403 when neither is set)."""
    tokens = {name: t for name, t in (("desire", desire_token), ("control", control_token)) if t}

    async def desired(request: Request) -> Response:
        if not tokens:
            return _error(403, OFF)
        given = credentials(request.headers.get("authorization"))
        token_name = _matching(given, tokens)
        if token_name is None:
            why = MISSING if given is None else WRONG
            log.warning("desired-state request refused", path=request.url.path, reason=why)
            return _error(401, why, {"WWW-Authenticate": REALM})
        key = str(request.path_params["machine"])
        try:
            return await _answer(holder, request, key, _by(request, token_name))
        except LookupError:
            return _error(404, NOT_LISTED)
        except Untouchable as exc:
            return _error(409, f"maasflow cannot touch this machine: {exc}")
        except ConfigError as exc:
            return _error(400, str(exc))
        except StoreError as exc:
            return _error(503, f"not stored: {exc}")

    return [Route(PATH, desired, methods=["GET", "PUT", "DELETE"])]


async def _answer(holder: DesireHolder, request: Request, key: str, by: str) -> Response:
    if request.method == "GET":
        return JSONResponse(holder.show(key))
    if request.method == "DELETE":
        return JSONResponse(holder.clear(key, by))
    return JSONResponse(holder.store(key, await _body(request), by))


def _matching(given: str | None, tokens: dict[str, str]) -> str | None:
    """The name of the token `given` is ("desire", "control"); None when it is none of them."""
    if given is None:
        return None
    return next((name for name, token in tokens.items() if refusal(given, token) is None), None)


async def _body(request: Request) -> dict[str, Any]:
    """The PUT's JSON object; ConfigError (a 400) naming what is wrong with it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise ConfigError(f"body: larger than {MAX_BODY} bytes")
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ConfigError(f"body: larger than {MAX_BODY} bytes")
    try:
        doc = json.loads(raw)
    except ValueError:
        raise ConfigError("body: not JSON; send a JSON object of the desired fields") from None
    if not isinstance(doc, dict):
        raise ConfigError("body: expected a JSON object of the desired fields, e.g. "
                          '{"target": "deployed", "distro_series": "jammy"}')  # fmt: skip
    return doc


def _by(request: Request, token_name: str) -> str:
    """Who asks: the `X-Maasflow-By` name (escaped, clipped), the token's kind, the peer."""
    who = escape(request.headers.get(BY_HEADER, "").strip()[:MAX_BY]) or "unnamed"
    peer = request.client.host if request.client else "unknown peer"
    return f"{who} ({token_name} token, from {peer})"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)
