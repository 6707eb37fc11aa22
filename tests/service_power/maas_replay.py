"""A replay of MAAS's webhook power driver, to call the power target exactly as MAAS would.

Behaviour taken from the project's MAAS facts (section 7, MAAS 3.6 `webhook.py` and the base
`PowerDriver`), kept independent of maasflow's code so a shared mistake cannot pass:

- on/off: POST with no body and no Content-Type; query: GET. Headers `User-Agent: MAAS
  <version>`, `Accept: application/json`, `System_Id: <id>`, and `Authorization: Bearer
  <token>` when a token is set, else Basic when both user and password are set.
- status >= 400 is an error, except the 404 quirk: MAAS fires a second request to the URI
  with `/` appended, ignores it, and treats the 404's body as a successful reply.
- query: `re.search(on_regex)` → "on", else `re.search(off_regex)` → "off", else "unknown".
- the confirm loop: for each wait in 1, 2, 2, 4, 6, 8, 12 s (times `scale`): POST the action
  (an error is held), wait, and if no error query; done when the state is the wanted one,
  otherwise the next round POSTs again. After the last round: the last error, or "BMC never
  transitioned".
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
from dataclasses import dataclass, field

import httpx

MAAS_DEFAULT_ON_REGEX = r"status.*\:.*running"
MAAS_DEFAULT_OFF_REGEX = r"status.*\:.*stopped"
WAIT_TIMES = (1, 2, 2, 4, 6, 8, 12)


class DriverError(Exception):
    """What MAAS would record as the power action's failure."""


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
    send_system_id: bool = True
    version: str = "3.6.1"
    sent: list[tuple[str, str, int]] = field(default_factory=list)

    def headers(self) -> dict[str, str]:
        headers = {"User-Agent": f"MAAS {self.version}", "Accept": "application/json"}
        if self.send_system_id:
            headers["System_Id"] = self.system_id
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        elif self.user and self.password:
            pair = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            headers["Authorization"] = f"Basic {pair}"
        return headers

    async def _request(self, method: str, uri: str) -> str:
        async with httpx.AsyncClient(
            verify=self.verify,
            follow_redirects=True,
            timeout=30,  # MAAS sets none
        ) as client:
            response = await client.request(method, uri, headers=self.headers())
            self.sent.append((method, uri, response.status_code))
            if response.status_code == 404:
                await client.request(method, uri + "/", headers=self.headers())  # ignored
                return response.text
        if response.status_code >= 400:
            raise DriverError(f"Request failed with response status code: {response.status_code}.")
        return response.text

    async def power_on(self) -> None:
        await self._request("POST", self.on_uri)

    async def power_off(self) -> None:
        await self._request("POST", self.off_uri)

    async def power_query(self) -> str:
        body = await self._request("GET", self.query_uri)
        if re.search(self.on_regex, body):
            return "on"
        if re.search(self.off_regex, body):
            return "off"
        return "unknown"

    async def perform(self, action: str) -> None:
        """MAAS's confirm loop for "on" or "off"."""
        act = self.power_on if action == "on" else self.power_off
        state = "unknown"
        error: DriverError | None = None
        for wait in WAIT_TIMES:
            error = None
            try:
                await act()
            except DriverError as exc:
                error = exc
            await asyncio.sleep(wait * self.scale)
            if error is None:
                try:
                    state = await self.power_query()
                except DriverError as exc:
                    error = exc
                    continue
                if state == action:
                    return
        if error is not None:
            raise error
        raise DriverError(
            f"Failed to power {self.system_id}. BMC never transitioned from {state} to {action}."
        )

    def posts(self) -> int:
        """How many action POSTs were sent (the 404 quirk's follow-ups are not logged)."""
        return sum(1 for method, _, _ in self.sent if method == "POST")
