"""Digital Loggers backend: one outlet of a web power switch, made idempotent and patient.

The wire (REST or legacy CGI) is in `dli_wire.py`; with `dialect: auto` the first request
picks it. This layer adds what MAAS's confirm loop needs:

- idempotence: `on` of an outlet that reads on does nothing, unless `cycle_on` asks for
  MAAS's dli behaviour (off, pause, check it reads off, on); a second cycle is refused for
  `cycle_guard` seconds after our own `on`, since MAAS re-POSTs `on` whenever its query
  lagged behind.
- patience: real units report a new state one read late, so after switching the outlet is
  read until it shows the wanted state or `settle_timeout` passes; a query soon after a
  switch that disagrees with it is polled the same way.

One lock per outlet keeps a cycle and a query from interleaving.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

import httpx
import structlog

from maasflow.serve.backends import PowerError, PowerState, Target
from maasflow.serve.backends.dli_wire import (
    DliOutlet,
    LegacyOutlet,
    RestOutlet,
    base_url,
    detect_dialect,
)
from maasflow.serve.power_config import DliMachine

log = structlog.get_logger(__name__)


def _state(on: bool) -> PowerState:
    return "on" if on else "off"


class DliBackend:
    """One DLI outlet."""

    def __init__(
        self, spec: DliMachine, password: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._spec = spec
        self._password = password
        self._clock = clock
        self._client = httpx.AsyncClient(
            base_url=base_url(spec.address),
            timeout=spec.timeout,
            verify=spec.verify_tls,
            follow_redirects=True,
        )
        self._outlet: DliOutlet | None = None
        self._lock = asyncio.Lock()
        self._last_on = -math.inf
        self._expect: tuple[bool, float] | None = None  # last commanded state, and when

    async def power_on(self, target: Target) -> PowerState:
        async with self._lock:
            outlet = await self._wire()
            current = await outlet.read()
            if current and self._should_cycle():
                log.info("dli.cycle", machine=target.name, outlet=self._spec.outlet)
                await self._switch(outlet, False, required=True)
                await asyncio.sleep(self._spec.cycle_delay)
                current = False
            if current:
                return "on"
            state = await self._switch(outlet, True)
            self._last_on = self._clock()
            return _state(state)

    async def power_off(self, target: Target) -> PowerState:
        async with self._lock:
            outlet = await self._wire()
            if not await outlet.read():
                return "off"
            return _state(await self._switch(outlet, False))

    async def query(self, target: Target) -> PowerState:
        async with self._lock:
            outlet = await self._wire()
            state = await outlet.read()
            if self._expect is not None and state != self._expect[0] and self._recent():
                state = await self._settle(outlet, self._expect[0])
            return _state(state)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _wire(self) -> DliOutlet:
        if self._outlet is None:
            dialect = self._spec.dialect
            if dialect == "auto":
                dialect = await detect_dialect(self._client)
            kind = RestOutlet if dialect == "rest" else LegacyOutlet
            self._outlet = kind(self._client, self._spec.outlet, self._spec.user, self._password)
            log.info("dli.dialect", address=self._spec.address, dialect=dialect)
        return self._outlet

    def _should_cycle(self) -> bool:
        return self._spec.cycle_on and self._clock() - self._last_on >= self._spec.cycle_guard

    def _recent(self) -> bool:
        return self._expect is not None and (
            self._clock() - self._expect[1] <= 2 * self._spec.settle_timeout
        )

    async def _switch(self, outlet: DliOutlet, on: bool, *, required: bool = False) -> bool:
        await outlet.switch(on)
        self._expect = (on, self._clock())
        state = await self._settle(outlet, on)
        if required and state != on:
            raise PowerError(
                f"DLI outlet {self._spec.outlet} still reads {_state(state)} after switching"
            )
        return state

    async def _settle(self, outlet: DliOutlet, wanted: bool) -> bool:
        deadline = self._clock() + self._spec.settle_timeout
        state = await outlet.read()
        while state != wanted and self._clock() < deadline:
            await asyncio.sleep(self._spec.poll_interval)
            state = await outlet.read()
        return state
