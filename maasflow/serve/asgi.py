"""ASGI middleware of `maasflow serve`: a request-body cap, a structured access log, and
the refusal of paths with control characters.

`BodyLimit` reads a request's body before the app sees it and answers 413 once it passes the
cap (at once when `Content-Length` already says so), so no handler ever holds a huge body.
Up to 1 MiB of the excess is read and dropped first, so that the client gets the 413 rather
than a connection reset.

`AccessLog` writes one `http.request` event per request: method, path, status, duration and
client; at info, except a health probe or a metrics scrape that succeeded (`/healthz`,
`/metrics`, answered below 400), which monitoring repeats every few seconds: at debug. It
never logs headers (so never `Authorization`) nor query strings (which may carry tokens);
the path is cut short and its control characters replaced, so a hostile URL cannot forge
log lines.

`PlainPaths` answers 400 to a path holding a control character. Starlette anchors its route
patterns with `$`, which in Python also matches before a trailing newline, so `GET
/power/%0A` was the machine listing and `GET /provision/%0A` the record listing instead of a
lookup of a name that cannot exist. No name this service knows (machine, MAC, system_id,
job id) holds a control character, so such a path names nothing and is refused before
routing, whatever route it would have matched.

What this module stops at: it knows no routes; the app decides what each path means.
"""

from __future__ import annotations

import json
import re
import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger(__name__)

DEFAULT_BODY_LIMIT = 64 * 1024
DRAIN_LIMIT = 1024 * 1024  # bytes read and dropped after a 413, beyond which we just close
_PATH_LIMIT = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
CONTROL_IN_PATH = "the path holds a control character; no name here does"
PROBE_PATHS = frozenset({"/healthz", "/metrics"})  # asked every few seconds by monitoring


class BodyLimit:
    """Answer 413 to any HTTP request whose body is larger than `limit` bytes."""

    def __init__(self, app: ASGIApp, limit: int = DEFAULT_BODY_LIMIT) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared > self.limit:
            if declared <= DRAIN_LIMIT:
                await _drain(receive, DRAIN_LIMIT)
            await self._reject(send)
            return
        first = await self._read(receive)
        if first is None:
            await _drain(receive, DRAIN_LIMIT)
            await self._reject(send)
        elif first["type"] == "http.request":
            await self.app(scope, _replay(first, receive), send)
        # else the client left before its body arrived: there is no one to answer

    async def _read(self, receive: Receive) -> Message | None:
        """The whole body as one message (or the disconnect), None past the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return message
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return None
            if not message.get("more_body", False):
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

    async def _reject(self, send: Send) -> None:
        body = json.dumps({"error": f"request body too large (limit {self.limit} bytes)"})
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body.encode()})


class PlainPaths:
    """Answer 400 `{"error": ...}` to any HTTP request whose path holds a control character."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _CONTROL.search(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": CONTROL_IN_PATH})
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 400, "headers": headers})
        await send({"type": "http.response.body", "body": body.encode()})


class AccessLog:
    """Log each HTTP request once it is answered; see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            emit = log.debug if _probe(scope, status) else log.info
            emit(
                "http.request",
                method=scope.get("method", ""),
                path=safe_path(scope.get("path", "")),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                client=_client(scope),
            )


def _probe(scope: Scope, status: int) -> bool:
    """A health check or metrics scrape that went well: logged at debug, not per request."""
    return scope.get("path") in PROBE_PATHS and status < 400


def safe_path(path: str) -> str:
    """`path` fit for a log line: short, without control characters."""
    shown = _CONTROL.sub("?", path[:_PATH_LIMIT])
    return shown + "..." if len(path) > _PATH_LIMIT else shown


async def _drain(receive: Receive, limit: int) -> None:
    """Read and drop the rest of a body (up to `limit` bytes) so the 413 reaches the client.

    A server that answers and closes while request bytes are still unread makes the kernel
    reset the connection, and most clients then report the reset, not the 413.
    """
    size = 0
    while size <= limit:
        message = await receive()
        size += len(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def _replay(first: Message, receive: Receive) -> Receive:
    """A `receive` that gives `first`, then whatever the server sends next."""
    pending = [first]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


def _client(scope: Scope) -> str:
    client = scope.get("client")
    if not client:
        return ""
    host, port = client[0], client[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
