"""Provisioning attempts, each run exactly once per deploy, whatever dies on the way.

The actuator hands a Deployed machine here; this module starts, adopts and records its
provisioning so that the store is always the truth a restarted daemon can act on:

- a script: the record is started (`store.start`), the script's supervised run is started
  gated, its handle recorded (`store.set_run`), and only then released. The result is
  recorded, then the run's result file removed. Killed anywhere in between, the next daemon
  finds the record running and *adopts* the run (`poll`): it waits while the run lives and
  takes its result, or records a failed attempt ("interrupted") when it left none.
- a URL: the POST carries the record's `deploy_id`. A POST whose answer was lost leaves
  the record running: the next pass asks (GET) and POSTs again only on a 404. Before
  POSTing again after a failed attempt, the provisioner is asked too, and a job of this
  deploy it already has (running, or done) is adopted.
- fencing: `fence` (the daemon's leadership, when several daemons share a database) is
  called right before a run is released and before each POST; it raises `NotLeader` in a
  daemon that must not act, and nothing is started.
- the store: a write that must not be lost (the run's handle before release, a finished
  result) is retried with `common.backoff` until it succeeds, while `Health` names the store;
  a cancelled retry (shutdown) leaves the run and its result file for the next daemon.

Where this module stops: it decides nothing (the lifecycle does), speaks no HTTP to MAAS,
and runs nothing itself (the provisioners do). It logs only the store's trouble.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from maasflow.common import child
from maasflow.common.backoff import Backoff
from maasflow.common.errors import NotLeader, ProvisionError, StoreError
from maasflow.daemon.maas.listing import MachineData
from maasflow.daemon.outcome import Outcome
from maasflow.daemon.provisioning import (
    AnswerLost,
    Found,
    HttpProvisioner,
    PollResult,
    ProvisionerTrouble,
    ScriptProvisioner,
    Target,
    target_for,
)
from maasflow.daemon.store import ProvisionMode, ProvisionRecord, ProvisionStore, retry_delay
from maasflow.daemon.telemetry import Health

log = structlog.get_logger(__name__)

T = TypeVar("T")
Provisioner = ScriptProvisioner | HttpProvisioner
STORE_BACKOFF = Backoff(0.5, 15.0)
NEVER_RELEASED = "provisioning script was interrupted before its run was recorded and released"


class Attempts:
    """Starts, adopts and records provisioning attempts; cheap, so one per action."""

    def __init__(
        self,
        store: ProvisionStore,
        provisioner: Provisioner,
        *,
        clock: Callable[[], float] = time.time,
        health: Health | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        fence: Callable[[], None] = lambda: None,
        role: str = "",
    ) -> None:
        self.store = store
        self.provisioner = provisioner
        self.role = role  # the machine's targets rule's provisioning role, if any
        self.clock = clock
        self.health = health
        self.sleep = sleep
        self.fence = fence  # raises NotLeader when this daemon must not start anything

    # -- the actions ------------------------------------------------------------------

    async def provision(self, machine: MachineData) -> Outcome:
        """Start an attempt: run the script, or POST (after asking, when it is a retry)."""
        mode = ProvisionMode.URL if self._http() else ProvisionMode.SCRIPT
        try:
            record = self.store.start(machine.system_id, machine.hostname, mode)
        except StoreError as exc:  # nothing started: the next pass decides again
            self._store_trouble(machine.system_id, exc)
            return Outcome("failed", str(exc))
        self._store_ok(machine.system_id)
        try:
            target = dataclasses.replace(await _target(machine), role=self.role)
            if isinstance(self.provisioner, HttpProvisioner):
                return await self._post(machine, record, self.provisioner, target)
            return await self._run_script(machine, record, self.provisioner, target)
        except AnswerLost as exc:  # it may have the job: the next pass asks, never re-POSTs
            return Outcome("running", f"{exc}; asking the provisioner next pass")
        except ProvisionError as exc:
            return await self._failed(machine, record, exc)
        except NotLeader:  # fenced before anything began: the next leader finds it running
            raise
        except Exception as exc:  # an OSError (say, no runs directory) must not leave it running
            error = ProvisionError(f"{type(exc).__name__}: {exc}")
            return await self._failed(machine, record, error)

    async def poll(self, machine: MachineData) -> Outcome:
        """A running record no task of ours owns: poll its job, or adopt its script run."""
        try:
            record = self.store.get(machine.system_id)
        except StoreError as exc:
            return Outcome("failed", str(exc))
        if record is None or record.state != "running":
            return Outcome("failed", "no running provisioning record to poll")
        provisioner = self.provisioner
        try:
            if record.mode == ProvisionMode.URL and isinstance(provisioner, HttpProvisioner):
                return await self._poll_job(machine, record, provisioner)
            if record.mode == ProvisionMode.SCRIPT and isinstance(provisioner, ScriptProvisioner):
                return await self._adopt(machine, record, provisioner)
        except ProvisionerTrouble as exc:
            return Outcome("failed", f"{exc}; asking again next pass")  # record stays running
        except ProvisionError as exc:
            return await self._failed(machine, record, exc)
        error = ProvisionError(f"a {record.mode} attempt cannot be followed by this provisioner")
        return await self._failed(machine, record, error)

    async def forget(self, machine: MachineData) -> Outcome:
        """The machine left Deployed: clear its record, and whatever its attempt left."""
        try:
            record = self.store.get(machine.system_id)
            self.store.clear(machine.system_id)
        except StoreError as exc:  # the record stays: the next pass asks again
            self._store_trouble(machine.system_id, exc)
            return Outcome("failed", str(exc))
        self._store_ok(machine.system_id)
        detail = "provisioning record cleared"
        if record is not None and record.run is not None:
            if record.run.terminate():
                detail += "; its script run was stopped"
            record.run.discard()
        if isinstance(self.provisioner, HttpProvisioner):
            await self.provisioner.forget(machine.system_id)
        return Outcome("ok", detail)

    # -- a script ----------------------------------------------------------------------

    async def _run_script(
        self,
        machine: MachineData,
        record: ProvisionRecord,
        script: ScriptProvisioner,
        target: Target,
    ) -> Outcome:
        run = await script.start(target, record.deploy_id)
        try:
            await self._save(machine, lambda: self.store.set_run(machine.system_id, run.handle))
            self.fence()
            run.release()
            ended = await _result(script, lambda: script.finish(run))
        except BaseException:
            await run.abort()
            raise
        try:
            outcome = await self._settle(machine, record, ended)
        except BaseException:  # cancelled while the store refused: the restart adopts it
            run.detach()
            raise
        await run.close()
        return outcome

    async def _adopt(
        self, machine: MachineData, record: ProvisionRecord, script: ScriptProvisioner
    ) -> Outcome:
        run = record.run
        if run is None:  # the daemon died before it recorded (so released) a run: none began
            return await self._failed(machine, record, ProvisionError(NEVER_RELEASED))
        try:
            ended = await _result(script, lambda: script.adopt(run))
        except asyncio.CancelledError:  # shutdown: as with a run of our own, stop it
            run.terminate()
            raise
        outcome = await self._settle(machine, record, ended)
        run.discard()
        return Outcome(outcome.result, f"{outcome.detail} (adopted)", outcome.provisioned_in)

    # -- a URL -------------------------------------------------------------------------

    async def _post(
        self, machine: MachineData, record: ProvisionRecord, http: HttpProvisioner, target: Target
    ) -> Outcome:
        if record.attempts > 1:  # the provisioner may have this deploy's job already
            found = await http.lookup(target, record.deploy_id)
            if found is Found.RUNNING:
                return Outcome("running", "the provisioner already runs this deploy: adopted")
            if found is Found.DONE:
                return await self._settle(machine, record, "")
        self.fence()
        await http.submit(target, record.deploy_id)
        return Outcome("running", "submitted")

    async def _poll_job(
        self, machine: MachineData, record: ProvisionRecord, http: HttpProvisioner
    ) -> Outcome:
        target = await _target(machine)
        result = await http.poll(target, record.started_at)
        if result is PollResult.MISSING:
            self.fence()
            await http.submit(target, record.deploy_id)
            return Outcome("running", "provisioner had no record: submitted again")
        if result is PollResult.DONE:
            return await self._settle(machine, record, "")
        return Outcome("running", "provisioning")

    # -- recording ---------------------------------------------------------------------

    async def _settle(
        self, machine: MachineData, record: ProvisionRecord, ended: str | ProvisionError
    ) -> Outcome:
        """Record the attempt's end: complete with its output tail, or failed by its error."""
        if isinstance(ended, ProvisionError):
            return await self._failed(machine, record, ended)
        await self._save(machine, lambda: self.store.complete(machine.system_id, ended))
        return Outcome("ok", "provisioned", self.clock() - record.started_at)

    async def _failed(
        self, machine: MachineData, record: ProvisionRecord, exc: ProvisionError
    ) -> Outcome:
        now = self.clock()
        next_at = now + retry_delay(record.attempts)
        tail = exc.output_tail

        def write() -> ProvisionRecord | None:
            return self.store.fail(machine.system_id, str(exc), tail, next_at)

        await self._save(machine, write)
        return Outcome("failed", str(exc), now - record.started_at)

    async def _save(self, machine: MachineData, write: Callable[[], T]) -> T:
        """`write()`, retried with backoff while the store refuses it (health says so)."""
        attempt = 0
        while True:
            try:
                value = write()
            except StoreError as exc:
                attempt += 1
                delay = STORE_BACKOFF.delay(attempt)
                self._store_trouble(machine.system_id, exc, delay)
                await self.sleep(delay)
                continue
            if attempt:
                log.info("state store written again", system_id=machine.system_id, tries=attempt)
            self._store_ok(machine.system_id)
            return value

    def _store_trouble(self, system_id: str, exc: StoreError, retry_in: float = 0.0) -> None:
        if self.health is not None:
            self.health.store_failed(system_id, str(exc))
        with contextlib.suppress(Exception):  # logging must not stop a retry
            log.error(
                "state store write failed",
                system_id=system_id,
                reason=str(exc),
                retry_in_s=round(retry_in, 1) if retry_in else None,
            )

    def _store_ok(self, system_id: str) -> None:
        if self.health is not None:
            self.health.store_ok(system_id)

    def _http(self) -> bool:
        return isinstance(self.provisioner, HttpProvisioner)


async def _result(
    script: ScriptProvisioner, ended: Callable[[], Awaitable[child.Finished]]
) -> str | ProvisionError:
    """How a script run ended: its output tail when it exited 0, else the error saying how."""
    try:
        return script.verdict(await ended())
    except ProvisionError as exc:
        return exc


async def _target(machine: MachineData) -> Target:
    """`target_for` may fall back to a blocking DNS lookup: keep it off the event loop."""
    return await asyncio.to_thread(target_for, machine)
