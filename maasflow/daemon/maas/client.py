"""`MaasClient`: the only code in maasflow that speaks HTTP to MAAS (API 2.0).

One `httpx.AsyncClient` per instance keeps connections alive between passes; every request is
signed afresh by `MaasAuth` (new nonce and timestamp, retries included). Conventions follow
`maas-api-facts.md` §0: every path ends with ``/``, a named operation goes in the query
string as ``op=``, other parameters go in an urlencoded form body with lists as repeated keys
(as juju/gomaasapi's `client.go` sends them, for POST and PUT alike).

Each call is retried with capped, jittered exponential backoff (`maasflow.common.backoff`)
when MAAS or the network is only busy (see `maasflow.daemon.maas.responses` for which
answers those are); after the last attempt it raises `TemporaryMaasError`. Everything else
becomes a typed `PermanentMaasError` at once. Reads get `max_attempts`; writes get
`write_attempts` (default the same): the daemon sends its writes from action slots, so it
asks for one attempt and retries on a later pass instead of waiting with a slot held. A 200
whose JSON is unreadable is retried when the request was a GET; after a write, the machine
is read back with a GET instead, so a write is never repeated because its answer was
garbled. The machine listing is parsed as it arrives (`maasflow.daemon.maas.listing`), never
held whole; a machine entry that does not validate is skipped with a warning, not the listing.

`read_only=True` refuses every non-GET before it is sent (preview's defence in depth), and
`before_write` (the daemon's leadership fence) is called before each write is sent, so a
daemon that lost its leadership raises instead of writing.
Answers are read as a stream and refused (`AnswerTooLarge`, permanent) once larger than
`max_answer_bytes` (decoded, so a gzip bomb counts at its real size), before the rest is
read: a 200 MB listing cost 846 MB of memory. `on_progress` is called whenever a call moves
(an attempt starts, a piece of an answer arrives, a pause begins), never more than
`longest_silence_s` apart while it works: the daemon's watchdog counts on that. Given a
`key_source` (a callable returning the key as it is now, e.g. read again from its file), a 401
makes the client ask it once: a different key replaces the old one and the request is sent
again with it (a 401 means MAAS did nothing, so even a write may be repeated), so a rotated
key needs no restart. The client knows nothing of filters, the lifecycle or provisioning, nor
where the key comes from.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import SplitResult, urlsplit

import httpx
import structlog

from maasflow import __version__
from maasflow.common.backoff import Backoff
from maasflow.common.errors import (
    BadRequest,
    ConfigError,
    MaasflowError,
    NotFound,
    PermanentMaasError,
    TemporaryMaasError,
    Unauthorized,
)
from maasflow.daemon.maas.auth import MaasAuth
from maasflow.daemon.maas.decoding import (
    Decoder,
    Streamed,
    UnreadableAnswer,
    decode_object,
    ignore_body,
    model_decoder,
)
from maasflow.daemon.maas.event_log import (
    EVENTS_LEVEL,
    EVENTS_LIMIT,
    EventPage,
    decode_event_page,
)
from maasflow.daemon.maas.listing import LISTING, ListedMachine
from maasflow.daemon.maas.models import Machine, User
from maasflow.daemon.maas.responses import error_for, message_of

log = structlog.get_logger(__name__)

T = TypeVar("T")
FormValue = str | int | bool | Sequence[str]

SUPPORTED_API_VERSION = "2.0"
# A real machine object is ~8.7 KB, so 10,000 machines list in ~87 MB: room for ~30,000.
DEFAULT_MAX_ANSWER_BYTES = 256 * 1024 * 1024
REQUEST_TIMEOUT_S = 30.0  # httpx's limit on each of: a pooled connection, connect, send, a read
BACKOFF_CAP_S = 30.0  # the longest pause between attempts (a Retry-After is capped to it)
# Before the first byte of an answer an attempt may wait for each of those four in turn.
_STEPS_BEFORE_AN_ANSWER = 4
_CAP_SETTING = "-max-answer-size, MAAS_MAX_ANSWER_SIZE"
# MAAS system_ids are short [0-9a-z] strings; anything else is refused rather than put in a
# URL path (a hostile "../" must never reach another endpoint).
_SYSTEM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.~-]{0,127}")
# MAAS's own rule for tag names (src/maasserver/models/tag.py, Tag._tag_name_regex, 3.6).
TAG_NAME = re.compile(r"[a-zA-Z0-9_-]{1,256}")
_API_SUFFIX = re.compile(r"/api/([^/]*)$")


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One attempt of one request, as handed to the `on_response` hook (metrics)."""

    method: str
    path: str
    op: str | None
    status: int | None  # None when no response arrived (connection error, timeout)
    duration_s: float
    attempt: int


def api_urls(base_url: str, api_version: str = SUPPORTED_API_VERSION) -> tuple[str, str]:
    """(MAAS root URL, API root URL) from a user's URL such as ``http://host:5240/MAAS``.

    A trailing slash and an ``/api/2.0/`` suffix are both accepted. Raises ConfigError.
    """
    _check_version(api_version, "API version (-apiVersion, MAAS_API_VERSION)")
    parts = _split_url(base_url)
    path = parts.path.rstrip("/")
    suffix = _API_SUFFIX.search(path)
    if suffix:
        _check_version(suffix.group(1), "API version in the MAAS URL (-maas, MAAS_URL)")
        path = path[: suffix.start()]
    root = f"{parts.scheme}://{parts.netloc}{path}"
    return root, f"{root}/api/{api_version}/"


def _split_url(base_url: str) -> SplitResult:
    shown = repr(base_url.strip()[:200])
    try:
        parts = urlsplit(base_url.strip())
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        raise ConfigError(
            f"MAAS URL (-maas, MAAS_URL) {shown} has a bad host or port; "
            "use e.g. http://localhost:5240/MAAS"
        ) from None
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            "MAAS URL (-maas, MAAS_URL) must not carry a user or password; "
            "MAAS authenticates with the API key"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise ConfigError(
            f"MAAS URL (-maas, MAAS_URL) {shown} is not an http(s) URL without a query; "
            "use e.g. http://localhost:5240/MAAS"
        )
    return parts


def _check_version(version: str, what: str) -> None:
    if version == "1.0":
        raise ConfigError(
            f"MAAS {what} 1.0 is refused: MAAS 2.0 and later answer 410 Gone to API 1.0; "
            "use 2.0 (the default)"
        )
    if version != SUPPORTED_API_VERSION:
        raise ConfigError(f"MAAS {what} {version[:20]!r} is unknown: MAAS speaks API 2.0; use 2.0")


class MaasClient:
    """Async client of the MAAS 2.0 REST API for one region and one API key."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        api_version: str = SUPPORTED_API_VERSION,
        timeout: float = REQUEST_TIMEOUT_S,
        max_attempts: int = 5,
        write_attempts: int | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = BACKOFF_CAP_S,
        transport: httpx.AsyncBaseTransport | None = None,
        on_response: Callable[[RequestRecord], None] | None = None,
        on_progress: Callable[[], None] | None = None,
        read_only: bool = False,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        key_source: Callable[[], str] | None = None,
        before_write: Callable[[], None] | None = None,
    ) -> None:
        write_attempts = max_attempts if write_attempts is None else write_attempts
        if (
            min(max_attempts, write_attempts) < 1
            or timeout <= 0
            or min(backoff_base, backoff_cap) < 0
        ):
            raise ValueError("attempts >= 1, timeout > 0 and backoffs >= 0 are required")
        self._max_answer_bytes = max_answer_bytes
        self._before_write = before_write
        self._auth = MaasAuth(api_key)
        self._key_source = key_source
        self.base_url, self.api_url = api_urls(base_url, api_version)
        self.read_only = read_only
        self._max_attempts = max_attempts
        self._write_attempts = write_attempts
        self._backoff = Backoff(backoff_base, backoff_cap)
        self._on_response = on_response
        self._on_progress = on_progress or _nothing
        self.longest_silence_s = longest_silence(timeout, backoff_cap)
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            base_url=self.api_url,
            auth=self._auth,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": f"maasflow/{__version__}"},
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"MaasClient({self.api_url!r}, key={self.masked_key}, read_only={self.read_only})"

    @property
    def masked_key(self) -> str:
        """The API key as the lengths of its parts, safe to log."""
        return self._auth.masked

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> MaasClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- reads ---------------------------------------------------------------------------

    async def whoami(self) -> User:
        """The key's user (`GET users/?op=whoami`); the cheapest check that the key works."""
        return await self._call("GET", "users/", op="whoami", decode=model_decoder(User))

    async def version(self) -> dict[str, Any]:
        """`GET version/`: ``capabilities``, ``version``, ``subversion``."""
        return await self._call("GET", "version/", decode=decode_object)

    async def list_machines(self, **filters: FormValue) -> list[ListedMachine]:
        """Every machine visible to the key, in one `GET machines/` (filters per §2.4).

        The answer is parsed as it arrives (`maas.listing`), never held whole.
        """
        return await self._call("GET", "machines/", params=_form(filters), decode=LISTING)

    async def list_machines_by_id(self, system_ids: Sequence[str]) -> list[ListedMachine]:
        """The machines among `system_ids` MAAS still has, in one `GET machines/?id=a&id=b`
        (facts §2.4); a machine deleted since is simply absent."""
        for system_id in system_ids:
            _machine_path("GET", system_id)  # only system_id-shaped values reach the query
        return await self.list_machines(id=list(system_ids))

    async def events_after(self, after: int | None, limit: int = EVENTS_LIMIT) -> EventPage:
        """`GET events/?op=query&level=DEBUG&limit=<limit>[&after=<id>]`, oldest first.

        With `after`, the `limit` oldest events newer than it; without, the newest `limit`
        (facts §4; `maas.event_log`)."""
        query: dict[str, FormValue] = {"level": EVENTS_LEVEL, "limit": limit}
        if after is not None:
            query["after"] = after
        return await self._call(
            "GET", "events/", op="query", params=_form(query), decode=decode_event_page
        )

    async def get_machine(self, system_id: str) -> Machine:
        """One machine, `GET machines/<system_id>/`."""
        path = _machine_path("GET", system_id)
        return await self._call("GET", path, decode=model_decoder(Machine))

    # -- writes --------------------------------------------------------------------------

    async def create_deployed(self, hostname: str, **fields: FormValue) -> Machine:
        """`POST machines/ deployed=true hostname=<h> ...`: record a machine that already runs.

        MAAS 3.1+ and an admin key (facts §3.9): MAAS stores it as Deployed, owned by the
        caller, without commissioning, powering or rebooting it; 3.0 ignores `deployed` and
        commissions it, so the caller checks the version first. `fields` are create's other
        parameters (`mac_addresses` as a list, `architecture`, `domain`, `power_type`,
        `power_parameters_<name>`). A hostname or MAC MAAS already has is a 400.
        """
        data = _form({**fields, "hostname": hostname, "deployed": True})
        return await self._call("POST", "machines/", data=data, decode=model_decoder(Machine))

    async def commission(self, system_id: str, **params: FormValue) -> Machine:
        """`POST machines/<id>/?op=commission` (admin; New, Failed commissioning, Ready, Broken)."""
        return await self._machine_op(system_id, "commission", _form(params))

    async def allocate(self, system_id: str) -> Machine:
        """`POST machines/?op=allocate system_id=<id>`: allocate exactly that machine."""
        _machine_path("POST", system_id)
        return await self._write_machine(
            system_id, "POST", "machines/", "allocate", {"system_id": system_id}
        )

    async def deploy(
        self,
        system_id: str,
        distro_series: str | None = None,
        user_data: bytes | str | None = None,
    ) -> Machine:
        """`POST machines/<id>/?op=deploy`; `user_data` is sent base64-encoded, no `osystem`."""
        data: dict[str, FormValue] = {}
        if distro_series:
            data["distro_series"] = distro_series
        if user_data is not None:
            raw = user_data.encode() if isinstance(user_data, str) else user_data
            data["user_data"] = base64.b64encode(raw).decode("ascii")
        return await self._machine_op(system_id, "deploy", _form(data))

    async def deploy_with(self, system_id: str, form: Mapping[str, str]) -> Machine:
        """`POST machines/<id>/?op=deploy` with a form already in MAAS's shape (facts §3.3):
        `Desire.deploy_form()`, whose `user_data` is base64 already; no `osystem`."""
        return await self._machine_op(system_id, "deploy", _form(form))

    async def power_off(self, system_id: str, stop_mode: str = "soft") -> None:
        """`POST machines/<id>/?op=power_off stop_mode=<soft|hard>`."""
        if stop_mode not in ("soft", "hard"):
            raise ValueError(f"stop_mode must be 'soft' or 'hard', not {stop_mode!r}")
        path = _machine_path("POST", system_id)
        data = {"stop_mode": stop_mode}
        await self._call("POST", path, op="power_off", data=data, decode=ignore_body)

    async def power_on(self, system_id: str) -> None:
        """`POST machines/<id>/?op=power_on` (MAAS answers 409 when nobody owns the machine)."""
        path = _machine_path("POST", system_id)
        await self._call("POST", path, op="power_on", decode=ignore_body)

    async def release(self, system_id: str, **params: FormValue) -> Machine:
        """`POST machines/<id>/?op=release` (comment=, erase=, quick_erase=, ...)."""
        return await self._machine_op(system_id, "release", _form(params))

    async def tag_machine(self, tag: str, system_id: str, comment: str = "") -> int:
        """Put tag `tag` on one machine, creating the tag first when MAAS has none by that name.

        `POST tags/<tag>/?op=update_nodes add=<system_id>`; when that answers 404 (no such
        tag), `POST tags/ name=<tag> comment=<comment>` and the update once more. Both ops are
        admin-only (403 otherwise) and were checked against MAAS 3.6's
        `src/maasserver/api/tags.py` (`TagHandler.update_nodes` reads `add`/`remove` system ids
        and answers `{"added": n, "removed": m}`; `TagsHandler.create` validates `TagForm`:
        `name`, `comment`, `definition`, `kernel_opts`) and `urls_api.py` (routes `tags/` and
        `tags/<name>/`). A create that loses a race ("already exists", 400) is fine. Returns
        how many machines MAAS matched (0: no such machine).
        """
        path = _tag_path(tag)
        _machine_path("POST", system_id)
        try:
            return await self._tag_nodes(path, system_id)
        except NotFound:
            with contextlib.suppress(BadRequest):
                data = _form({"name": tag, "comment": comment})
                await self._call("POST", "tags/", data=data, decode=decode_object)
        return await self._tag_nodes(path, system_id)

    async def _tag_nodes(self, path: str, system_id: str) -> int:
        data = _form({"add": system_id})
        answer = await self._call("POST", path, op="update_nodes", data=data, decode=decode_object)
        added = answer.get("added")
        return added if isinstance(added, int) else 0

    async def update(self, system_id: str, **fields: str) -> Machine:
        """`PUT machines/<id>/` with hostname=, power_type=, power_parameters_<name>=, ..."""
        if not fields:
            raise ValueError("update needs at least one field")
        path = _machine_path("PUT", system_id)
        return await self._write_machine(system_id, "PUT", path, None, _form(dict(fields)))

    # -- plumbing ------------------------------------------------------------------------

    async def _machine_op(self, system_id: str, op: str, data: dict[str, Any]) -> Machine:
        path = _machine_path("POST", system_id)
        return await self._write_machine(system_id, "POST", path, op, data)

    async def _write_machine(
        self, system_id: str, method: str, path: str, op: str | None, data: dict[str, Any]
    ) -> Machine:
        """Send a write whose answer is a machine; read it back if that answer is unreadable."""
        try:
            decode = model_decoder(Machine)
            return await self._call(method, path, op=op, data=data, decode=decode)
        except UnreadableAnswer as exc:
            log.warning("maas.unreadable_answer", method=method, path=exc.path, reread=True)
            path = _machine_path("GET", system_id)  # part of the write: the write's attempts
            reread = model_decoder(Machine)
            return await self._call("GET", path, decode=reread, attempts=self._write_attempts)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        op: str | None = None,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        decode: Decoder[T] | Streamed[T],
        attempts: int | None = None,
    ) -> T:
        """Send until success or a permanent error; decode the success."""
        shown = path if op is None else f"{path}?op={op}"
        if self.read_only and method != "GET":
            raise MaasflowError(
                f"read-only MAAS client refused {method} {shown}: preview sends only GETs"
            )
        try:
            return await self._attempts(method, path, op, params, data, decode, attempts)
        except Unauthorized:
            if not self._renew_key():
                raise
        return await self._attempts(method, path, op, params, data, decode, attempts)

    async def _attempts(
        self,
        method: str,
        path: str,
        op: str | None,
        params: Mapping[str, Any] | None,
        data: Mapping[str, Any] | None,
        decode: Decoder[T] | Streamed[T],
        attempts: int | None,
    ) -> T:
        """`_call`'s attempts with the current key: retry what is temporary, up to `attempts`."""
        if attempts is None:
            attempts = self._max_attempts if method == "GET" else self._write_attempts
        for attempt in range(1, attempts + 1):
            if method != "GET" and self._before_write is not None:
                self._before_write()  # the daemon's fence: raises to send nothing
            try:
                return await self._send(method, path, op, params, data, attempt, decode)
            except TemporaryMaasError as exc:
                if attempt == attempts or not _may_repeat(method, exc):
                    raise
                await self._pause(exc, attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _renew_key(self) -> bool:
        """After a 401: take the key `key_source` gives now; True when it is a new one."""
        if self._key_source is None:
            return False
        try:
            key = self._key_source()
            if self._auth.signs_with(key):
                return False
            self._auth = MaasAuth(key)
        except ConfigError as exc:  # unreadable or malformed: keep the old key, say why
            log.warning("maas.key_reread_failed", reason=str(exc))
            return False
        self._http.auth = self._auth
        log.warning("maas.key_renewed", key_shape=self._auth.masked)
        return True

    async def _send(
        self,
        method: str,
        path: str,
        op: str | None,
        params: Mapping[str, Any] | None,
        data: Mapping[str, Any] | None,
        attempt: int,
        decode: Decoder[T] | Streamed[T],
    ) -> T:
        """One attempt: the decoded success, else the typed error for the answer."""
        shown = path if op is None else f"{path}?op={op}"
        query = {**({"op": op} if op else {}), **(params or {})}
        started = time.perf_counter()
        self._on_progress()
        status: int | None = None
        try:
            request = self._http.build_request(method, path, params=query, data=data or None)
            response = await self._http.send(request, stream=True)
            status = response.status_code
            try:
                if response.is_success and isinstance(decode, Streamed):
                    async with contextlib.aclosing(self._chunks(response, shown)) as chunks:
                        return await decode.read(chunks, method, shown, status)
                whole = await self._whole(response, request, shown)
            finally:
                await response.aclose()
        except httpx.RequestError as exc:
            status = None
            # `from None`: the httpx chain holds request headers in its frames' locals.
            kind = TemporaryMaasError if _never_sent(exc) else AnswerLost
            raise kind(method, shown, None, _transport_problem(exc)) from None
        finally:
            self._record(method, path, op, status, started, attempt)
        if whole.is_success and not isinstance(decode, Streamed):
            return decode(whole, method, shown)
        raise error_for(method, shown, whole, message_of(whole, self._auth.redact))

    def _chunks(self, response: httpx.Response, shown: str) -> AsyncGenerator[bytes]:
        """The answer's decoded pieces as they arrive; AnswerTooLarge past `max_answer_bytes`."""
        return _capped_chunks(response, self._max_answer_bytes, shown, self._on_progress)

    async def _whole(
        self, response: httpx.Response, request: httpx.Request, shown: str
    ) -> httpx.Response:
        """The answer read whole (capped), as a response that needs no more reading."""
        body = b"".join([chunk async for chunk in self._chunks(response, shown)])
        headers = [(k, v) for k, v in response.headers.multi_items() if k != "content-encoding"]
        return httpx.Response(response.status_code, headers=headers, content=body, request=request)

    async def _pause(self, exc: TemporaryMaasError, attempt: int) -> None:
        delay = self._backoff.delay(attempt, exc.retry_after)
        log.warning(
            "maas.retry",
            method=exc.method,
            path=exc.path,
            status=exc.status,
            attempt=attempt,
            delay_s=round(delay, 3),
            problem=exc.message,
        )
        self._on_progress()
        await self._sleep(delay)

    def _record(
        self,
        method: str,
        path: str,
        op: str | None,
        status: int | None,
        started: float,
        attempt: int,
    ) -> None:
        duration = time.perf_counter() - started
        log.debug("maas.request", method=method, path=path, op=op, status=status, attempt=attempt)
        if self._on_response is None:
            return
        try:
            self._on_response(RequestRecord(method, path, op, status, duration, attempt))
        except Exception as exc:  # a broken metrics hook must not break MAAS calls
            log.warning("maas.on_response_failed", error=repr(exc)[:200])


class AnswerLost(TemporaryMaasError):
    """The connection broke after the request may have reached MAAS."""


class AnswerTooLarge(PermanentMaasError):
    """MAAS's answer is larger than `max_answer_bytes`; asking again would fetch it again."""


async def _capped_chunks(
    response: httpx.Response, limit: int, shown: str, on_chunk: Callable[[], None]
) -> AsyncGenerator[bytes]:
    """The decoded body's pieces; AnswerTooLarge as soon as it (or its Content-Length) passes
    `limit`, before more is read.

    `on_chunk` is called as each piece arrives: a long answer that keeps coming is progress.
    """
    announced = response.headers.get("content-length", "")
    if announced.isdigit() and int(announced) > limit:
        raise _too_large(response, limit, shown)
    size = 0
    async for chunk in response.aiter_bytes():
        on_chunk()
        size += len(chunk)
        if size > limit:
            raise _too_large(response, limit, shown)
        yield chunk


def _too_large(response: httpx.Response, limit: int, shown: str) -> AnswerTooLarge:
    return AnswerTooLarge(
        response.request.method,
        shown,
        response.status_code,
        f"the answer from {response.url} is larger than {limit} bytes; if the region really "
        f"lists that much, raise the cap ({_CAP_SETTING})",
    )


def longest_silence(
    timeout: float = REQUEST_TIMEOUT_S, backoff_cap: float = BACKOFF_CAP_S
) -> float:
    """The longest a call that still works goes without progress (`on_progress`), in seconds.

    Progress is an attempt starting, a piece of an answer arriving, a pause before the next
    attempt beginning. Between two, httpx may wait `timeout` for each of a pooled connection,
    the connection, sending and the answer's first byte; a pause lasts at most `backoff_cap`.
    Longer, and something below the client hangs without a timeout.
    """
    return max(_STEPS_BEFORE_AN_ANSWER * timeout, backoff_cap)


def _nothing() -> None:
    return None


def _never_sent(exc: httpx.RequestError) -> bool:
    """True when the request cannot have reached MAAS (no connection was made)."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def _may_repeat(method: str, exc: TemporaryMaasError) -> bool:
    """A write that may have happened is never sent twice: the next pass re-reads MAAS.

    That covers a garbled answer to a write and a connection lost after sending it; a
    write that never left (connection refused) is repeated like any read.
    """
    return method == "GET" or not isinstance(exc, UnreadableAnswer | AnswerLost)


def _transport_problem(exc: httpx.RequestError) -> str:
    detail = "".join(ch if ch.isprintable() else " " for ch in str(exc))[:300]
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _machine_path(method: str, system_id: str) -> str:
    if not isinstance(system_id, str) or not _SYSTEM_ID.fullmatch(system_id):
        shown = "".join(ch if ch.isprintable() else "?" for ch in str(system_id))[:40]
        raise PermanentMaasError(
            method, "machines/", None, f"refusing system_id {shown!r}: not a MAAS system_id"
        )
    return f"machines/{system_id}/"


def _tag_path(tag: str) -> str:
    if not isinstance(tag, str) or not TAG_NAME.fullmatch(tag):
        shown = "".join(ch if ch.isprintable() else "?" for ch in str(tag))[:40]
        raise PermanentMaasError("POST", "tags/", None, f"refusing tag name {shown!r}")
    return f"tags/{tag}/"


def _form(fields: Mapping[str, FormValue]) -> dict[str, str | list[str]]:
    """Form/query values as MAAS reads them: booleans as true/false, lists as repeated keys."""
    form: dict[str, str | list[str]] = {}
    for key, value in fields.items():
        if isinstance(value, bool):
            form[key] = "true" if value else "false"
        elif isinstance(value, str | int):
            form[key] = str(value)
        else:
            form[key] = [str(item) for item in value]
    return form
