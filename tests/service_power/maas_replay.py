"""A replay of how MAAS 3.5/3.6 powers a webhook machine, to call the power target as MAAS does.

Taken from the project's MAAS facts (sections 7 and 10.2) and MAAS 3.6's source, kept
independent of maasflow's code so a shared mistake cannot pass. Four layers:

- the rack's webhook driver (`src/provisioningserver/drivers/power/webhook.py`): on/off
  POST with no body and no Content-Type, query GETs; headers `User-Agent: MAAS <version>`,
  `Accept: application/json`, `System_id: <id>` only when the caller passes a system_id
  (Twisted writes `System_Id` that way), and `Authorization: Bearer <token>` when a token
  is set, else Basic when both user and password are. Status >= 400 is an error, except the
  404 quirk: a second request to the URI with `/` appended is fired and ignored, and the
  404's body is the reply. A query is `re.search(on_regex)` → "on", else `off_regex` →
  "off", else "unknown".
- the base `PowerDriver` (`drivers/power/__init__.py`): `perform` is the confirm loop (for
  each wait in 1, 2, 2, 4, 6, 8, 12 s times `scale`: POST, an error is held and the round
  only waits; else wait and query; done when the state is the wanted one, else POST again;
  at the end the last error or "BMC never transitioned"), `query` retries errors 7 times.
- `cli`: MAAS's power CLI (`src/provisioningserver/power_driver_command.py`), which the
  rack's agent runs: `on`/`off`/`cycle` through the driver with system_id None (so no
  `System_id` header), then always one more query; its output is that state.
- `agent`: the region's power workflow (`src/maastemporalworker/workflow/power.py`: 3
  attempts, each under a 5-minute start-to-close timeout, Temporal's default backoff of 1 s
  then 2 s) around the agent's activity (`src/maasagent/internal/power/service.go`), which
  accepts an attempt only when the CLI printed the wanted state. An attempt past its timeout
  is killed with its request in flight.

`monitor` is the rack's periodic power monitor (`src/provisioningserver/rpc/power.py`): the
only caller that passes the machine's system_id; a query that still fails after its
retries makes MAAS set the power state to "error".
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
from dataclasses import dataclass, field
from typing import NamedTuple

import httpx

MAAS_DEFAULT_ON_REGEX = r"status.*\:.*running"
MAAS_DEFAULT_OFF_REGEX = r"status.*\:.*stopped"
WAIT_TIMES = (1, 2, 2, 4, 6, 8, 12)
ACTIVITY_TIMEOUT = 300  # s, POWER_ACTION_ACTIVITY_TIMEOUT
ATTEMPTS = 3  # RetryPolicy(maximum_attempts=3)
RETRY_BACKOFF = (1, 2)  # s, Temporal's default initial interval and coefficient 2
_WANTED = {"on": "on", "off": "off", "cycle": "on"}


class DriverError(Exception):
    """What MAAS would record as the power action's failure."""


class Sent(NamedTuple):
    """One request the replay sent, with the System_id header it carried (None: none)."""

    method: str
    uri: str
    status: int
    system_id: str | None


@dataclass
class MaasWebhookDriver:
    """One machine's webhook power parameters, and MAAS's way of using them."""

    on_uri: str
    off_uri: str
    query_uri: str
    system_id: str
    token: str | None = None
    user: str | None = None
    password: str | None = None
    on_regex: str = MAAS_DEFAULT_ON_REGEX
    off_regex: str = MAAS_DEFAULT_OFF_REGEX
    verify: bool | str | ssl.SSLContext = False
    scale: float = 0.01
    version: str = "3.6.1"
    sent: list[Sent] = field(default_factory=list)
    attempts: int = 0  # agent attempts started
    # Per-attempt activity timeouts (seconds) overriding ACTIVITY_TIMEOUT * scale, so a test can
    # let one attempt die quickly and give the next one room on a busy machine.
    attempt_timeouts: tuple[float, ...] = ()

    def headers(self, system_id: str | None = None) -> dict[str, str]:
        headers = {"User-Agent": f"MAAS {self.version}", "Accept": "application/json"}
        if system_id:
            headers["System_id"] = system_id
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        elif self.user and self.password:
            pair = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            headers["Authorization"] = f"Basic {pair}"
        return headers

    async def _request(self, method: str, uri: str, system_id: str | None) -> str:
        headers = self.headers(system_id)
        async with httpx.AsyncClient(
            verify=self.verify,
            follow_redirects=True,
            timeout=30,  # MAAS sets none; a bound so a broken test cannot hang
        ) as client:
            response = await client.request(method, uri, headers=headers)
            self.sent.append(Sent(method, uri, response.status_code, system_id))
            if response.status_code == 404:
                await client.request(method, uri + "/", headers=headers)  # ignored
                return response.text
        if response.status_code >= 400:
            raise DriverError(f"Request failed with response status code: {response.status_code}.")
        return response.text

    # --- the webhook driver: one request each ---------------------------------------------

    async def power_on(self, system_id: str | None = None) -> None:
        await self._request("POST", self.on_uri, system_id)

    async def power_off(self, system_id: str | None = None) -> None:
        await self._request("POST", self.off_uri, system_id)

    async def power_query(self, system_id: str | None = None) -> str:
        body = await self._request("GET", self.query_uri, system_id)
        if re.search(self.on_regex, body):
            return "on"
        if re.search(self.off_regex, body):
            return "off"
        return "unknown"

    # --- the base PowerDriver: retries ----------------------------------------------------

    async def perform(self, action: str, system_id: str | None = None) -> None:
        """MAAS's confirm loop for "on" or "off"."""
        act = self.power_on if action == "on" else self.power_off
        state = "unknown"
        error: DriverError | None = None
        for wait in WAIT_TIMES:
            try:
                await act(system_id)
            except DriverError as exc:
                error = exc
                await asyncio.sleep(wait * self.scale)
                continue
            await asyncio.sleep(wait * self.scale)
            try:
                state = await self.power_query(system_id)
            except DriverError as exc:
                error = exc
                continue
            if state == action:
                return
        if error is not None:
            raise error
        raise DriverError(
            f"Failed to power {system_id}. BMC never transitioned from {state} to {action}."
        )

    async def query(self, system_id: str | None = None) -> str:
        """The base driver's query: errors are retried over the same waits."""
        error = DriverError("no query was sent")
        for wait in WAIT_TIMES:
            try:
                return await self.power_query(system_id)
            except DriverError as exc:
                error = exc
                await asyncio.sleep(wait * self.scale)
        raise error

    async def cycle(self, system_id: str | None = None) -> None:
        """Query; off if on; then on."""
        if await self.query(system_id) == "on":
            await self.perform("off", system_id)
        await self.perform("on", system_id)

    # --- MAAS 3.5/3.6: the power CLI, the agent, the monitor ------------------------------

    async def cli(self, command: str) -> str:
        """`maas-power <command> webhook ...`: the action with no system_id, then a query."""
        if command in ("on", "off"):
            await self.perform(command)
        elif command == "cycle":
            await self.cycle()
        return await self.query()

    def _timeout(self, attempt: int) -> float:
        if attempt < len(self.attempt_timeouts):
            return self.attempt_timeouts[attempt]
        return ACTIVITY_TIMEOUT * self.scale

    async def agent(self, action: str) -> str:
        """The region's workflow for "on", "off" or "cycle": what MAAS finally records."""
        failure = DriverError("no attempt ran")
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(RETRY_BACKOFF[attempt - 1] * self.scale)
            self.attempts += 1
            try:
                printed = await asyncio.wait_for(self.cli(action), self._timeout(attempt))
            except TimeoutError:
                failure = DriverError("activity StartToClose timeout")
                continue
            except DriverError as exc:
                failure = exc
                continue
            if printed == _WANTED[action]:
                return printed
            failure = DriverError("BMC is in the wrong power state")
        raise failure

    async def monitor(self) -> str:
        """One pass of the rack's power monitor: the state MAAS stores, "error" on failure."""
        try:
            return await self.query(self.system_id)
        except DriverError:
            return "error"

    def posts(self) -> int:
        """How many action POSTs were sent (the 404 quirk's follow-ups are not logged)."""
        return sum(1 for sent in self.sent if sent.method == "POST")
