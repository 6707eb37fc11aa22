"""Powering simulated machines: a fake BMC for most drivers, MAAS's webhook driver for real.

Webhook machines are powered over HTTP the way the simulated MAAS version does it
(`SimConfig.power_path`, facts §7 and §10.2):

- MAAS 3.5 and later (the default): the region runs each action as a workflow on the rack's
  agent (`agent.py`): the power CLI with no `System_id` header, then always one more query;
  3 attempts of at most 5 minutes. `query_power_state` is one CLI `status` run.
- MAAS 3.4 and earlier: the rack's driver, called with the machine's system_id, so every
  request carries `System_id`; the confirm loop alone, no final query.

Only the rack's power monitor (`monitor.py`, through `monitor_query`) sends `System_id` in
3.5+. Starting a machine for commissioning, deployment or disk erasure is MAAS's
`Node._start`: a cycle when the machine is on, else on. Any other driver is a fake BMC
that reaches the wanted state after `Durations.power`; `manual` cannot be driven at all.
"Powering on/off" (INFO) and "Node powered on/off" (DEBUG) are written by the rack's RPC
path only (3.5's `provisioningserver/rpc/power.py`, `power_change_starting` and
`power_change_success`); MAAS 3.6 writes neither (only its migrations name them), so there a
power change shows in `power_state` alone: a poller of the event log never hears of it.
A failed action sets `power_state` to "error" and writes MAAS's failure event; a failed
query sets "error" and writes "Failed to query node's BMC" (the rack's monitor does that;
what 3.5+'s API does after its workflow's three query attempts is not modelled: a query
here is one CLI run). Secrets and URIs are never put into error messages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from maasflow.sim.agent import PowerAction, PowerAgent
from maasflow.sim.clock import SimClock
from maasflow.sim.config import PowerPath, SimConfig
from maasflow.sim.machine import Machine
from maasflow.sim.webhook import PowerFailed, Target, WebhookDriver
from maasflow.sim.world import World

log = structlog.get_logger(__name__)


class PowerControl:
    """Changes and queries machines' power, writing the events MAAS writes."""

    def __init__(self, world: World, config: SimConfig, clock: SimClock) -> None:
        self._world = world
        self._config = config
        self._clock = clock
        self._agent_path = config.power_path is PowerPath.AGENT_WORKFLOW
        self.webhook = WebhookDriver(config.maas_version, clock)
        self.agent = PowerAgent(self.webhook, clock)

    async def aclose(self) -> None:
        await self.webhook.aclose()

    async def change(self, machine: Machine, want: str) -> bool:
        """Bring `machine` to power `want`; False (and power_state "error") on failure."""
        return await self._act(machine, PowerAction(want))

    async def start(self, machine: Machine) -> bool:
        """Power on to commission, deploy or erase: a cycle if the machine is on (`_start`)."""
        action = PowerAction.CYCLE if machine.power_state == "on" else PowerAction.ON
        return await self._act(machine, action)

    async def query(self, machine: Machine) -> str:
        """The machine's power state as its BMC reports it (webhook) or as modelled."""
        target = self._target(machine, send_system_id=not self._agent_path)
        read = self.agent.status if self._agent_path else self.webhook.query
        return await self._read(machine, lambda: read(target))

    async def monitor_query(self, machine: Machine) -> str:
        """One query of the rack's power monitor, the one caller that sends `System_id`."""
        target = self._target(machine, send_system_id=True)
        return await self._read(machine, lambda: self.webhook.query(target))

    async def _act(self, machine: Machine, action: PowerAction) -> bool:
        want = action.wanted
        if not self._agent_path:  # the rack's RPC path writes it (3.5 `rpc/power.py`); 3.6 none
            self._world.record(machine, f"NODE_POWER_{want.upper()}_STARTING")
        try:
            await self._drive(machine, action)
        except PowerFailed as exc:
            machine.power_state = "error"
            self._world.record(machine, f"NODE_POWER_{want.upper()}_FAILED", str(exc))
            log.info("sim_power_failed", system_id=machine.system_id, want=want, error=str(exc))
            return False
        if machine.power_type != "manual":
            machine.power_state = want
            if not self._agent_path:  # 3.5's `power_change_success`; 3.6 writes no event
                self._world.record(machine, f"NODE_POWERED_{want.upper()}")
        return True

    async def _drive(self, machine: Machine, action: PowerAction) -> None:
        if machine.power_type == "webhook":
            await self._webhook(machine, action)
        elif machine.power_type != "manual":
            await self._clock.sleep(self._config.durations.power)

    async def _webhook(self, machine: Machine, action: PowerAction) -> None:
        if self._agent_path:
            await self.agent.run(self._target(machine, send_system_id=False), action)
            return
        target = self._target(machine, send_system_id=True)
        if action is PowerAction.CYCLE:
            await self.webhook.cycle(target)
        else:
            await self.webhook.perform(target, action.value)

    async def _read(self, machine: Machine, read: Callable[[], Awaitable[str]]) -> str:
        if machine.power_type != "webhook":
            return machine.power_state
        try:
            state = await read()
        except PowerFailed as exc:
            machine.power_state = "error"
            self._world.record(machine, "NODE_POWER_QUERY_FAILED", str(exc))
            return "error"
        machine.power_state = state
        return state

    @staticmethod
    def _target(machine: Machine, send_system_id: bool) -> Target:
        return Target(machine.system_id, machine.power_parameters, send_system_id)
