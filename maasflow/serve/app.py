"""The ASGI app of `maasflow serve`: its configuration, routes, error shapes and lifespan.

`build_app(config, power)` opens the record store (an SQLite file; or, for a PostgreSQL URL,
the queue replicas share: `shared_pool`), builds the job pool and lets it take over
what a dead service left (`JobPool.recover`: runs still alive are adopted and waited for,
results they left are recorded, the rest fail "interrupted by restart"), and mounts:

    /provision/...   the provisioning API (`provision_api`), behind `config.provision_token`
                     when one is set (`provision_auth`)
    /power/...       the webhook power target, when a `PowerComponent` is given
    /healthz         {"status": "ok", "workers", "queue", "running"}
    /metrics         Prometheus text (`serve.metrics`): jobs by state, job durations, power
                     requests by backend/action/outcome, power-offs waiting for an ack
    /openapi.json    FastAPI's schema of all of the above

FastAPI (rather than bare Starlette) because the request models double as the published
schema: `/openapi.json` is what the code validates, and schemathesis tests it.

The lifespan starts the workers; on shutdown it stops them (running jobs' process groups are
killed, pending and running records become failed, "interrupted by shutdown"), closes the
power component, then the store.

What this module stops at: it binds no socket; `server` runs the app under uvicorn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from maasflow.common.errors import ConfigError
from maasflow.common.postgres import PostgresUrl
from maasflow.serve.asgi import DEFAULT_BODY_LIMIT, AccessLog, BodyLimit, PlainPaths
from maasflow.serve.jobs import JobPool, PoolLimits
from maasflow.serve.metrics import ServeMetrics
from maasflow.serve.postgres_records import PostgresRecords
from maasflow.serve.provision_api import PREFIX, error, provision_router
from maasflow.serve.records import MEMORY, Records, RecordStore, Status
from maasflow.serve.roles import ScriptPicker
from maasflow.serve.shared_pool import SharedJobPool

if TYPE_CHECKING:
    from maasflow.serve.power_api import PowerComponent

DEFAULT_PORT = 9420
_MAX_ERRORS_SHOWN = 5


@dataclass(frozen=True)
class ServiceConfig:
    """Everything `maasflow serve` needs besides where to listen; paths already checked."""

    script: Path | None = None
    role_scripts: Mapping[str, Path] = field(default_factory=dict)
    allowed_scripts: Mapping[str, Path] = field(default_factory=dict)
    default_role: str = "compute"
    role_selector_url: str | None = None
    workers: int = 5
    job_timeout: float = 3600.0
    queue_limit: int = 100
    kill_grace: float = 5.0
    db: Path | str | PostgresUrl = MEMORY
    db_password: str | None = field(default=None, repr=False)  # for a PostgreSQL `db`
    heartbeat: float = 10.0  # replicas on PostgreSQL: seconds between liveness stamps
    runs_dir: Path | None = None  # replicas on PostgreSQL: where runs' result files wait
    max_body: int = DEFAULT_BODY_LIMIT
    tls_cert: Path | None = None
    tls_key: Path | None = None
    provision_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"--workers {self.workers}: must be at least 1")
        if self.queue_limit < 1:
            raise ConfigError(f"--queue-limit {self.queue_limit}: must be at least 1")
        if not self.job_timeout > 0:
            raise ConfigError(f"--job-timeout {self.job_timeout}: must be more than 0 seconds")
        if not self.heartbeat > 0:
            raise ConfigError(f"--heartbeat {self.heartbeat}: must be more than 0 seconds")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key: give both or neither")

    def picker(self) -> ScriptPicker:
        return ScriptPicker(
            script=self.script,
            named={**self.role_scripts, **self.allowed_scripts},
            default_role=self.default_role,
            selector_url=self.role_selector_url,
        )

    def limits(self) -> PoolLimits:
        return PoolLimits(
            workers=self.workers,
            queue_limit=self.queue_limit,
            timeout=self.job_timeout,
            kill_grace=self.kill_grace,
        )


def build_app(config: ServiceConfig, power: PowerComponent | None = None) -> FastAPI:
    """The app for `config`, with `power`'s routes when given; see the module docstring."""
    metrics = ServeMetrics(_version())
    hidden = power.secret_env_names() if power is not None else ()
    pool = _pool(config, hidden, metrics.observe_job)
    pool.recover()
    app = FastAPI(
        title="maasflow serve",
        version=_version(),
        summary="Provisioning service (opencord provisioner API) and MAAS webhook power target",
        lifespan=_lifespan(pool, power),
    )
    app.state.pool = pool
    app.include_router(provision_router(pool, config.provision_token))
    if power is not None:
        app.include_router(power.router)
    _add_health(app, pool)
    _add_metrics(app, metrics, pool.store, power)
    _add_error_shapes(app)
    _document_error_shapes(app)
    app.add_middleware(PlainPaths)  # inside BodyLimit: the body is read before a 400
    app.add_middleware(BodyLimit, limit=config.max_body)
    app.add_middleware(AccessLog)
    return app


def _pool(
    config: ServiceConfig, hidden: Collection[str], on_end: Callable[[Status, float], None]
) -> JobPool:
    """One service's pool on SQLite, or a replica's on PostgreSQL (`shared_pool`)."""
    if isinstance(config.db, PostgresUrl):
        shared = PostgresRecords(config.db, config.db_password)
        return SharedJobPool(
            shared, config.picker(), config.limits(), hidden, config.runs_dir, on_end,
            heartbeat=config.heartbeat,
        )  # fmt: skip
    store = RecordStore(config.db)
    return JobPool(store, config.picker(), config.limits(), hidden, runs_dir(config.db), on_end)


def runs_dir(db: Path | str) -> Path | None:
    """Where jobs' result files wait for the records: beside `db` (`serve-runs/` for
    `serve.sqlite`); None (a temporary one) when records are kept in memory."""
    if str(db) == MEMORY:
        return None
    path = Path(db)
    return path.with_name(f"{path.stem}-runs")


def _version() -> str:
    try:
        return version("maasflow")
    except PackageNotFoundError:
        return "0"


def _lifespan(pool: JobPool, power: PowerComponent | None) -> Any:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        pool.start()
        try:
            yield
        finally:
            await pool.stop("interrupted by shutdown")
            if power is not None:
                await power.aclose()
            pool.store.close()

    return lifespan


def _add_health(app: FastAPI, pool: JobPool) -> None:
    @app.get("/healthz", tags=["service"], summary="liveness and load")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "workers": pool.limits.workers,
            "queue": pool.pending,
            "running": pool.running,
        }


def _add_metrics(
    app: FastAPI, metrics: ServeMetrics, store: Records, power: PowerComponent | None
) -> None:
    """`GET /metrics`: Prometheus text (`serve.metrics`); left out of the OpenAPI schema."""
    metrics.watch_jobs(store.counts)
    if power is not None:
        power.observe = metrics.observe_power
        metrics.watch_acks(lambda: len(power.acks.pending()))

    @app.get("/metrics", include_in_schema=False)
    async def metrics_text() -> Response:
        body, content_type = metrics.render()
        return Response(body, headers={"content-type": content_type})


def _add_error_shapes(app: FastAPI) -> None:
    """`{"error": ...}` with 400 for invalid requests on the provisioning paths only."""

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if not _is_provisioning(request):
            return await request_validation_exception_handler(request, exc)
        return error(400, _summary(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if not _is_provisioning(request):
            return await http_exception_handler(request, exc)
        return JSONResponse({"error": str(exc.detail)}, exc.status_code, dict(exc.headers or {}))

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)


def _document_error_shapes(app: FastAPI) -> None:
    """Drop FastAPI's 422 from the provisioning paths' schema: they answer 400 instead."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            for path, operations in generate().get("paths", {}).items():
                if path == PREFIX or path.startswith(PREFIX + "/"):
                    for operation in operations.values():
                        operation.get("responses", {}).pop("422", None)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def _is_provisioning(request: Request) -> bool:
    path: str = request.url.path
    return path == PREFIX or path.startswith(PREFIX + "/")


def _summary(exc: RequestValidationError) -> str:
    """The first few validation errors as `field: reason; ...`, without echoing input."""
    parts = []
    for err in list(exc.errors())[:_MAX_ERRORS_SHOWN]:
        if err.get("type") == "json_invalid":
            parts.append("body: not valid JSON")
            continue
        if tuple(err.get("loc", ())) == ("body",) and err.get("type") != "missing":
            parts.append("body: expected a JSON object")
            continue
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"
