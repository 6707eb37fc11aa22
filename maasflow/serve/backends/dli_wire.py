"""The two HTTP dialects of a Digital Loggers web power switch, for one outlet.

Both classes read an outlet (`read() -> bool`, True = on) and switch it (`switch(on)`); the
backend in `dli.py` adds idempotence, cycling and polling. Outlets are 1-based here, as on
the unit and in MAAS; only the REST wire is 0-based ("relays are zero based", DLI rest.html).

- `RestOutlet`: `/restapi/relay/outlets/<n-1>/state/` with HTTP Digest (the unit's challenge
  has no qop), GET answers a bare JSON `true`/`false`, PUT takes the form `value=true` and
  must carry `X-CSRF`.
- `LegacyOutlet`: `GET /outlet?<n>=ON|OFF`, state from the `<!-- state=HH lock=HH -->`
  comment of `/index.htm` (bit 0 = outlet 1), which is what MAAS's own dli driver reads
  (`src/provisioningserver/drivers/power/dli.py`). It sends Basic up front, as MAAS does;
  when the page has no state comment it logs in with the challenge form instead (`/login.tgi`,
  MD5 of challenge+user+password+challenge, session cookie `DLILPC`).

`detect_dialect` tells them apart: a REST unit answers an unauthenticated
`/restapi/relay/outlets/` with a 401 Digest challenge. Errors never carry the password.

Before its first switch or read, each class checks that the unit has the outlet: a legacy
unit lists only its own outlets in `index.htm` (one `outlet?<n>=` link per outlet in the
"Individual Control" table), a REST unit's `/restapi/relay/outlets/` is one JSON entry per
outlet. A missing outlet is refused (`NoSuchOutlet`) instead of switching nothing and reading
"off" forever; a unit whose page shows no outlet table at all is not refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Literal, Protocol

import httpx

from maasflow.serve.backends import BackendUnavailable, PowerError

_STATE_COMMENT = re.compile(r"<!--\s*state=([0-9a-fA-F]+)")
_INPUT_TAG = re.compile(r"<input\b[^>]*>", re.IGNORECASE)
_VALUE_ATTR = re.compile(r"""\bvalue\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)
_SESSION_COOKIE = re.compile(r"""\bDLILPC=("[^"]*"|[^;\s]*)""")
_OUTLET_LINK = re.compile(r"outlet\?(\d+)=")


class NoSuchOutlet(PowerError):
    """The configured outlet is not one the unit has: the power config is wrong."""


def missing_outlet(outlet: int, present: set[int], host: str) -> NoSuchOutlet | None:
    """The error for `outlet` when the unit lists `present` outlets (none listed: no error)."""
    if not present or outlet in present:
        return None
    numbers = sorted(present)
    contiguous = numbers == list(range(numbers[0], numbers[-1] + 1))
    listed = f"{numbers[0]}-{numbers[-1]}" if contiguous else ", ".join(map(str, numbers))
    return NoSuchOutlet(
        f"DLI switch {host} has outlets {listed}; outlet {outlet} is not one of them: "
        'fix "outlet" in the power config (1-based, as printed on the unit)'
    )


def legacy_outlets(page: str) -> set[int]:
    """The outlet numbers an `index.htm` links to (`outlet?<n>=ON|OFF|CCL`; `a` is all)."""
    return {int(number) for number in _OUTLET_LINK.findall(page)}


class DliOutlet(Protocol):
    async def read(self) -> bool: ...

    async def switch(self, on: bool) -> None: ...


def base_url(address: str) -> str:
    """`http://host[:port]` for a bare address; a full URL is kept (https allowed)."""
    return address.rstrip("/") if "://" in address else f"http://{address}"


def _unreachable(client: httpx.AsyncClient, exc: Exception) -> BackendUnavailable:
    return BackendUnavailable(f"DLI switch {client.base_url.host}: {exc.__class__.__name__}")


async def _send(client: httpx.AsyncClient, method: str, path: str, **kwargs: object) -> str:
    try:
        response = await client.request(method, path, **kwargs)  # type: ignore[arg-type]
    except httpx.TransportError as exc:
        raise _unreachable(client, exc) from None
    if response.status_code >= 400:
        reason = {401: "refused the credentials", 403: "refused the request (CSRF/permission)"}
        what = reason.get(response.status_code, "failed")
        raise PowerError(f"DLI switch {method} {path}: HTTP {response.status_code} ({what})")
    return response.text


class RestOutlet:
    """One outlet through the REST-style API (digest auth, X-CSRF on writes)."""

    def __init__(self, client: httpx.AsyncClient, outlet: int, user: str, password: str) -> None:
        self._client = client
        self._outlet = outlet
        self._path = f"/restapi/relay/outlets/{outlet - 1}/state/"
        self._auth = httpx.DigestAuth(user, password)
        self._checked = False  # the unit's outlet list has this outlet

    async def read(self) -> bool:
        await self._check()
        body = await _send(
            self._client, "GET", self._path, auth=self._auth, headers={"Accept": "application/json"}
        )
        try:
            value = json.loads(body)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list) and len(value) == 1:
            value = value[0]  # a matrix URI answers a one-element array
        if not isinstance(value, bool):
            raise PowerError(f"DLI switch {self._path}: expected true/false, got {body[:40]!r}")
        return value

    async def _check(self) -> None:
        """Refuse an outlet beyond the unit's list (one JSON entry per outlet, 0-based)."""
        if self._checked:
            return
        body = await _send(
            self._client,
            "GET",
            "/restapi/relay/outlets/",
            auth=self._auth,
            headers={"Accept": "application/json"},
        )
        try:
            outlets = json.loads(body)
        except json.JSONDecodeError:
            outlets = None
        if isinstance(outlets, list):
            present = set(range(1, len(outlets) + 1))
            error = missing_outlet(self._outlet, present, self._client.base_url.host)
            if error is not None:
                raise error
        self._checked = True

    async def switch(self, on: bool) -> None:
        await self._check()
        value = "true" if on else "false"
        await _send(
            self._client,
            "PUT",
            self._path,
            auth=self._auth,
            data={"value": value},
            headers={"X-CSRF": "x", "Accept": "application/json"},
        )


class LegacyOutlet:
    """One outlet through the legacy CGI pages (Basic up front, else cookie login)."""

    def __init__(self, client: httpx.AsyncClient, outlet: int, user: str, password: str) -> None:
        self._client = client
        self._outlet = outlet
        self._user = user
        self._password = password
        self._cookie: str | None = None
        self._checked = False  # the unit's page listed this outlet

    async def read(self) -> bool:
        bits = await self._state_bits()
        return bool((bits >> (self._outlet - 1)) & 1)

    async def switch(self, on: bool) -> None:
        if not self._checked:
            await self._state_bits()  # logs in if needed, and checks the outlet exists
        await self._get(f"/outlet?{self._outlet}={'ON' if on else 'OFF'}")

    async def _state_bits(self) -> int:
        page = await self._get("/index.htm")
        if _STATE_COMMENT.search(page) is None:
            await self._login()
            page = await self._get("/index.htm")
        match = _STATE_COMMENT.search(page)
        if match is None:
            raise PowerError(
                "DLI switch: /index.htm has no state comment; check the user and password, "
                "and that the unit allows legacy plaintext logins"
            )
        if not self._checked:
            error = missing_outlet(self._outlet, legacy_outlets(page), self._client.base_url.host)
            if error is not None:
                raise error
            self._checked = True
        return int(match.group(1), 16)

    def _headers(self) -> dict[str, str]:
        if self._cookie is not None:
            return {"Cookie": f"DLILPC={self._cookie}"}
        pair = base64.b64encode(f"{self._user}:{self._password}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}

    async def _get(self, path: str) -> str:
        return await _send(self._client, "GET", path, headers=self._headers())

    async def _login(self) -> None:
        challenge = _challenge(await _send(self._client, "GET", "/"))
        if challenge is None:
            raise PowerError("DLI switch: no login form with a Challenge at /")
        secret = f"{challenge}{self._user}{self._password}{challenge}".encode()
        form = {
            "Username": self._user,
            "Password": hashlib.md5(secret, usedforsecurity=False).hexdigest(),
        }
        try:
            response = await self._client.post("/login.tgi", data=form)
        except httpx.TransportError as exc:
            raise BackendUnavailable(f"DLI switch login: {exc.__class__.__name__}") from None
        cookies = " ".join(response.headers.get_list("set-cookie"))
        match = _SESSION_COOKIE.search(cookies)
        self._cookie = match.group(1) if match and match.group(1).strip('"') else None


def _challenge(page: str) -> str | None:
    for tag in _INPUT_TAG.findall(page):
        if re.search(r"""\bname\s*=\s*["']?Challenge\b""", tag, re.IGNORECASE):
            value = _VALUE_ATTR.search(tag)
            return value.group(1) if value else None
    return None


async def detect_dialect(client: httpx.AsyncClient) -> Literal["rest", "legacy"]:
    """ "rest" when the unit challenges `/restapi/relay/outlets/` with Digest, else "legacy"."""
    try:
        response = await client.get(
            "/restapi/relay/outlets/", headers={"Accept": "application/json"}
        )
    except httpx.TransportError as exc:
        raise _unreachable(client, exc) from None
    challenge = response.headers.get("www-authenticate", "").lower()
    if response.status_code == 401 and challenge.startswith("digest"):
        return "rest"
    is_json = response.headers.get("content-type", "").startswith("application/json")
    return "rest" if response.status_code == 200 and is_json else "legacy"
