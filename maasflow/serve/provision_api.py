"""The provisioning API of `maasflow serve`, compatible with the opencord provisioner.

    POST   /provision/            {"id", "name", "ip", "mac", "role"?, "script"?, "deploy_id"?}
                                  → 202 + record (200 + record: that deploy is complete)
    GET    /provision/            every record (a list)
    GET    /provision/{id}        202 while pending or running, 200 once complete or failed
    DELETE /provision/{id}        200; a running job's process group is killed first
    GET    /provision/{id}/log    the job's output so far (text/plain, last 64 KiB)

A POST for an id that is pending or running answers 202 with the record and starts nothing.
`deploy_id` (optional; the daemon sends one per deploy, new at each redeploy) makes a POST
idempotent: repeated for a deploy whose job completed, it answers 200 with that record and
starts nothing. Otherwise a POST for a finished id (a failed one of the same deploy: a
retry) starts a new run whose record replaces the old one. Past the queue limit a POST
answers 429 with `Retry-After`.

Validation, and what it means for safety: every value ends up as one argv element of the
script (never a shell), so it may contain `;` or spaces, but not control characters (a NUL
cannot even be passed). `id`, `deploy_id` and `role` are names (letters, digits, `. _ : -`)
because they appear in URLs, file names and script look-ups; `name` is stripped, and must
not be empty nor start with `-` (a script would take it for an option); `ip` must parse as
an IP address and is passed in canonical form; `mac` may be missing or empty (the daemon has
no MAC for some machines) and is otherwise passed as lowercase `aa:bb:cc:dd:ee:ff`. `script`
is only ever the NAME of a script configured on the service, never a path. Unknown fields
are ignored, as the Go provisioner's JSON decoding did. With a token configured
(`provision_auth`) every route answers 401 without `Authorization: Bearer <token>`. Invalid
requests get 400 `{"error": "..."}` (the app maps FastAPI's 422 to 400 on these paths), and
so does any path holding a control character (`/provision/%0A` is no listing; see
`asgi.PlainPaths`).

What this module stops at: HTTP shapes only; the pool runs jobs, the store keeps records.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from maasflow.serve.jobs import JobPool, QueueFull
from maasflow.serve.provision_auth import token_dependencies
from maasflow.serve.records import JobRequest, Record

PREFIX = "/provision"
RETRY_AFTER_SECONDS = 5
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAC = re.compile(r"[0-9a-f]{2}([:-]?)(?:[0-9a-f]{2}\1){4}[0-9a-f]{2}")


class ProvisionBody(BaseModel):
    """What a client may POST; see the module docstring for the rules."""

    model_config = ConfigDict(extra="ignore")

    id: Annotated[str, Field(pattern=ID_PATTERN, description="the machine's id (system_id)")]
    name: Annotated[str, Field(min_length=1, max_length=253, description="its hostname")]
    ip: Annotated[str, Field(min_length=1, max_length=64, description="an IPv4 or IPv6 address")]
    mac: Annotated[str, Field(max_length=32, description="its boot MAC; may be empty")] = ""
    role: Annotated[str | None, Field(max_length=64, description="overrides role selection")] = None
    script: Annotated[
        str | None, Field(max_length=64, description="the NAME of a script configured here")
    ] = None
    deploy_id: Annotated[
        str | None,
        Field(pattern=ID_PATTERN, description="names one deploy: a repeated POST is idempotent"),
    ] = None

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str) -> str:
        if _CONTROL.search(value):
            raise ValueError("must not contain control characters")
        value = value.strip()
        if not value:
            raise ValueError("must not be empty or only whitespace")
        if value.startswith("-"):
            raise ValueError("must not start with '-' (a script would read it as an option)")
        return value

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            raise ValueError("not an IPv4 or IPv6 address") from None

    @field_validator("mac")
    @classmethod
    def _mac(cls, value: str) -> str:
        digits = value.strip().lower()
        if not digits:
            return ""
        if not _MAC.fullmatch(digits):
            raise ValueError("not a MAC address (expected aa:bb:cc:dd:ee:ff)")
        bare = digits.replace(":", "").replace("-", "")
        return ":".join(bare[i : i + 2] for i in range(0, 12, 2))

    @field_validator("role", "script")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not re.fullmatch(NAME_PATTERN, value):
            raise ValueError("expected a name made of letters, digits, '.', '_' or '-'")
        return value

    def to_request(self) -> JobRequest:
        return JobRequest(
            self.id, self.name, self.ip, self.mac, self.role, self.script, self.deploy_id
        )


class RequestOut(BaseModel):
    id: str
    name: str
    ip: str
    mac: str
    role: str | None
    script: str | None
    deploy_id: str | None = Field(None, description="present when the request carried one")


class RecordOut(BaseModel):
    request: RequestOut
    worker: int | None
    status: int = Field(description="0 pending, 1 running, 2 complete, 3 failed")
    status_name: str
    message: str
    timestamp: int = Field(description="unix seconds of the last change")
    role: str | None = Field(description="the role the job runs with, once chosen")


class ErrorOut(BaseModel):
    error: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "invalid request"},
    413: {"model": ErrorOut, "description": "request body too large"},
}
_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "missing or wrong bearer token"}
}
_UNKNOWN: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "no record"}}
# Every route: a path with a control character is refused before routing (asgi.PlainPaths).
_PLAIN_PATHS: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "invalid request, or a control character in the path",
        "content": {"application/json": {"schema": ErrorOut.model_json_schema()}},
    }
}


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The API's error shape: `{"error": message}`."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def provision_router(pool: JobPool, token: str | None = None) -> APIRouter:
    """The routes above, answering from `pool`; each requires `token` as a Bearer when set."""
    router = APIRouter(
        prefix=PREFIX,
        tags=["provisioning"],
        dependencies=token_dependencies(token),
        responses=_PLAIN_PATHS if token is None else {**_PLAIN_PATHS, **_UNAUTHORIZED},
    )
    _add_submit(router, pool)
    _add_reads(router, pool)
    _add_delete(router, pool)
    return router


def _add_submit(router: APIRouter, pool: JobPool) -> None:
    responses: dict[int | str, dict[str, Any]] = {
        **_ERRORS,
        200: {"model": RecordOut, "description": "this deploy_id's job completed: its record"},
        202: {"model": RecordOut, "description": "accepted, or already pending or running"},
        429: {"model": ErrorOut, "description": "queue full; see Retry-After"},
    }

    @router.post("/", status_code=202, responses=responses, summary="queue a provisioning run")
    async def submit(body: Annotated[ProvisionBody, Body()]) -> Response:
        if body.script is not None and not pool.picker.allows(body.script):
            return error(400, f"script: {body.script!r} is not a script configured on the service")
        try:
            record, _ = pool.submit(body.to_request())
        except QueueFull:
            headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
            return error(429, "too many pending jobs; retry later", headers)
        return JSONResponse(record.to_json(), status_code=_code(record))

    router.add_api_route("", submit, methods=["POST"], status_code=202, include_in_schema=False)


def _add_reads(router: APIRouter, pool: JobPool) -> None:
    one: dict[int | str, dict[str, Any]] = {
        **_UNKNOWN,
        200: {"model": RecordOut, "description": "complete or failed"},
        202: {"model": RecordOut, "description": "pending or running"},
    }

    @router.get("/", response_model=list[RecordOut], summary="every record")
    async def list_records() -> Response:
        return JSONResponse([record.to_json() for record in pool.store.all()])

    @router.get("/{job_id}", responses=one, summary="one record")
    async def get_record(job_id: str) -> Response:
        record = pool.store.get(job_id)
        if record is None:
            return error(404, f"no record for id {job_id[:128]!r}")
        return JSONResponse(record.to_json(), status_code=_code(record))

    log_responses: dict[int | str, dict[str, Any]] = {
        200: {"description": "the last 64 KiB of its stdout and stderr"},
        404: {"content": {"application/json": {"schema": ErrorOut.model_json_schema()}}},
    }

    @router.get(
        "/{job_id}/log",
        response_class=PlainTextResponse,
        responses=log_responses,
        summary="the job's output so far",
    )
    async def get_log(job_id: str) -> Response:
        output = pool.output(job_id)
        if output is None:
            return error(404, f"no record for id {job_id[:128]!r}")
        return PlainTextResponse(output)


def _add_delete(router: APIRouter, pool: JobPool) -> None:
    responses: dict[int | str, dict[str, Any]] = {
        **_UNKNOWN,
        200: {"model": RecordOut, "description": "deleted; the record as it ended"},
    }

    @router.delete("/{job_id}", responses=responses, summary="stop a job and forget it")
    async def delete_record(job_id: str) -> Response:
        record = await pool.delete(job_id)
        if record is None:
            return error(404, f"no record for id {job_id[:128]!r}")
        return JSONResponse(record.to_json())


def _code(record: Record) -> int:
    return 200 if record.finished else 202
