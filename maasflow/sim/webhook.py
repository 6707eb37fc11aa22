"""MAAS's webhook power driver, as the simulator runs it: requests, the confirm loop, queries.

Written from facts §7 (`src/provisioningserver/drivers/power/webhook.py` and the base
`PowerDriver` in `drivers/power/__init__.py`). On and off POST `power_on_uri` /
`power_off_uri` with no body and no Content-Type; a query GETs `power_query_uri` and maps
the body through `re.search` with the on regex first, then the off regex, else "unknown".
Headers: `User-Agent: MAAS <version>`, `Accept: application/json`, Bearer (`power_token`)
or Basic (`power_user` and `power_pass`) auth, and `System_id: <id>` only when the caller
passes the machine's id (Twisted capitalises only the first letter of the name, so
`System_Id` in MAAS's code is `System_id` on the wire). Status >= 400 is an error, except
MAAS's 404 quirk. The base driver's loops wait 1, 2, 2, 4, 6, 8, 12 s (times the time
factor): the confirm loop POSTs, waits and queries until the state is the wanted one; a
query alone retries errors; a cycle queries, powers off if on, then on.

Where it stops: which caller passes the system_id, and the attempts wrapped around these
loops, belong to `power.py` (the region's paths) and `monitor.py` (the rack's monitor).
Secrets and URIs are never put into error messages.
"""

from __future__ import annotations

import base64
import re
from contextlib import suppress
from dataclasses import dataclass

import httpx

from maasflow.sim.clock import SimClock

WAITS = (1, 2, 2, 4, 6, 8, 12)
DEFAULT_ON_REGEX = r"status.*\:.*running"
DEFAULT_OFF_REGEX = r"status.*\:.*stopped"


class PowerFailed(Exception):
    """A power action or query did not succeed; the message is safe to show."""


@dataclass(frozen=True)
class Target:
    """One machine's BMC as a driver call sees it."""

    system_id: str  # names the machine in failure messages
    params: dict[str, str]
    send_system_id: bool  # the rack's monitor (and MAAS <= 3.4) send it; the 3.5+ agent not


class WebhookDriver:
    """MAAS's webhook power driver with the base driver's retry loops, speaking httpx."""

    def __init__(self, version: str, clock: SimClock) -> None:
        self._version = version
        self._clock = clock
        self._clients: dict[bool, httpx.AsyncClient] = {}

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def perform(self, target: Target, want: str) -> None:
        """Drive the BMC to `want` ("on"/"off") with the confirm loop; raise PowerFailed."""
        # As `PowerDriver.perform_power`: after a failed POST it only waits (no query) and
        # tries again; the last error is kept, not cleared by a later good POST.
        uri = target.params.get(f"power_{want}_uri", "")
        last_state = "unknown"
        error: PowerFailed | None = None
        for wait in WAITS:
            try:
                await self._call("POST", uri, target)
            except PowerFailed as exc:
                error = exc
                await self._wait(wait)
                continue
            await self._wait(wait)
            try:
                last_state = await self.query_once(target)
            except PowerFailed as exc:
                error = exc
                continue
            if last_state == want:
                return
        if error is not None:
            raise error
        raise PowerFailed(
            f"Failed to power {target.system_id}. "
            f"BMC never transitioned from {last_state} to {want}."
        )

    async def cycle(self, target: Target) -> None:
        """The base driver's cycle: query; power off if on; then power on."""
        if await self.query(target) == "on":
            await self.perform(target, "off")
        await self.perform(target, "on")

    async def query(self, target: Target) -> str:
        """Query the BMC, retrying errors up to seven times; raise PowerFailed at the end."""
        error = PowerFailed("power query failed")
        for wait in WAITS:
            try:
                return await self.query_once(target)
            except PowerFailed as exc:
                error = exc
            await self._wait(wait)
        raise error

    async def query_once(self, target: Target) -> str:
        """One GET of `power_query_uri`, mapped through the regexes to on/off/unknown."""
        body = await self._call("GET", target.params.get("power_query_uri", ""), target)
        on_regex = target.params.get("power_on_regex") or DEFAULT_ON_REGEX
        off_regex = target.params.get("power_off_regex") or DEFAULT_OFF_REGEX
        try:
            if re.search(on_regex, body):
                return "on"
            if re.search(off_regex, body):
                return "off"
        except re.error:
            raise PowerFailed("Invalid power_on_regex or power_off_regex.") from None
        return "unknown"

    async def _wait(self, seconds: float) -> None:
        await self._clock.sleep(seconds)

    async def _call(self, method: str, uri: str, target: Target) -> str:
        if not uri.startswith(("http://", "https://")):
            raise PowerFailed("Webhook URI is missing or is not an http(s) URL.")
        client = self._client(target.params.get("power_verify_ssl", "n") == "y")
        headers = self._headers(target)
        try:
            response = await client.request(method, uri, headers=headers)
        except Exception as exc:
            # Any failure (bad URL, non-ASCII token...) is a power error, as in MAAS. Only its
            # type is kept: the message of e.g. UnicodeEncodeError quotes the Bearer token.
            raise PowerFailed(f"Request failed: {type(exc).__name__}.") from None
        if response.status_code == 404:
            await self._fire_404_retry(client, method, uri, headers)
        elif response.status_code >= 400:
            raise PowerFailed(f"Request failed with response status code: {response.status_code}.")
        return response.text

    async def _fire_404_retry(
        self, client: httpx.AsyncClient, method: str, uri: str, headers: dict[str, str]
    ) -> None:
        """MAAS's 404 quirk (facts §7.3): re-request with "/" appended, ignore the result,
        and treat the original 404 body as the reply."""
        with suppress(httpx.HTTPError):
            await client.request(method, uri + "/", headers=headers)

    def _headers(self, target: Target) -> dict[str, str]:
        headers = {"User-Agent": f"MAAS {self._version}", "Accept": "application/json"}
        if target.send_system_id:
            headers["System_id"] = target.system_id
        params = target.params
        token = params.get("power_token", "")
        user, password = params.get("power_user", ""), params.get("power_pass", "")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif user and password:
            pair = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {pair}"
        return headers

    def _client(self, verify: bool) -> httpx.AsyncClient:
        if verify not in self._clients:
            self._clients[verify] = httpx.AsyncClient(
                verify=verify, follow_redirects=True, timeout=httpx.Timeout(30.0), trust_env=False
            )
        return self._clients[verify]
