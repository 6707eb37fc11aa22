"""The rack's periodic power monitor: the one caller that sends `System_id` to a webhook.

Facts §3.6 and §10.2 (`src/provisioningserver/rpc/power.py`,
`src/provisioningserver/rackdservices/node_power_monitor_service.py`): MAAS queries every
queryable machine's BMC about every 5 minutes, skipping Broken machines, and stores what it
reads; a query still failing after the driver's retries sets the power state to "error"
and writes "Failed to query node's BMC". Its requests carry `System_id: <system_id>`.

The simulator runs one pass over its webhook machines every `power_monitor_interval`
seconds (scaled by the time factor), one machine after another; with no interval
configured there is no monitor, so a test's request counts stay exact. Other drivers'
states are modelled, not read, so the monitor leaves them alone. Querying and recording is
`PowerControl.monitor_query`'s; this module only decides when and whom.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress

from maasflow.sim.clock import SimClock
from maasflow.sim.config import SimConfig
from maasflow.sim.power import PowerControl
from maasflow.sim.statuses import Status
from maasflow.sim.world import World


class PowerMonitor:
    """Queries every webhook machine's BMC once per interval while running."""

    def __init__(
        self, world: World, power: PowerControl, config: SimConfig, clock: SimClock
    ) -> None:
        self._world = world
        self._power = power
        self._config = config
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the passes on the running loop, if an interval is configured."""
        interval = self._config.power_monitor_interval
        if interval is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(interval))

    async def aclose(self) -> None:
        """Stop the passes, abandoning a query in flight."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def pass_once(self) -> None:
        """Query each webhook machine that is not Broken, one after another."""
        for machine in list(self._world.machines.values()):
            if machine.power_type == "webhook" and machine.status != Status.BROKEN:
                await self._power.monitor_query(machine)

    async def _run(self, interval: float) -> None:
        while True:
            await self._clock.sleep(interval)
            await self.pass_once()
