"""Powering simulated machines: a fake BMC for most drivers, MAAS's webhook driver for real.

Machines whose `power_type` is `webhook` are powered exactly as MAAS's rack does it
(facts §7, `src/provisioningserver/drivers/power/webhook.py` and the base `PowerDriver`
retry loop): POST `power_on_uri`/`power_off_uri` with no body and no Content-Type, wait,
GET `power_query_uri`, match the body against the on/off regexes, and POST again on the next
round until the query agrees; waits are 1, 2, 2, 4, 6, 8, 12 s times the time factor.
Headers: `User-Agent: MAAS <version>`, `Accept: application/json`, `System_Id`, and Bearer
(`power_token`) or Basic (`power_user`/`power_pass`) auth. Any other driver is a fake BMC
that reaches the wanted state after `Durations.power`; `manual` cannot be driven at all.
Failures set `power_state` to "error" and write MAAS's failure event. Secrets and URIs are
never put into error messages.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Awaitable, Callable
from contextlib import suppress

import httpx
import structlog

from maasflow.sim.config import SimConfig
from maasflow.sim.machine import Machine
from maasflow.sim.world import World

log = structlog.get_logger(__name__)

WAITS = (1, 2, 2, 4, 6, 8, 12)
DEFAULT_ON_REGEX = r"status.*\:.*running"
DEFAULT_OFF_REGEX = r"status.*\:.*stopped"
Sleep = Callable[[float], Awaitable[None]]


class PowerFailed(Exception):
    """A power action or query did not succeed; the message is safe to show."""


class WebhookDriver:
    """MAAS's webhook power driver, speaking HTTP with httpx."""

    def __init__(self, version: str, scale: float, sleep: Sleep = asyncio.sleep) -> None:
        self._version = version
        self._scale = scale
        self._sleep = sleep
        self._clients: dict[bool, httpx.AsyncClient] = {}

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def set(self, system_id: str, params: dict[str, str], want: str) -> None:
        """Drive the BMC to `want` ("on"/"off") with the confirm loop; raise PowerFailed."""
        # As MAAS 3.6 `PowerDriver.perform_power` (src/provisioningserver/drivers/power/
        # __init__.py): after a failed POST it only waits (no query) and tries again; the
        # last error is kept, not cleared by a later good POST.
        uri = params.get(f"power_{want}_uri", "")
        last_state: str = "unknown"
        error: PowerFailed | None = None
        for wait in WAITS:
            try:
                await self._call("POST", uri, system_id, params)
            except PowerFailed as exc:
                error = exc
                await self._sleep(wait * self._scale)
                continue
            await self._sleep(wait * self._scale)
            try:
                last_state = await self.query_once(system_id, params)
            except PowerFailed as exc:
                error = exc
                continue
            if last_state == want:
                return
        if error is not None:
            raise error
        raise PowerFailed(
            f"Failed to power {system_id}. BMC never transitioned from {last_state} to {want}."
        )

    async def query(self, system_id: str, params: dict[str, str]) -> str:
        """Query the BMC, retrying errors up to seven times; raise PowerFailed at the end."""
        error = PowerFailed("power query failed")
        for wait in WAITS:
            try:
                return await self.query_once(system_id, params)
            except PowerFailed as exc:
                error = exc
            await self._sleep(wait * self._scale)
        raise error

    async def query_once(self, system_id: str, params: dict[str, str]) -> str:
        """One GET of `power_query_uri`, mapped through the regexes to on/off/unknown."""
        body = await self._call("GET", params.get("power_query_uri", ""), system_id, params)
        on_regex = params.get("power_on_regex") or DEFAULT_ON_REGEX
        off_regex = params.get("power_off_regex") or DEFAULT_OFF_REGEX
        try:
            if re.search(on_regex, body):
                return "on"
            if re.search(off_regex, body):
                return "off"
        except re.error:
            raise PowerFailed("Invalid power_on_regex or power_off_regex.") from None
        return "unknown"

    async def _call(self, method: str, uri: str, system_id: str, params: dict[str, str]) -> str:
        if not uri.startswith(("http://", "https://")):
            raise PowerFailed("Webhook URI is missing or is not an http(s) URL.")
        client = self._client(params.get("power_verify_ssl", "n") == "y")
        headers = self._headers(system_id, params)
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

    def _headers(self, system_id: str, params: dict[str, str]) -> dict[str, str]:
        headers = {
            "User-Agent": f"MAAS {self._version}",
            "Accept": "application/json",
            "System_Id": system_id,
        }
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


class PowerControl:
    """Changes and queries machines' power, writing the events MAAS writes."""

    def __init__(self, world: World, config: SimConfig, sleep: Sleep = asyncio.sleep) -> None:
        self._world = world
        self._config = config
        self._sleep = sleep
        self.webhook = WebhookDriver(config.maas_version, config.time_factor, sleep)

    async def aclose(self) -> None:
        await self.webhook.aclose()

    async def change(self, machine: Machine, want: str) -> bool:
        """Bring `machine` to power `want`; False (and power_state "error") on failure."""
        self._world.record(machine, f"NODE_POWER_{want.upper()}_STARTING")
        try:
            await self._drive(machine, want)
        except PowerFailed as exc:
            machine.power_state = "error"
            self._world.record(machine, f"NODE_POWER_{want.upper()}_FAILED", str(exc))
            log.info("sim_power_failed", system_id=machine.system_id, want=want, error=str(exc))
            return False
        if machine.power_type != "manual":
            machine.power_state = want
            self._world.record(machine, f"NODE_POWERED_{want.upper()}")
        return True

    async def query(self, machine: Machine) -> str:
        """The machine's power state as its BMC reports it (webhook) or as modelled."""
        if machine.power_type != "webhook":
            return machine.power_state
        try:
            state = await self.webhook.query(machine.system_id, machine.power_parameters)
        except PowerFailed as exc:
            machine.power_state = "error"
            self._world.record(machine, "NODE_POWER_QUERY_FAILED", str(exc))
            return "error"
        machine.power_state = state
        return state

    async def _drive(self, machine: Machine, want: str) -> None:
        if machine.power_type == "webhook":
            await self.webhook.set(machine.system_id, machine.power_parameters, want)
        elif machine.power_type != "manual":
            await self._sleep(self._config.scaled(self._config.durations.power))
