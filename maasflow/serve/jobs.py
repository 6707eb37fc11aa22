"""The worker pool of `maasflow serve`: provisioning jobs, queued, run as argv, never a shell.

A job is one request's run of `<script> <id> <name> <ip> <mac> <role>`, started by the one
child runner (`common.child`) in a new session, so that its whole process group is stopped
at once: on timeout, on DELETE, on shutdown (SIGTERM, a grace period, then SIGKILL), and
when the script exits (SIGKILL to whatever it left running in the background).
Its combined stdout and stderr are kept, bounded to the last `output_limit` bytes. Its
environment is the service's without its secrets (`secrets.scrubbed_environ`: the power
target's credentials, the power config's `password_env` names, a MAAS API key), plus
`MAASFLOW_SYSTEM_ID`, `_HOSTNAME`, `_IP`, `_MAC` and `_ROLE` (as the daemon's script runner
sets them), so one script can serve both.

Rules the pool keeps:
- one active job per id: a request for an id already pending or running changes nothing;
- at most `queue_limit` pending jobs: past it `submit` raises `QueueFull`;
- every change of a job's state is written to the record store before anyone can read it.

What this module stops at: it speaks no HTTP (the API maps `QueueFull` to 429) and it does
not choose roles or scripts (`roles.ScriptPicker` does).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from maasflow.common.child import DRAIN_WAIT, Child, Finished, Limits, StartError, last_line, start
from maasflow.common.secrets import scrubbed_environ
from maasflow.serve.records import JobRequest, Record, RecordStore, Status
from maasflow.serve.roles import ScriptPicker

log = structlog.get_logger(__name__)

OUTPUT_LIMIT = 64 * 1024


class QueueFull(Exception):
    """The pending queue is at its limit; the caller should retry later."""


@dataclass(frozen=True)
class PoolLimits:
    """How many jobs run at once, how many may wait, how long one may take."""

    workers: int = 5
    queue_limit: int = 100
    timeout: float = 3600.0
    kill_grace: float = 5.0
    output_limit: int = OUTPUT_LIMIT


@dataclass(eq=False)
class Job:
    """One active run: its record, its child once started, and why it was stopped."""

    record: Record
    child: Child | None = None
    stop_reason: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def stop(self, reason: str) -> None:
        self.stop_reason = self.stop_reason or reason
        if self.child is not None:
            self.child.stop()

    def output(self) -> str:
        return self.child.output() if self.child is not None else ""


class JobPool:
    """Queue, workers and the active jobs; see the module docstring."""

    def __init__(
        self,
        store: RecordStore,
        picker: ScriptPicker,
        limits: PoolLimits | None = None,
        hidden_env: Collection[str] = (),
    ) -> None:
        self.store = store
        self.picker = picker
        self.limits = limits or PoolLimits()
        self.hidden_env = frozenset(hidden_env)  # secrets' names, besides the usual ones
        self._jobs: dict[str, Job] = {}
        self._queue: asyncio.Queue[Job] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []

    @property
    def pending(self) -> int:
        return sum(job.record.status is Status.PENDING for job in self._jobs.values())

    @property
    def running(self) -> int:
        return sum(job.record.status is Status.RUNNING for job in self._jobs.values())

    @property
    def healthy(self) -> bool:
        """True while every worker is alive (a worker only ends on shutdown or by a bug)."""
        return bool(self._workers) and not any(task.done() for task in self._workers)

    def start(self) -> None:
        """Start the workers; call from the event loop that will run the jobs."""
        for index in range(self.limits.workers):
            self._workers.append(asyncio.create_task(self._work(index), name=f"worker-{index}"))

    async def stop(self, reason: str = "interrupted by shutdown") -> None:
        """Fail the pending jobs, stop the running ones, end the workers."""
        for job in list(self._jobs.values()):
            if job.record.status is Status.PENDING:
                self._finish(job, Status.FAILED, reason)
            job.stop(reason)
        waits = [asyncio.create_task(job.done.wait()) for job in self._jobs.values()]
        if waits:
            await asyncio.wait(waits, timeout=self.limits.kill_grace + 2 * DRAIN_WAIT)
        for task in [*self._workers, *waits]:
            task.cancel()
        await asyncio.gather(*self._workers, *waits, return_exceptions=True)
        self._workers.clear()
        self.store.fail_unfinished(reason)

    def submit(self, request: JobRequest) -> tuple[Record, bool]:
        """Queue a run for `request`; return its record and whether a new run was queued."""
        active = self._jobs.get(request.id)
        if active is not None:
            return active.record, False
        if self.pending >= self.limits.queue_limit:
            raise QueueFull(f"{self.pending} jobs pending")
        job = Job(Record(request, timestamp=int(time.time())))
        self._jobs[request.id] = job
        self.store.put(job.record)
        self._queue.put_nowait(job)
        log.info("job.queued", id=request.id, name=request.name, pending=self.pending)
        return job.record, True

    def output(self, job_id: str) -> str | None:
        """The output of the job for `job_id` so far, or None if there is no record."""
        job = self._jobs.get(job_id)
        if job is not None:
            return job.output()
        record = self.store.get(job_id)
        return None if record is None else record.output

    async def delete(self, job_id: str) -> Record | None:
        """Stop the id's job if active, remove its record, return the record as it ended."""
        job = self._jobs.get(job_id)
        if job is not None:
            if job.record.status is Status.PENDING:
                self._finish(job, Status.FAILED, "deleted")
            job.stop("deleted")
            await job.done.wait()
            if job_id in self._jobs:  # a new run was queued meanwhile: it is not deleted
                return job.record
        record = self.store.get(job_id)
        if record is not None:
            self.store.delete(job_id)
            log.info("job.deleted", id=job_id)
        return record

    async def _work(self, index: int) -> None:
        while True:
            job = await self._queue.get()
            if self._jobs.get(job.record.id) is job and job.stop_reason is None:
                await self._run(job, index)

    async def _run(self, job: Job, index: int) -> None:
        self._update(job, job.record.moved(Status.RUNNING, "choosing a role", worker=index))
        status, message = Status.FAILED, "interrupted"
        try:
            status, message = await self._attempt(job)
        except asyncio.CancelledError:  # the runner has killed the job's group
            message = job.stop_reason or "interrupted by shutdown"
            raise
        except Exception as exc:  # a bug in one job must not end the worker
            log.exception("job.crashed", id=job.record.id)
            message = f"internal error: {type(exc).__name__}"
        finally:
            self._finish(job, status, message)

    async def _attempt(self, job: Job) -> tuple[Status, str]:
        request = job.record.request
        role = await self.picker.role_for(request)
        script = self.picker.script_for(request, role)
        if script is None:
            return Status.FAILED, f"no script configured for role {role!r}"
        self._update(job, job.record.moved(Status.RUNNING, f"running {script.name}", role=role))
        log.info("job.started", id=request.id, role=role, script=script.name)
        argv = [str(script), request.id, request.name, request.ip, request.mac, role]
        return await self._execute(job, argv, script, child_env(request, role, self.hidden_env))

    async def _execute(
        self, job: Job, argv: list[str], script: Path, env: dict[str, str]
    ) -> tuple[Status, str]:
        if job.stop_reason is not None:
            return Status.FAILED, job.stop_reason
        limits = Limits(
            timeout=self.limits.timeout,
            grace=self.limits.kill_grace,
            tail_bytes=self.limits.output_limit,
        )
        try:
            job.child = await start(argv, limits=limits, env=env)
        except StartError as exc:
            return Status.FAILED, f"could not start {script.name}: {exc.cause}"
        if job.stop_reason is not None:  # stopped while it was being started
            job.child.stop()
        return self._outcome(job, await job.child.wait())

    def _outcome(self, job: Job, finished: Finished) -> tuple[Status, str]:
        if job.stop_reason is not None:
            return Status.FAILED, job.stop_reason
        if finished.timed_out:
            return Status.FAILED, f"timed out after {self.limits.timeout:g} s"
        code = finished.exit_code
        if code == 0:
            return Status.COMPLETE, "completed"
        reason = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        tail = last_line(finished.output)
        return Status.FAILED, f"{reason}: {tail}" if tail else reason

    def _update(self, job: Job, record: Record) -> None:
        job.record = record
        self.store.put(record)

    def _finish(self, job: Job, status: Status, message: str) -> None:
        if job.done.is_set():
            return
        self._update(job, job.record.moved(status, message, output=job.output()))
        if self._jobs.get(job.record.id) is job:
            del self._jobs[job.record.id]
        job.done.set()
        log.info("job.finished", id=job.record.id, status=status.name.lower(), message=message)


def child_env(request: JobRequest, role: str, hidden: Collection[str] = ()) -> dict[str, str]:
    """The service's environment minus its secrets, plus MAASFLOW_* facts about the job."""
    env = scrubbed_environ(hidden)
    env.update(
        MAASFLOW_SYSTEM_ID=request.id,
        MAASFLOW_HOSTNAME=request.name,
        MAASFLOW_IP=request.ip,
        MAASFLOW_MAC=request.mac,
        MAASFLOW_ROLE=role,
    )
    return env
