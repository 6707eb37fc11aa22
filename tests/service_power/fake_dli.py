"""A fake Digital Loggers web power switch speaking both HTTP dialects, for loopback tests.

Written from the vendor documentation and recorded traffic summarised in the project's DLI
notes, not from any client's code:

- legacy CGI: `/` serves a login form with a random `Challenge`; `POST /login.tgi` checks
  `Password = md5(challenge + user + password + challenge)` and sets `DLILPC="<token>"`;
  `/index.htm` carries `<!-- state=HH lock=HH -->` (bit 0 = outlet 1) and an "Individual
  Control" table with one 5-cell row per outlet the unit has (number, name, state, an
  `outlet?<n>=ON|OFF` link, a Cycle link, commented out while the outlet is off) and,
  unauthenticated, is a 200 page that meta-refreshes to `/`; `/outlet?<n>=ON|OFF|CCL`
  (1-based, or `a`) answers a 200 meta-refresh. An outlet the unit lacks is never switched
  or shown (what a real unit answers for one is not recorded; the same 200 page is the
  quietest guess). Basic credentials sent up front are taken like no credentials (the 200
  page to `/`) unless plaintext logins are allowed: by default only on a legacy-only unit
  (`rest_enabled=False`); a unit with the REST API is new firmware, which refuses Basic
  unless "Allow legacy plaintext login methods" is on (`allow_basic=True`).
- REST: `/restapi/relay/outlets/<n>/state/` (0-based) with Digest auth whose challenge has
  no qop and an upper-case scheme; GET answers bare `true`/`false`; PUT needs `X-CSRF` (403
  without) and a `value=` form or JSON body, and answers 204. URIs without the trailing slash
  are redirected. `rest_enabled=False` makes `/restapi/` a 404, as on legacy-only units.
- `stale_reads`: after a change, the next state read still shows the previous state
  (as seen on real units), then the truth.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

REALM = "DLI LPC92601002528"
_REFRESH = '<html><head><meta http-equiv="refresh" content="0; URL=/index.htm"></head></html>'
_TO_LOGIN = '<html><head><meta http-equiv="refresh" content="0; URL=/"></head></html>'


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


@dataclass
class FakeDli:
    """The switch's state and behaviour; `app()` is its ASGI application."""

    user: str = "admin"
    password: str = "4321"
    outlets: int = 8
    state: int = 0
    rest_enabled: bool = True
    allow_basic: bool | None = None  # None: as the firmware does (see the module docstring)
    stale_reads: bool = False
    log: list[str] = field(default_factory=list)
    _previous: int | None = None
    _challenge: str = ""
    _sessions: set[str] = field(default_factory=set)
    _nonces: set[str] = field(default_factory=set)

    def is_on(self, outlet: int) -> bool:
        """Whether 1-based `outlet` is on."""
        return bool(self.state >> (outlet - 1) & 1)

    @property
    def takes_basic(self) -> bool:
        """Whether Basic credentials sent up front log in (the plaintext-login setting)."""
        return self.allow_basic if self.allow_basic is not None else not self.rest_enabled

    def set_outlet(self, outlet: int, on: bool) -> None:
        """Switch 1-based `outlet`, remembering the old bitmap for one stale read; an outlet
        the unit does not have is left alone."""
        if not 1 <= outlet <= self.outlets:
            return
        new = self.state | (1 << (outlet - 1)) if on else self.state & ~(1 << (outlet - 1))
        if new != self.state:
            self._previous = self.state if self.stale_reads else None
            self.state = new

    def _read_state(self) -> int:
        shown = self.state if self._previous is None else self._previous
        self._previous = None
        return shown

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/", self.login_page),
                Route("/login.tgi", self.login, methods=["POST"]),
                Route("/index.htm", self.index),
                Route("/outlet", self.outlet),
                Route("/restapi/relay/outlets/", self.rest_list),
                Route(
                    "/restapi/relay/outlets/{n:int}/state/", self.rest_state, methods=["GET", "PUT"]
                ),
                Route(
                    "/restapi/relay/outlets/{rest:path}",
                    self.rest_unslashed,
                    methods=["GET", "PUT"],
                ),
            ]
        )

    # --- legacy ---------------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        self.log.append("GET /")
        self._challenge = secrets.token_urlsafe(12)[:16]
        form = (
            '<form action="/login.tgi" method="post" name="login">'
            '<input type="text" name="Username" value="">'
            '<input type="password" name="Password" value="">'
            f'<input type="hidden" name="Challenge" value="{self._challenge}">'
            "</form>"
        )
        response = HTMLResponse(f"<html><body>{form}</body></html>")
        response.headers["Set-Cookie"] = 'DLILPC=""; Version=1; Max-Age=0; Path=/'
        return response

    async def login(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        self.log.append("POST /login.tgi")
        expected = _md5(self._challenge + self.user + self.password + self._challenge)
        if form.get("Username") != self.user or form.get("Password") != expected:
            return HTMLResponse(_TO_LOGIN)
        token = secrets.token_urlsafe(12)[:15]
        self._sessions.add(token)
        response = HTMLResponse(_REFRESH)
        response.headers["Set-Cookie"] = f'DLILPC="{token}"; Version=1; Path=/'
        return response

    def _legacy_authed(self, request: Request) -> bool:
        cookie = request.headers.get("cookie", "")
        match = re.search(r'DLILPC="?([^";]+)"?', cookie)
        if match and match.group(1) in self._sessions:
            return True
        header = request.headers.get("authorization", "")
        if not (self.takes_basic and header.startswith("Basic ")):
            return False
        pair = base64.b64decode(header[6:]).decode()
        return pair == f"{self.user}:{self.password}"

    async def index(self, request: Request) -> Response:
        self.log.append("GET /index.htm")
        if not self._legacy_authed(request):
            return HTMLResponse(_TO_LOGIN)
        shown = self._read_state()
        rows = "".join(_row(n, bool(shown >> (n - 1) & 1)) for n in range(1, self.outlets + 1))
        comment = f"<!-- state={shown:02x} lock=00 -->"
        master = (
            '<a href="outlet?a=OFF">All outlets OFF</a> <a href="outlet?a=ON">All outlets ON</a>'
        )
        return HTMLResponse(
            f"<html><head><title>Outlet Control</title></head>{comment}"
            f"<body>{master}<table><tr><th>#</th><th>Name</th><th>State</th>"
            f"<th colspan=2>Action</th></tr>{rows}</table></body></html>"
        )

    async def outlet(self, request: Request) -> Response:
        query = request.url.query
        self.log.append(f"GET /outlet?{query}")
        if not self._legacy_authed(request):
            return HTMLResponse(_TO_LOGIN)
        for key, value in parse_qsl(query):
            if key == "a":
                targets: range | list[int] = range(1, self.outlets + 1)
            elif key.isdigit():
                targets = [int(key)]  # set_outlet ignores one the unit does not have
            else:
                continue
            for n in targets:
                if value in ("ON", "OFF"):
                    self.set_outlet(n, value == "ON")
                elif value == "CCL" and self.is_on(n):
                    self.set_outlet(n, False)
                    self.set_outlet(n, True)
        return HTMLResponse(_REFRESH)

    # --- REST -----------------------------------------------------------------------------

    def _challenge_response(self) -> Response:
        nonce = secrets.token_urlsafe(12)[:16]
        self._nonces.add(nonce)
        header = f'DIGEST realm="{REALM}", nonce="{nonce}"'
        return Response("Unauthorized", 401, headers={"WWW-Authenticate": header})

    def _digest_ok(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("digest "):
            return False
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', header[7:]))
        uri = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if fields.get("username") != self.user or fields.get("nonce") not in self._nonces:
            return False
        if fields.get("uri") != uri or fields.get("realm") != REALM:
            return False
        ha1 = _md5(f"{self.user}:{REALM}:{self.password}")
        ha2 = _md5(f"{request.method}:{uri}")
        return fields.get("response") == _md5(f"{ha1}:{fields['nonce']}:{ha2}")

    def _rest_gate(self, request: Request) -> Response | None:
        self.log.append(f"{request.method} {request.url.path}")
        if not self.rest_enabled:
            return Response("Not Found", 404)
        return None if self._digest_ok(request) else self._challenge_response()

    async def rest_list(self, request: Request) -> Response:
        refused = self._rest_gate(request)
        if refused is not None:
            return refused
        outlets = [
            {"name": f"Outlet {n + 1}", "state": self.is_on(n + 1), "locked": False}
            for n in range(self.outlets)
        ]
        return Response(json.dumps(outlets), media_type="application/json")

    async def rest_state(self, request: Request) -> Response:
        refused = self._rest_gate(request)
        if refused is not None:
            return refused
        n = int(request.path_params["n"])
        if not 0 <= n < self.outlets:
            return Response("Not Found", 404)
        if request.method == "GET":
            shown = bool(self._read_state() >> n & 1)
            return Response(json.dumps(shown), media_type="application/json")
        xhr = request.headers.get("x-requested-with") == "XMLHttpRequest"
        if not (request.headers.get("x-csrf") or xhr):
            return Response("CSRF check failed", 403)
        value = _parse_value(await request.body(), request.headers.get("content-type", ""))
        if value is None:
            return Response("Bad value", 400)
        self.set_outlet(n + 1, value)
        return Response(status_code=204)

    async def rest_unslashed(self, request: Request) -> Response:
        if self.rest_enabled and not request.url.path.endswith("/"):
            return RedirectResponse(request.url.path + "/", status_code=302)
        return Response("Not Found", 404)


def _row(n: int, on: bool) -> str:
    """One "Individual Control" row, shaped as on an LPC (1.8.4) page."""
    state = '<font color="green">ON</font>' if on else '<font color="red">OFF</font>'
    action = f'<a href="outlet?{n}={"OFF" if on else "ON"}">Switch {"OFF" if on else "ON"}</a>'
    cycle = f'<a href="outlet?{n}=CCL">Cycle</a>'
    cycle = cycle if on else f"<!-- {cycle} -->"  # the UI hides Cycle on an OFF outlet
    return (
        f'<tr bgcolor="#F4F4F4"><td align=center>{n}</td><td>Outlet {n}</td>'
        f"<td><b>{state}</b></td><td>{action}</td><td>{cycle}</td></tr>"
    )


def _parse_value(body: bytes, content_type: str) -> bool | None:
    text = body.decode()
    if content_type.startswith("application/x-www-form-urlencoded"):
        text = dict(parse_qsl(text)).get("value", "")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, bool) else None
