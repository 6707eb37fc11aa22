"""MAAS 3.5+'s way of running a power action: a region workflow, the rack's agent, the power CLI.

Written from facts §10.2 (`src/maastemporalworker/workflow/power.py`,
`src/maasagent/internal/power/service.go`, `src/provisioningserver/power_driver_command.py`).
The region starts a workflow whose one activity runs on the rack's agent; the agent runs
MAAS's power CLI, which calls the driver with no system_id, so no `System_id` header:
`on`/`off` through the confirm loop, `cycle` through the driver's cycle, and then always
one more query, whose state the CLI prints. The agent accepts the action only when the
printed state is the wanted one ("on" for on and cycle, "off" for off). The workflow tries
the activity 3 times and kills an attempt after 5 minutes (its start-to-close timeout),
with its request in flight; between attempts Temporal's default retry policy waits 1 s,
then 2 s. Every wait and the attempt limit are simulated time (`clock.SimClock`).

A query is one CLI `status` run: the driver's query, which retries errors 7 times.

Where it stops: which path a simulator takes, the events and the machine's `power_state`
are `power.py`'s; the HTTP is `webhook.py`'s.
"""

from __future__ import annotations

from enum import StrEnum

from maasflow.sim.clock import SimClock
from maasflow.sim.webhook import PowerFailed, Target, WebhookDriver

ATTEMPTS = 3  # RetryPolicy(maximum_attempts=3)
ATTEMPT_TIMEOUT = 300.0  # s, POWER_ACTION_ACTIVITY_TIMEOUT (5 minutes)
RETRY_WAITS = (1.0, 2.0)  # s, Temporal's default: initial interval 1 s, coefficient 2
WRONG_STATE = "BMC is in the wrong power state"  # the agent's ErrWrongPowerState


class PowerAction(StrEnum):
    """The power CLI commands that change power."""

    ON = "on"
    OFF = "off"
    CYCLE = "cycle"

    @property
    def wanted(self) -> str:
        """The state the agent requires the CLI to print."""
        return "off" if self is PowerAction.OFF else "on"


class PowerAgent:
    """The region's power workflow around the agent's activity around the power CLI."""

    def __init__(self, driver: WebhookDriver, clock: SimClock) -> None:
        self._driver = driver
        self._clock = clock

    async def run(self, target: Target, action: PowerAction) -> None:
        """Run `action` as the workflow does; raise PowerFailed with the last attempt's error."""
        failure = PowerFailed(WRONG_STATE)
        for attempt in range(ATTEMPTS):
            if attempt:
                await self._clock.sleep(RETRY_WAITS[attempt - 1])
            try:
                async with self._clock.timeout(ATTEMPT_TIMEOUT):
                    printed = await self.cli(target, action)
            except TimeoutError:
                failure = PowerFailed("Power action timed out (activity StartToClose timeout).")
                continue
            except PowerFailed as exc:
                failure = exc
                continue
            if printed == action.wanted:
                return
            failure = PowerFailed(WRONG_STATE)
        raise failure

    async def cli(self, target: Target, action: PowerAction) -> str:
        """`maas-power <action> webhook ...`: the action, then the state it prints."""
        if action is PowerAction.CYCLE:
            await self._driver.cycle(target)
        else:
            await self._driver.perform(target, action.value)
        return await self.status(target)

    async def status(self, target: Target) -> str:
        """`maas-power status webhook ...`: the driver's query."""
        return await self._driver.query(target)
