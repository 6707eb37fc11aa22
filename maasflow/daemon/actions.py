"""Carry out one lifecycle `Action` for one machine: a MAAS op, a power helper or provisioning.

The lifecycle decides what to do; this module does it, once, and reports how it went as an
`Outcome`. A deploy sends the desire's parameters as the action carries them (user data from its
hidden part), a release its erase flags, and provisioning goes to the machine's provisioner: its
targets rule's override (script or URL, and role), or PROVISION_URL's. Provisioning goes to
`attempts`, which records its progress in the store so a restart never re-runs a finished
script, never starts a second run beside a live one and never POSTs twice for one deploy. It
does not retry: a failed MAAS op is re-decided by the next pass (level-triggered), and a failed
provisioning run is retried after the store's capped exponential backoff. It does not log: the
daemon logs one line per action from the returned `Outcome`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from maasflow.common.errors import ProvisionError
from maasflow.daemon.attempts import Attempts, Provisioner
from maasflow.daemon.desire import Provisioning
from maasflow.daemon.lifecycle import Action, ActionKind
from maasflow.daemon.maas.client import MaasClient
from maasflow.daemon.maas.listing import MachineData
from maasflow.daemon.outcome import OK, Outcome
from maasflow.daemon.power_helper import run_power_helper
from maasflow.daemon.store import ProvisionStore
from maasflow.daemon.telemetry import Health

__all__ = ["OK", "Actuator", "Outcome", "Provisioner"]


class Actuator:
    """Performs actions against MAAS and the provisioner; one instance per daemon."""

    def __init__(
        self,
        client: MaasClient,
        store: ProvisionStore,
        provisioner: Provisioner | None,
        *,
        distro: str = "",
        power_helper: str = "",
        power_helper_args: tuple[str, ...] = (),
        clock: Callable[[], float] = time.time,
        health: Health | None = None,
        fence: Callable[[], None] = lambda: None,
        build: Callable[[str], Provisioner | None] = lambda _where: None,
    ) -> None:
        self.client = client
        self.store = store
        self.provisioner = provisioner
        self.distro = distro
        self.power_helper = power_helper
        self.power_helper_args = power_helper_args  # before the MACs: maas-flow's USER HOST
        self.clock = clock
        self.health = health
        self.fence = fence  # raises NotLeader in a daemon that must not act (`leadership`)
        # A targets rule's provisioning override: `build` makes a provisioner of its script or
        # URL (once each), `provisioning_of` (set by the daemon) names a machine's override.
        self.build = build
        self.provisioning_of: Callable[[MachineData], Provisioning | None] = lambda _m: None
        self._by_rule: dict[str, Provisioner | None] = {}
        self._ops: dict[ActionKind, Callable[[MachineData, Action], Awaitable[Outcome]]] = {
            ActionKind.RENAME: self._rename,
            ActionKind.POWER_OFF: self._power_off,
            ActionKind.POWER_ON: self._power_on,
            ActionKind.COMMISSION: self._commission,
            ActionKind.ALLOCATE: self._allocate,
            ActionKind.DEPLOY: self._deploy,
            ActionKind.RELEASE: self._release,
            ActionKind.QUARANTINE: self._quarantine,
            ActionKind.POWER_HELPER: self._power_helper,
            ActionKind.PROVISION: self._provision,
            ActionKind.PROVISION_POLL: self._provision_poll,
            ActionKind.FORGET_PROVISION: self._forget,
        }

    async def perform(self, machine: MachineData, action: Action) -> Outcome:
        """Do `action` for `machine`; MAAS errors propagate to the caller, typed."""
        op = self._ops.get(action.kind)
        if op is None:
            raise ValueError(f"unknown action kind {action.kind!r}")
        self.fence()
        return await op(machine, action)

    async def _rename(self, machine: MachineData, action: Action) -> Outcome:
        await self.client.update(machine.system_id, hostname=action.params["hostname"])
        return OK

    async def _power_off(self, machine: MachineData, action: Action) -> Outcome:
        await self.client.power_off(machine.system_id, action.params.get("stop_mode", "soft"))
        return OK

    async def _commission(self, machine: MachineData, action: Action) -> Outcome:
        await self.client.commission(machine.system_id)
        return OK

    async def _allocate(self, machine: MachineData, action: Action) -> Outcome:
        await self.client.allocate(machine.system_id)
        return OK

    async def _deploy(self, machine: MachineData, action: Action) -> Outcome:
        """Deploy with the desire's parameters (the action's, user data from its hidden part);
        an action without any falls back to `-distro`."""
        form = {**action.params, **action.hidden}
        if not form and self.distro:
            form = {"distro_series": self.distro}
        await self.client.deploy_with(machine.system_id, form)
        return OK

    async def _release(self, machine: MachineData, action: Action) -> Outcome:
        """Release with the action's erase flags (facts §3.7), if any."""
        comment = f"maasflow: {action.reason}"
        await self.client.release(machine.system_id, comment=comment, **action.params)
        return OK

    async def _power_on(self, machine: MachineData, action: Action) -> Outcome:
        await self.client.power_on(machine.system_id)
        return OK

    async def _quarantine(self, machine: MachineData, action: Action) -> Outcome:
        tag = action.params["tag"]
        comment = "maasflow leaves machines with this tag alone; remove it to retry them"
        if await self.client.tag_machine(tag, machine.system_id, comment) == 0:
            return Outcome("failed", f"MAAS found no machine {machine.system_id} to tag {tag}")
        return Outcome("ok", f"tagged {tag}")

    async def _power_helper(self, machine: MachineData, action: Action) -> Outcome:
        fields = await run_power_helper(
            self.power_helper, machine.macs, args=self.power_helper_args
        )
        await self.client.update(machine.system_id, **fields)
        return Outcome("ok", f"power_type={fields['power_type']}")

    async def _provision(self, machine: MachineData, action: Action) -> Outcome:
        return await self._attempts(machine).provision(machine)

    async def _provision_poll(self, machine: MachineData, action: Action) -> Outcome:
        return await self._attempts(machine).poll(machine)

    async def _forget(self, machine: MachineData, action: Action) -> Outcome:
        return await self._attempts(machine).forget(machine)

    def _attempts(self, machine: MachineData) -> Attempts:
        provisioner, role = self.provisioner_for(machine)
        if provisioner is None:
            raise ProvisionError("provisioning requested but no PROVISION_URL is set")
        return Attempts(
            self.store, provisioner, clock=lambda: self.clock(), health=self.health,
            fence=self.fence, role=role,
        )  # fmt: skip

    def provisioner_for(self, machine: MachineData) -> tuple[Provisioner | None, str]:
        """The machine's provisioner and role: its targets rule's override, or PROVISION_URL's."""
        override = self.provisioning_of(machine)
        if override is None:
            return self.provisioner, ""
        where = override.script or override.url or ""
        provisioner = self._by_rule.get(where)
        if provisioner is None:
            provisioner = self._by_rule[where] = self.build(where)
        return provisioner, override.role or ""
