"""Fault injection: the knobs (`Faults`) and the seeded picker that applies them.

Each API request (not `version/`, not the 1.0 stub) first waits `latency_ms`, then rolls one
seeded number that selects at most one fault by cumulative rate: a 500, a 503 with
`Retry-After` (MAAS sends 10 s when no rack is reachable, facts §5.2), an HTML 409 with
`Retry-After` (MAAS's database-conflict page, facts §5.1, 5 s there), a connection dropped
before the handler runs, one dropped after it ran, or an answer whose body is truncated or
malformed. The error faults and `drop` stand in for the handler, so that write did not
happen; `drop_after`, `truncate` and `malformed` (`AFTER_HANDLER`) spoil the handler's answer
on its way out, so that write DID happen and the client cannot tell (as when MAAS committed
and the reply was lost). The request log marks each with the fault's name. How the
connection is dropped and when the handler runs is `asgi.py`'s business.

One fault is per machine, not per request: `ip_exhaustion_share` picks machines (by a roll
seeded with the run's seed and the system_id, so the same ones every time) whose deploy
MAAS always refuses with its address-exhaustion 503 (`StaticIPAddressExhaustion`, no
Retry-After, facts §3.3, §5.2), as a subnet with no free address does. `exhausted()` says
which; `api.py` answers the deploy.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields, replace

from maasflow.common.errors import ConfigError
from maasflow.sim.http import HTML, Response, text

RATE_KNOBS = (
    "error_500_rate",
    "error_503_rate",
    "conflict_409_rate",
    "drop_rate",
    "drop_after_rate",
    "truncate_rate",
    "malformed_rate",
)
FAULT_NAMES = {
    "error_500_rate": "error_500",
    "error_503_rate": "error_503",
    "conflict_409_rate": "conflict_409",
    "drop_rate": "drop",
    "drop_after_rate": "drop_after",
    "truncate_rate": "truncate",
    "malformed_rate": "malformed",
}
AFTER_HANDLER = frozenset({"drop_after", "truncate", "malformed"})
CONFLICT_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>409 Conflict</title></head><body>\n"
    "<h1>Conflict error</h1>\n"
    "<p>Conflict error. Try your request again, as it will most likely succeed.</p>\n"
    "</body></html>\n"
)


@dataclass(frozen=True)
class Faults:
    """Fault knobs; every rate is a probability per API request, all off by default."""

    latency_ms: float = 0.0
    error_500_rate: float = 0.0
    error_503_rate: float = 0.0
    retry_after_503: int = 10  # MAAS's ExternalProcessError / NoConnectionsAvailable (facts §5.2)
    conflict_409_rate: float = 0.0
    retry_after_409: int = 5  # MAAS 3.2+'s retry-exhausted HTML 409 (facts §5.1)
    drop_rate: float = 0.0
    drop_after_rate: float = 0.0
    truncate_rate: float = 0.0
    malformed_rate: float = 0.0
    ip_exhaustion_share: float = 0.0  # share of machines whose deploy always gets the 503

    def __post_init__(self) -> None:
        for name in RATE_KNOBS:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"fault {name}={value}: a rate must be between 0 and 1")
        if sum(getattr(self, name) for name in RATE_KNOBS) > 1.0 + 1e-9:
            raise ConfigError("fault rates add up to more than 1; lower some of them")
        if not 0.0 <= self.ip_exhaustion_share <= 1.0:
            raise ConfigError("fault ip_exhaustion_share: a share must be between 0 and 1")
        if self.latency_ms < 0 or self.retry_after_503 < 0 or self.retry_after_409 < 0:
            raise ConfigError("fault latency_ms and retry_after values must not be negative")

    def describe(self) -> str:
        """The knobs that differ from the defaults, as `name=value` words."""
        default = Faults()
        changed = [
            f"{item.name}={getattr(self, item.name)}"
            for item in fields(self)
            if getattr(self, item.name) != getattr(default, item.name)
        ]
        return " ".join(changed) or "none"


class FaultInjector:
    """Rolls the seeded dice for each request and builds the faulted answers."""

    def __init__(
        self,
        faults: Faults,
        seed: int,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.faults = faults
        self._rng = random.Random(f"faults:{seed}")
        self._sleep = sleep

    async def delay(self) -> None:
        """Wait the configured latency, if any."""
        if self.faults.latency_ms > 0:
            await self._sleep(self.faults.latency_ms / 1000.0)

    def pick(self) -> str | None:
        """The fault for the next request (e.g. "error_503"), or None for a normal answer."""
        roll = self._rng.random()
        threshold = 0.0
        for knob in RATE_KNOBS:
            threshold += getattr(self.faults, knob)
            if roll < threshold:
                return FAULT_NAMES[knob]
        return None

    def response(self, fault: str) -> Response:
        """The answer given instead of the handler's for an error fault (500, 503, 409)."""
        if fault == "error_500":
            return text(500, "Internal server error (simulated fault).")
        if fault == "error_503":
            headers = {"Retry-After": str(self.faults.retry_after_503)}
            return text(503, "Unable to connect to any rack controller.", headers)
        if fault == "conflict_409":
            headers = {"Retry-After": str(self.faults.retry_after_409)}
            return Response(409, CONFLICT_PAGE.encode(), HTML, headers)
        raise ValueError(f"no response for fault {fault!r}")


def exhausted(faults: Faults, seed: int, system_id: str) -> bool:
    """Whether this machine's deploy always meets MAAS's address exhaustion (see above)."""
    if faults.ip_exhaustion_share <= 0.0:
        return False
    return random.Random(f"exhausted:{seed}:{system_id}").random() < faults.ip_exhaustion_share


def spoil(fault: str, answer: Response) -> Response:
    """The handler's `answer` with its body truncated or malformed; status and headers kept.

    An empty body (a 204) has nothing to spoil and is returned as it is.
    """
    if not answer.body:
        return answer
    if fault == "truncate":
        body = answer.body[: max(1, len(answer.body) // 2)]
    elif fault == "malformed":
        body = mangle(answer.body)
    else:
        raise ValueError(f"fault {fault!r} does not spoil an answer")
    return replace(answer, body=body)


def mangle(body: bytes) -> bytes:
    """Make JSON unparsable in a deterministic way: a stray comma after the opening bracket."""
    if not body:
        return b"{,}"
    return body[:1] + b"," + body[1:]
