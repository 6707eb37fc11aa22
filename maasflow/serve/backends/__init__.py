"""Power backends of `maasflow serve`: the shared contract and the errors it raises.

A backend switches and reads one machine. Each power request from MAAS becomes one call:
`power_on`, `power_off` or `query`, with a `Target` naming the machine. Calls must be
idempotent, because MAAS re-POSTs an action every round until the query agrees
(`src/provisioningserver/drivers/power/__init__.py`, MAAS 3.6).

Failures are `PowerError`s that carry the HTTP status the router answers with::

    PowerError               502  the backend failed or answered nonsense
    ├── BackendUnavailable   503  could not reach it, or the service is shutting down
    ├── AckTimeout           504  nobody acknowledged a power-off in time
    ├── Superseded           409  a newer request (on after off) replaced this one
    └── UnsafeArgument       400  a value would reach a program's argv as an option

This package stops at the machine: HTTP routing and auth are in `power_api.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from maasflow.common.errors import PowerError
from maasflow.serve.power_state import PowerState

__all__ = [
    "AckTimeout",
    "Backend",
    "BackendUnavailable",
    "PowerError",
    "PowerState",
    "Superseded",
    "Target",
    "UnsafeArgument",
    "http_status",
]


class BackendUnavailable(PowerError):
    """The switch, host or program could not be reached right now (503)."""


class AckTimeout(PowerError):
    """A power-off was not acknowledged by a person before its deadline (504)."""


class Superseded(PowerError):
    """The request was replaced by a newer, contrary one (409)."""


class UnsafeArgument(PowerError):
    """A placeholder's value starts with "-", so a program would read it as an option (400)."""


_STATUS: tuple[tuple[type[PowerError], int], ...] = (
    (BackendUnavailable, 503),
    (AckTimeout, 504),
    (Superseded, 409),
    (UnsafeArgument, 400),
)


def http_status(error: PowerError) -> int:
    """The HTTP status the router answers for a backend failure (never 500)."""
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 502


@dataclass(frozen=True)
class Target:
    """The machine a request is about, with the values command templates may use."""

    name: str
    mac: str | None
    hostname: str
    system_id: str


class Backend(Protocol):
    """What the router needs from any backend."""

    async def power_on(self, target: Target) -> PowerState: ...

    async def power_off(self, target: Target) -> PowerState: ...

    async def query(self, target: Target) -> PowerState: ...

    async def aclose(self) -> None: ...
