"""The daemon's own HTTP endpoint (`-listen`, default 127.0.0.1:9410): health, metrics, state.

Four read-only routes, all GET (HEAD works too), and the control routes the caller adds
(`daemon.control`: POST, behind a Bearer token):

- `/healthz` — 200 `{"status": "ok", "reason": "ok"}` while a pass succeeded within the
  last three periods and the state store takes every write; otherwise 503 `{"status":
  "unhealthy", "reason": ...}` where the reason is what the daemon reported (`state store:
  state file ...: database or disk is full`, `MAAS unreachable: ...`, `API key rejected by
  MAAS: ...`), `loop stuck: no pass for N s`, or `starting` before the first pass.
  With several daemons on one database (`daemon.leadership`) the body also has `"role"`:
  `"leader"`, or `"standby"` (200, reason `standby`: healthy and idle), or `"lost"` (503).
- `/metrics` — Prometheus text exposition of `maasflow.daemon.metrics.Metrics`.
- `/state` — the daemon's snapshot as JSON, read by `maasflow status`; `/state?all=1` lists
  the machines the filters leave out too. Schema::

    {
      "generated_at": float,             # unix time the snapshot was taken
      "maas_url": str,
      "paused": bool,                    # `maasflow pause`
      "pass": {"count": int, "last_ok_at": float | null, "last_error": str | null},
      "machines": [{
        "system_id": str, "hostname": str, "zone": str, "pool": str,
        "status": int, "status_name": str,   # MAAS's status number and label
        "phase": str | null,                 # maasflow's lifecycle phase (null: left out)
        "reason": str,                       # why maasflow acts, or leaves it alone
        "selected": bool,                    # false: the filters leave it out
        "last_action": str | null, "last_action_at": float | null,
        "last_outcome": str | null, "attempts": int, "last_error": str | null,
        "maas_error": str | null,            # MAAS's error_description / status_message
        "backoff_action": str | null, "backoff_failures": int,
        "backoff_until": float | null, "retries": int,
        "owner": str | null, "locked": bool,  # as MAAS lists them
        "desired": {"summary": str, "set_at": float, "set_by": str}  # only with a desire
      }, ...]                                # stored over HTTP (`daemon.stored_desire`)
    }

- `/machines/{machine}` — one machine (hostname or system_id) and its recent history, read
  by `maasflow status <machine>`: `{"generated_at", "machine": <a row above> | null,
  "events": [{"system_id", "hostname", "at", "kind", "action", "outcome", "detail"}, ...],
  "desired": {"summary", "set_at", "set_by"} | null}`, events oldest first; 404 when neither
  the last pass nor the history knows it. Neither route shows a stored desire's user data.

`serve_telemetry(app, listen)` runs uvicorn inside the caller's event loop (no thread, no
signal handlers of its own: the daemon owns SIGTERM/SIGINT) and yields the real URL, so
port 0 works in tests. Health is kept in wall-clock seconds (`time.time()`), the same clock
the snapshot's timestamps use. Nothing here talks to MAAS.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from maasflow.common.errors import ConfigError
from maasflow.common.webserver import bind, serving, url_for
from maasflow.daemon.metrics import Metrics
from maasflow.daemon.setting_values import split_listen

log = structlog.get_logger(__name__)

HEALTHY_PERIODS = 3


class Health:
    """What `/healthz` answers, from the outcomes of the daemon's passes."""

    def __init__(
        self,
        period: float,
        *,
        started_at: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.period = period
        self.clock = clock
        self.started_at = clock() if started_at is None else started_at
        self.last_success_at: float | None = None
        self.last_pass_at: float | None = None
        self.last_error: str | None = None
        self.problem: str | None = None
        self.request_error: str | None = None
        self.store_errors: dict[str, str] = {}  # what the store refused (key) -> why
        self.role: str | None = None  # "leader" | "standby" | "lost" with several daemons

    def pass_ok(self, now: float | None = None) -> None:
        """A pass succeeded: healthy again, whatever went wrong before."""
        self.last_success_at = self.last_pass_at = self._now(now)
        self.last_error = self.problem = self.request_error = None

    def pass_failed(self, reason: str, now: float | None = None) -> None:
        """A pass failed; unhealthy once no pass has succeeded for three periods."""
        self.last_pass_at = self._now(now)
        self.last_error = reason

    def request_failed(self, reason: str) -> None:
        """A MAAS request failed inside a pass that may still be retrying it.

        It changes nothing while passes succeed; once they stop, it names the likely cause
        instead of a bare "loop stuck".
        """
        self.request_error = reason

    def store_failed(self, key: str, reason: str) -> None:
        """The store refused a read or write named `key`: unhealthy until `store_ok(key)`.

        A successful pass does not clear it: MAAS answering says nothing about the disk.
        """
        self.store_errors[key] = reason

    def store_ok(self, key: str) -> None:
        """The store took the read or write named `key` after all."""
        self.store_errors.pop(key, None)

    def set_problem(self, reason: str | None) -> None:
        """Unhealthy now with `reason` (e.g. the key was rejected) until a pass succeeds."""
        self.problem = reason

    def check(self, now: float | None = None) -> tuple[bool, str]:
        """(healthy, reason): healthy while a pass succeeded within the last three periods."""
        now = self._now(now)
        window = HEALTHY_PERIODS * self.period
        if self.role == "standby":
            return True, "standby"
        if self.role == "lost":
            return False, "leadership lost"
        if self.store_errors:
            return False, f"state store: {next(iter(self.store_errors.values()))}"
        if self.problem:
            return False, self.problem
        if self.last_success_at is not None and now - self.last_success_at <= window:
            return True, "ok"
        if self.last_error is not None:
            return False, self.last_error
        if self.request_error is not None:
            return False, self.request_error
        since = now - (self.started_at if self.last_pass_at is None else self.last_pass_at)
        if self.last_pass_at is None and since <= window:
            return False, "starting"
        return False, f"loop stuck: no pass for {since:.0f} s"

    def _now(self, now: float | None) -> float:
        return self.clock() if now is None else now


# -- the ASGI app -------------------------------------------------------------------------


def build_telemetry_app(
    health: Health,
    metrics: Metrics,
    snapshot: Callable[[], dict[str, Any]],
    *,
    snapshot_all: Callable[[], dict[str, Any]] | None = None,
    history: Callable[[str], dict[str, Any] | None] | None = None,
    routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The `/healthz`, `/metrics`, `/state` and `/machines/{machine}` app, plus `routes` (the
    control routes); see the module docstring."""

    async def healthz(request: Request) -> Response:
        ok, reason = health.check()
        body = {"status": "ok" if ok else "unhealthy", "reason": reason}
        if health.role is not None:
            body["role"] = health.role
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics_text(request: Request) -> Response:
        body, content_type = metrics.render()
        return Response(body, headers={"content-type": content_type})

    async def state(request: Request) -> Response:
        every = request.query_params.get("all", "") not in ("", "0", "false")
        return _state_response(snapshot_all if every and snapshot_all else snapshot)

    async def machine(request: Request) -> Response:
        key = str(request.path_params["machine"])
        try:
            doc = None if history is None else history(key)
        except Exception as exc:  # a failing store must not crash the server
            log.exception("machine history failed")
            return JSONResponse({"error": f"history failed: {exc}"}, status_code=503)
        if doc is None:
            why = "no such machine in the last pass or the history; give a hostname or system_id"
            return JSONResponse({"error": why}, status_code=404)
        return _state_response(lambda: doc)

    async def index(request: Request) -> Response:
        endpoints = ["/healthz", "/metrics", "/state", "/machines/{machine}"]
        return JSONResponse(
            {"endpoints": endpoints + [r.path for r in routes if isinstance(r, Route)]}
        )

    return Starlette(
        routes=[
            Route("/", index, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_text, methods=["GET"]),
            Route("/state", state, methods=["GET"]),
            Route("/machines/{machine}", machine, methods=["GET"]),
            *routes,
        ]
    )


def _state_response(snapshot: Callable[[], dict[str, Any]]) -> Response:
    """The snapshot as JSON; a failing snapshot is a 503 with a reason, never a 500."""
    try:
        body = json.dumps(snapshot(), default=str)
    except Exception as exc:  # any bug in the snapshot must not crash the server
        log.exception("state snapshot failed")
        return JSONResponse({"error": f"snapshot failed: {type(exc).__name__}"}, status_code=503)
    return Response(body, media_type="application/json")


# -- serving ------------------------------------------------------------------------------


def parse_listen(listen: str) -> tuple[str, int]:
    """Split `host:port` or `[v6]:port` by the settings' one rule, or raise ConfigError."""
    found = split_listen(listen)
    if found is None:
        raise ConfigError(
            f"-listen {listen!r}: expected host:port such as 127.0.0.1:9410 or [::1]:9410 "
            '(-listen "" turns the endpoint off)'
        )
    return found


def _bind(listen: str) -> socket.socket:
    """A TCP socket bound to `listen`; failures become one-line ConfigErrors."""
    host, port = parse_listen(listen)
    hint = 'choose a free port or an address of this host, or -listen "" to turn it off'
    try:
        return bind(host, port)
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"-listen {listen!r}: cannot listen ({reason}); {hint}") from None


@contextlib.asynccontextmanager
async def serve_telemetry(app: Any, listen: str) -> AsyncIterator[str]:
    """Serve `app` on `listen` in the running loop; yields `http://host:port` (real port)."""
    sock = _bind(listen)
    url = url_for(sock)
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        log_level="warning",
        access_log=False,
        limit_concurrency=64,  # a small read-only endpoint: refuse floods instead of queueing
        timeout_graceful_shutdown=2,
    )
    async with serving(config, sock):
        log.debug("telemetry endpoint listening", url=url)
        yield url
