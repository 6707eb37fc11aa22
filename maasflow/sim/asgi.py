"""The raw ASGI application: bytes in, faults, the API, the request log, bytes out.

Per request: read the whole body (over 16 MiB → 413), decode it into a `Request` (a body
that is not a valid form → 400), and for API paths wait the fault latency and roll for a
fault. The error faults (500, 503, 409) and `drop` stand in for the handler, so that write
never happens. The after-handler faults (`drop_after`, `truncate`, `malformed`) run the
handler first, for GETs and writes alike, and then lose or spoil its answer: in MAAS a
mangled or lost reply to a write still means the change was committed. A dropped connection
aborts the socket without a response: uvicorn's `send` is a bound method of its per-request
cycle, whose `transport` we abort; if that is ever not available, the response is started
with a Content-Length and cut short instead, which a client sees the same way. API answers
carry `X-MAAS-API-Hash` (the hash of the API description) and `Vary: Authorization` as
MAAS's do; `describe/` does not. A request without a Host header (HTTP/1.0) is given the
server's address, as Django falls back to SERVER_NAME and SERVER_PORT. Every request, faulted or
not, is appended to the request log with the handler's own status (`outcome`, None when the
handler did not run), so the log knows which ops took effect.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog

from maasflow.sim.api import Api, Call, carries_api_hash, is_api
from maasflow.sim.faults import AFTER_HANDLER, FaultInjector, spoil
from maasflow.sim.http import BadBody, Request, Response, parse_body, parse_query, text
from maasflow.sim.requestlog import RequestLog, RequestRecord, redact

log = structlog.get_logger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY = 16 * 1024 * 1024


class TooLarge(Exception):
    """The request body exceeds MAX_BODY."""


class SimApp:
    """ASGI 3 application serving one simulator."""

    def __init__(self, api: Api, injector: FaultInjector, request_log: RequestLog) -> None:
        self._api = api
        self._injector = injector
        self._log = request_log
        self._api_headers = {"X-MAAS-API-Hash": api.api_hash, "Vary": "Authorization"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.time()
        try:
            request = await _read_request(scope, receive)
        except TooLarge:
            await _send(send, text(413, "Request body too large."))
            return
        except BadBody:
            await _send(send, text(400, "Could not parse the request body as a form."))
            return
        call = Call(request)
        fault = await self._roll(request)
        if fault == "drop":
            self._record(call, None, started, fault, outcome=None)
            await _drop(send)
            return
        response, outcome = await self._answer(call, fault)
        if fault == "drop_after":
            self._record(call, None, started, fault, outcome)
            await _drop(send)
            return
        if carries_api_hash(request.path):
            response.headers = self._api_headers | response.headers
        self._record(call, response.status, started, fault, outcome)
        await _send(send, response)

    async def _roll(self, request: Request) -> str | None:
        if not is_api(request.path):
            return None
        await self._injector.delay()
        return self._injector.pick()

    async def _answer(self, call: Call, fault: str | None) -> tuple[Response, int | None]:
        """The response to send and the handler's own status (None: it did not run)."""
        if fault is not None and fault not in AFTER_HANDLER:
            return self._injector.response(fault), None
        answer = await self._safe_handle(call)
        if fault in ("truncate", "malformed"):
            return spoil(fault, answer), answer.status
        return answer, answer.status

    async def _safe_handle(self, call: Call) -> Response:
        try:
            return await self._api.handle(call)
        except Exception as exc:  # last line of defence: never let a bug kill the server
            log.error("sim_handler_crashed", path=call.request.path, error=type(exc).__name__)
            return text(500, f"Internal server error: {type(exc).__name__}")

    def _record(
        self,
        call: Call,
        status: int | None,
        started: float,
        fault: str | None,
        outcome: int | None,
    ) -> None:
        request = call.request
        self._log.append(
            RequestRecord(
                method=request.method,
                path=request.path,
                op=request.op,
                status=status,
                time=started,
                params=redact(request.params()),
                system_id=call.system_id,
                user=call.user.username if call.user else None,
                fault=fault,
                outcome=outcome,
                dry_run=call.dry_run,
            )
        )


async def _read_request(scope: Scope, receive: Receive) -> Request:
    body = await _read_body(receive)
    headers = {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in scope.get("headers", [])
    }
    server = scope.get("server")
    if "host" not in headers and server:
        host, port = server[0], server[1]
        headers["host"] = f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return Request(
        method=str(scope.get("method", "GET")).upper(),
        path=str(scope.get("path", "/")),
        query=parse_query(scope.get("query_string", b"")),
        form=parse_body(headers.get("content-type", ""), body),
        headers=headers,
    )


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise TooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send(send: Send, response: Response) -> None:
    headers = [
        (b"content-type", response.content_type.encode("latin-1")),
        (b"content-length", str(len(response.body)).encode("latin-1")),
    ]
    headers += [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in response.headers.items()
    ]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body, "more_body": False})


async def _drop(send: Send) -> None:
    """Close the connection without answering (see the module docstring)."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if isinstance(transport, asyncio.Transport):
        transport.abort()
        await asyncio.sleep(0)  # let the server see the connection is gone
        await asyncio.sleep(0)
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", b"1000")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"{", "more_body": True})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
