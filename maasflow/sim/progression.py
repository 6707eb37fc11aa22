"""How simulated machines move through MAAS's lifecycle on their own.

The simulator's own rules, written from facts §3 (not shared with the daemon). An accepted
op changes the status at once and, for long operations, starts one asyncio task per machine
that walks the rest of the way with scaled waits:

    commission: → Commissioning (owner = caller, power on) → Testing → Ready (owner cleared,
                power off); failures → Failed commissioning / Failed testing
    deploy:     [Ready → Allocated] → Deploying (addresses assigned, power on) → Deployed,
                or Failed deployment
    (each "power on" that starts a machine is a power cycle if it is on, as in MAAS)
    release:    → Releasing (power off) → Ready, or Releasing failed; with erase=true
                → Disk erasing (power on) → Ready (power off), or Failed disk erasing;
                New instead of Ready when commissioning never passed (an enlisted
                machine: `_finalize_release` in MAAS's `src/maasserver/models/node.py`)
    abort:      Commissioning → New, Testing → where it was before, Deploying → Allocated,
                Disk erasing → Failed disk erasing (`abort_operation` in MAAS's
                `src/maasserver/models/node.py`); the machine is powered off

Outcomes are forced per machine (MachineSpec) or rolled from the config's failure rates with
a generator seeded by (seed, system_id, kind, attempt), so a run is reproducible whatever the
order of requests. Validation and permissions are `api.py`'s; power is `power.py`'s.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from typing import Any

import structlog

from maasflow.sim.clock import SimClock
from maasflow.sim.config import SimConfig
from maasflow.sim.machine import Machine
from maasflow.sim.power import PowerControl
from maasflow.sim.statuses import Status, status_name
from maasflow.sim.world import World, status_event

log = structlog.get_logger(__name__)

PASSED, ABORTED = 2, 5  # MAAS's SCRIPT_STATUS values for a script set's result


class Lifecycle:
    """Applies accepted ops to machines and runs their background progress."""

    def __init__(
        self, world: World, power: PowerControl, config: SimConfig, clock: SimClock
    ) -> None:
        self._world = world
        self._power = power
        self._config = config
        self._clock = clock
        self._flows: dict[str, asyncio.Task[None]] = {}
        self._power_tasks: dict[str, asyncio.Task[None]] = {}
        self._rates = {
            "commission": config.commission_fail_rate,
            "testing": config.testing_fail_rate,
            "deploy": config.deploy_fail_rate,
            "release": config.release_fail_rate,
            "erase": config.erase_fail_rate,
        }

    # -- ops -----------------------------------------------------------------------

    def commission(self, machine: Machine, user: str) -> None:
        self._world.record(machine, "REQUEST_NODE_START_COMMISSIONING", user=user)
        machine.return_status = machine.status
        machine.owner = user
        machine.commissioning_result, machine.testing_result = 1, 0
        self.set_status(machine, Status.COMMISSIONING)
        self._start(machine, self._commission_flow(machine))

    def allocate(self, machine: Machine, user: str, agent_name: str = "") -> None:
        self._world.record(machine, "REQUEST_NODE_ACQUIRE", user=user)
        machine.owner = user
        machine.agent_name = agent_name
        self.set_status(machine, Status.ALLOCATED)

    def deploy(self, machine: Machine, user: str, osystem: str, series: str) -> None:
        """Start deploying; the caller has already assigned addresses."""
        if machine.status == Status.READY:
            self.allocate(machine, user)
        self._world.record(machine, "REQUEST_NODE_START_DEPLOYMENT", user=user)
        machine.osystem, machine.distro_series = osystem, series
        self.set_status(machine, Status.DEPLOYING)
        self._start(machine, self._deploy_flow(machine))

    def enlist_deployed(self, machine: Machine, user: str) -> None:
        """A machine created with `deployed=true`: Deployed, owned by `user`, no addresses
        and no commissioning data, so a later release takes it to New (facts §3.9, §10.1)."""
        machine.owner = user
        machine.commissioning_result = machine.testing_result = -1
        self._world.release_ips(machine)

    def release(self, machine: Machine, user: str, erase: bool) -> None:
        self._world.record(machine, "REQUEST_NODE_RELEASE", user=user)
        if erase:
            self._world.record(machine, "REQUEST_NODE_ERASE_DISK", user=user)
        self.set_status(machine, Status.DISK_ERASING if erase else Status.RELEASING)
        self._start(machine, self._release_flow(machine, erase))

    def abort(self, machine: Machine, user: str) -> None:
        self.cancel(machine)
        request, done, target = _ABORTS[Status(machine.status)]
        self._world.record(machine, request, user=user)
        if machine.status == Status.TESTING:  # MAAS: back to the previous status
            target = Status(machine.return_status)
        if machine.status in (Status.COMMISSIONING, Status.TESTING):
            machine.commissioning_result = machine.testing_result = ABORTED
        if machine.status == Status.DEPLOYING:
            self._world.release_ips(machine)
        self._world.record(machine, done)
        self.set_status(machine, target)
        self.power(machine, "off")

    def mark_broken(self, machine: Machine, user: str, comment: str) -> None:
        self.cancel(machine)
        self._world.record(machine, "REQUEST_NODE_MARK_BROKEN", comment, user=user)
        machine.error_description = comment
        self.set_status(machine, Status.BROKEN)

    def mark_fixed(self, machine: Machine, user: str, comment: str) -> None:
        self._world.record(machine, "REQUEST_NODE_MARK_FIXED", comment, user=user)
        machine.error_description = ""
        machine.owner = None
        self.set_status(machine, Status.READY)

    def set_locked(self, machine: Machine, user: str, locked: bool, comment: str) -> None:
        kind = "REQUEST_NODE_LOCK" if locked else "REQUEST_NODE_UNLOCK"
        self._world.record(machine, kind, comment, user=user)
        machine.locked = locked

    def user_power(self, machine: Machine, user: str, want: str) -> None:
        """A power_on/power_off op: record the request and drive the power in the background."""
        kind = "REQUEST_NODE_START" if want == "on" else "REQUEST_NODE_STOP"
        self._world.record(machine, kind, user=user)
        self.power(machine, want)

    def power(self, machine: Machine, want: str) -> None:
        """Change power in the background; a newer request replaces an older one."""
        old = self._power_tasks.pop(machine.system_id, None)
        if old is not None:
            old.cancel()
        task = asyncio.get_running_loop().create_task(self._power_only(machine, want))
        self._power_tasks[machine.system_id] = task
        task.add_done_callback(lambda done: self._forget(self._power_tasks, machine, done))

    # -- status bookkeeping ----------------------------------------------------------

    def set_status(self, machine: Machine, new: int) -> None:
        """Move to `new`, writing "Node changed status" and MAAS's status event."""
        old = machine.status
        machine.status = new
        description = f"From '{status_name(old)}' to '{status_name(new)}'"
        if new == Status.ALLOCATED:  # as MAAS 3.6's `emit_state_transition_event` says it
            description += f" (to {machine.owner})"
        self._world.record(machine, "NODE_CHANGED_STATUS", description)
        kind = status_event(new)
        if kind is not None:
            self._world.record(machine, kind)

    def busy(self, machine: Machine) -> bool:
        """True while a background flow runs for `machine`."""
        return machine.system_id in self._flows

    def cancel(self, machine: Machine) -> None:
        """Stop the machine's background flow, if any (abort, release, delete)."""
        task = self._flows.pop(machine.system_id, None)
        if task is not None:
            task.cancel()

    def forget(self, machine: Machine) -> None:
        """Stop everything running for a machine that is being deleted."""
        self.cancel(machine)
        task = self._power_tasks.pop(machine.system_id, None)
        if task is not None:
            task.cancel()

    async def aclose(self) -> None:
        """Cancel every background task and wait for them to finish."""
        tasks = list(self._flows.values()) + list(self._power_tasks.values())
        self._flows.clear()
        self._power_tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- background flows ------------------------------------------------------------

    async def _commission_flow(self, machine: Machine) -> None:
        if not await self._power.start(machine):
            return self._fail(machine, Status.FAILED_COMMISSIONING, "Failed to power on node")
        await self._wait(self._config.durations.commissioning)
        verdict = self._verdict(machine, "commission")
        if verdict == "fail":
            machine.commissioning_result = 3
            self._world.record(machine, "NODE_COMMISSIONING_EVENT_FAILED", "Commissioning failed")
            await self._fail_and_stop(machine, Status.FAILED_COMMISSIONING, "Commissioning failed")
            return None
        machine.commissioning_result, machine.testing_result = 2, 1
        self.set_status(machine, Status.TESTING)
        await self._wait(self._config.durations.testing)
        if verdict == "fail_testing" or self._verdict(machine, "testing") == "fail":
            machine.testing_result = 3
            await self._fail_and_stop(machine, Status.FAILED_TESTING, "Testing failed")
            return None
        machine.testing_result = 2
        machine.owner = None
        self.set_status(machine, Status.READY)
        await self._power.change(machine, "off")
        return None

    async def _deploy_flow(self, machine: Machine) -> None:
        if not await self._power.start(machine):
            return self._fail(machine, Status.FAILED_DEPLOYMENT, "Failed to power on node")
        await self._wait(self._config.durations.deploying)
        if self._verdict(machine, "deploy") == "fail":
            self._world.record(machine, "NODE_INSTALL_EVENT_FAILED", "Installation failed")
            return self._fail(machine, Status.FAILED_DEPLOYMENT, "Installation failed")
        self.set_status(machine, Status.DEPLOYED)
        return None

    async def _release_flow(self, machine: Machine, erase: bool) -> None:
        durations = self._config.durations
        if erase:
            await self._power.start(machine)
            await self._wait(durations.disk_erasing)
            if self._verdict(machine, "erase") == "fail":
                await self._fail_and_stop(machine, Status.FAILED_DISK_ERASING, "Disk erase failed")
                return
        else:
            await self._power.change(machine, "off")
            await self._wait(durations.releasing)
            if self._verdict(machine, "release") == "fail":
                self._fail(machine, Status.FAILED_RELEASING, "Release failed")
                return
        self._world.release_ips(machine)
        machine.owner, machine.agent_name, machine.user_data = None, "", None
        machine.osystem, machine.distro_series, machine.hwe_kernel = "", "", None
        self.set_status(
            machine, Status.READY if machine.commissioning_result == PASSED else Status.NEW
        )
        if erase:
            await self._power.change(machine, "off")

    async def _power_only(self, machine: Machine, want: str) -> None:
        await self._power.change(machine, want)

    # -- helpers -------------------------------------------------------------------

    def _verdict(self, machine: Machine, kind: str) -> str:
        """The forced outcome for `kind`, else a seeded roll against its failure rate."""
        forced = machine.outcomes.get("release" if kind == "erase" else kind)
        if kind == "testing":
            forced = None
        if forced is not None:
            return forced
        attempt = machine.attempts.get(kind, 0) + 1
        machine.attempts[kind] = attempt
        roll = random.Random(f"{self._config.seed}:{machine.system_id}:{kind}:{attempt}").random()
        return "fail" if roll < self._rates[kind] else "pass"

    def _fail(self, machine: Machine, status: int, reason: str) -> None:
        machine.error_description = reason
        self.set_status(machine, status)

    async def _fail_and_stop(self, machine: Machine, status: int, reason: str) -> None:
        self._fail(machine, status, reason)
        await self._power.change(machine, "off")

    async def _wait(self, seconds: float) -> None:
        await self._clock.sleep(seconds)

    def _start(self, machine: Machine, flow: Coroutine[Any, Any, None]) -> None:
        self.cancel(machine)
        task = asyncio.get_running_loop().create_task(flow)
        self._flows[machine.system_id] = task
        task.add_done_callback(lambda done: self._forget(self._flows, machine, done))

    def _forget(
        self, tasks: dict[str, asyncio.Task[None]], machine: Machine, done: asyncio.Task[None]
    ) -> None:
        if tasks.get(machine.system_id) is done:
            del tasks[machine.system_id]
        if not done.cancelled() and done.exception() is not None:
            # The type only: an exception's text can quote a machine's power secrets.
            error = type(done.exception()).__name__
            log.error("sim_flow_crashed", system_id=machine.system_id, error=error)


_ABORTS = {
    Status.COMMISSIONING: ("REQUEST_NODE_ABORT_COMMISSIONING", "ABORTED_COMMISSIONING", Status.NEW),
    Status.TESTING: ("REQUEST_NODE_ABORT_TESTING", "ABORTED_TESTING", Status.NEW),
    Status.DEPLOYING: ("REQUEST_NODE_ABORT_DEPLOYMENT", "ABORTED_DEPLOYMENT", Status.ALLOCATED),
    Status.DISK_ERASING: (
        "REQUEST_NODE_ABORT_ERASE_DISK",
        "ABORTED_DISK_ERASING",
        Status.FAILED_DISK_ERASING,
    ),
}
