"""Carry out one lifecycle `Action` for one machine: a MAAS op, a power helper or provisioning.

The lifecycle decides what to do; this module does it, once, and reports how it went as an
`Outcome`. It records provisioning progress in the store so a restart never re-runs a
finished script and never POSTs twice for one deploy. It does not retry: a failed MAAS op
is re-decided by the next pass (level-triggered), and a failed provisioning run is retried
after the store's capped exponential backoff. It does not log: the daemon logs one line per
action from the returned `Outcome`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from maasflow.common.errors import ProvisionError
from maasflow.daemon.lifecycle import Action, ActionKind
from maasflow.daemon.maas.client import MaasClient
from maasflow.daemon.maas.models import Machine
from maasflow.daemon.power_helper import run_power_helper
from maasflow.daemon.provisioning import (
    HttpProvisioner,
    PollResult,
    ProvisionerTrouble,
    ScriptProvisioner,
    Target,
    target_for,
)
from maasflow.daemon.store import ProvisionMode, ProvisionRecord, ProvisionStore, retry_delay

Provisioner = ScriptProvisioner | HttpProvisioner


@dataclass(frozen=True)
class Outcome:
    """How an action went: `ok`, `running` (provisioning continues) or `failed`.

    `provisioned_in` is set when a provisioning attempt ended (either way): the seconds
    since it started, which may span many passes in URL mode.
    """

    result: str
    detail: str = ""
    provisioned_in: float | None = None


OK = Outcome("ok")


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
    ) -> None:
        self.client = client
        self.store = store
        self.provisioner = provisioner
        self.distro = distro
        self.power_helper = power_helper
        self.power_helper_args = power_helper_args  # before the MACs: maas-flow's USER HOST
        self.clock = clock
        self._ops: dict[ActionKind, Callable[[Machine, Action], Awaitable[Outcome]]] = {
            ActionKind.RENAME: self._rename,
            ActionKind.POWER_OFF: self._power_off,
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

    async def perform(self, machine: Machine, action: Action) -> Outcome:
        """Do `action` for `machine`; MAAS errors propagate to the caller, typed."""
        op = self._ops.get(action.kind)
        if op is None:
            raise ValueError(f"unknown action kind {action.kind!r}")
        return await op(machine, action)

    async def _rename(self, machine: Machine, action: Action) -> Outcome:
        await self.client.update(machine.system_id, hostname=action.params["hostname"])
        return OK

    async def _power_off(self, machine: Machine, action: Action) -> Outcome:
        await self.client.power_off(machine.system_id, action.params.get("stop_mode", "soft"))
        return OK

    async def _commission(self, machine: Machine, action: Action) -> Outcome:
        await self.client.commission(machine.system_id)
        return OK

    async def _allocate(self, machine: Machine, action: Action) -> Outcome:
        await self.client.allocate(machine.system_id)
        return OK

    async def _deploy(self, machine: Machine, action: Action) -> Outcome:
        await self.client.deploy(machine.system_id, distro_series=self.distro or None)
        return OK

    async def _release(self, machine: Machine, action: Action) -> Outcome:
        await self.client.release(machine.system_id, comment=f"maasflow: {action.reason}")
        return OK

    async def _quarantine(self, machine: Machine, action: Action) -> Outcome:
        tag = action.params["tag"]
        comment = "maasflow leaves machines with this tag alone; remove it to retry them"
        if await self.client.tag_machine(tag, machine.system_id, comment) == 0:
            return Outcome("failed", f"MAAS found no machine {machine.system_id} to tag {tag}")
        return Outcome("ok", f"tagged {tag}")

    async def _power_helper(self, machine: Machine, action: Action) -> Outcome:
        fields = await run_power_helper(
            self.power_helper, machine.macs, args=self.power_helper_args
        )
        await self.client.update(machine.system_id, **fields)
        return Outcome("ok", f"power_type={fields['power_type']}")

    async def _provision(self, machine: Machine, action: Action) -> Outcome:
        provisioner = self._require_provisioner()
        url = isinstance(provisioner, HttpProvisioner)
        mode = ProvisionMode.URL if url else ProvisionMode.SCRIPT
        record = self.store.start(machine.system_id, machine.hostname, mode)
        try:
            target = await _target(machine)
            if isinstance(provisioner, HttpProvisioner):
                await provisioner.submit(target)
                return Outcome("running", "submitted")
            tail = await provisioner.run(target)
        except ProvisionError as exc:
            return self._failed(machine, record, exc)
        except Exception as exc:  # an OSError or a store error must not leave it "running"
            return self._failed(machine, record, ProvisionError(f"{type(exc).__name__}: {exc}"))
        self.store.complete(machine.system_id, tail)
        return Outcome("ok", "provisioned", self.clock() - record.started_at)

    async def _provision_poll(self, machine: Machine, action: Action) -> Outcome:
        provisioner = self._require_provisioner()
        record = self.store.get(machine.system_id)
        if record is None or not isinstance(provisioner, HttpProvisioner):
            return Outcome("failed", "no provisioning record to poll")
        try:
            target = await _target(machine)
            result = await provisioner.poll(target, record.started_at)
            if result is PollResult.MISSING:
                await provisioner.submit(target)
                return Outcome("running", "provisioner had no record: submitted again")
        except ProvisionerTrouble as exc:
            return Outcome("failed", f"{exc}; asking again next pass")  # record stays running
        except ProvisionError as exc:
            return self._failed(machine, record, exc)
        if result is PollResult.DONE:
            self.store.complete(machine.system_id, "")
            return Outcome("ok", "provisioned", self.clock() - record.started_at)
        return Outcome("running", "provisioning")

    async def _forget(self, machine: Machine, action: Action) -> Outcome:
        self.store.clear(machine.system_id)
        if isinstance(self.provisioner, HttpProvisioner):
            await self.provisioner.forget(machine.system_id)
        return Outcome("ok", "provisioning record cleared")

    def _failed(self, machine: Machine, record: ProvisionRecord, exc: ProvisionError) -> Outcome:
        now = self.clock()
        self.store.fail(
            machine.system_id, str(exc), exc.output_tail, now + retry_delay(record.attempts)
        )
        return Outcome("failed", str(exc), now - record.started_at)

    def _require_provisioner(self) -> Provisioner:
        if self.provisioner is None:
            raise ProvisionError("provisioning requested but no PROVISION_URL is set")
        return self.provisioner


async def _target(machine: Machine) -> Target:
    """`target_for` may fall back to a blocking DNS lookup: keep it off the event loop."""
    return await asyncio.to_thread(target_for, machine)
