"""The worker pool of `maasflow serve`: provisioning jobs, queued, run as argv, never a shell.

A job is one request's run of `<script> <id> <name> <ip> <mac> <role>`, started as a
supervised run (`common.supervision`, as the daemon runs its script: the one child runner
underneath, a new session, so that its whole process group is stopped at once: on timeout,
on DELETE, on shutdown (SIGTERM, a grace period, then SIGKILL), and when the script exits
(SIGKILL to whatever it left running in the background)). Its combined stdout and stderr are
kept, bounded to the last `output_limit` bytes. Its environment is the service's without its
secrets (`secrets.scrubbed_environ`: the power target's credentials, the power config's
`password_env` names, a MAAS API key), plus `MAASFLOW_SYSTEM_ID`, `_HOSTNAME`, `_IP`, `_MAC`,
`_ROLE` and `_DEPLOY_ID` (as the daemon's script runner sets them), so one script can serve
both.

Rules the pool keeps:
- one active job per id: a request for an id already pending or running changes nothing;
- one run per deploy: a request carrying the `deploy_id` of a completed record answers
  that record (a failed one runs again: that is a retry);
- at most `queue_limit` pending jobs: past it `submit` raises `QueueFull`;
- every change of a job's state is written to the record store before anyone can read it,
  and a run is recorded (pid, group, start time, result file) before it may begin;
- after a restart (`recover`), a run the previous service left alive is adopted: waited
  for, its result recorded; one that left a result has it recorded; the rest (pending jobs,
  runs that left nothing) fail "interrupted by restart".

That is one service on its own records (SQLite); `shared_pool.SharedJobPool` keeps the same
rules for replicas sharing a queue in PostgreSQL, reusing this pool's running of a job.

What this module stops at: it speaks no HTTP (the API maps `QueueFull` to 429) and it does
not choose roles or scripts (`roles.ScriptPicker` does).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from maasflow.common import supervision
from maasflow.common.child import Finished, Limits, StartError, last_line
from maasflow.common.secrets import scrubbed_environ
from maasflow.common.supervision import Interrupted, Run, RunHandle
from maasflow.serve.records import JobRequest, Record, Records, Status
from maasflow.serve.roles import ScriptPicker

log = structlog.get_logger(__name__)

OUTPUT_LIMIT = 64 * 1024
INTERRUPTED = "interrupted by restart"


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

    def child(self) -> Limits:
        """What one job's script may take: its timeout, grace and output."""
        return Limits(timeout=self.timeout, grace=self.kill_grace, tail_bytes=self.output_limit)


@dataclass(eq=False)
class Job:
    """One active job: its record, its run once started (or adopted), why it was stopped."""

    record: Record
    run: Run | None = None  # started by this service
    adopted: RunHandle | None = None  # started by the service before a restart
    stop_reason: str | None = None
    ended: bool = False  # its final record is written
    started: float | None = None  # monotonic time a worker took it (None: adopted)
    done: asyncio.Event = field(default_factory=asyncio.Event)  # and its run let go of

    def stop(self, reason: str) -> None:
        self.stop_reason = self.stop_reason or reason
        if self.run is not None:
            self.run.stop()
        if self.adopted is not None:
            self.adopted.terminate()

    def output(self) -> str:
        return self.run.output() if self.run is not None else ""


class JobPool:
    """Queue, workers and the active jobs; see the module docstring."""

    def __init__(
        self,
        store: Records,
        picker: ScriptPicker,
        limits: PoolLimits | None = None,
        hidden_env: Collection[str] = (),
        runs_dir: Path | None = None,
        on_end: Callable[[Status, float], None] | None = None,
    ) -> None:
        self.store = store
        self.on_end = on_end  # told how each job a worker ran ended, and its duration
        self.picker = picker
        self.limits = limits or PoolLimits()
        self.hidden_env = frozenset(hidden_env)  # secrets' names, besides the usual ones
        self.runs_dir = runs_dir or Path(tempfile.mkdtemp(prefix="maasflow-serve-runs-"))
        self._jobs: dict[str, Job] = {}
        self._queue: asyncio.Queue[Job] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._adopted: list[Job] = []  # found by recover(), watched once start() runs
        self._watchers: set[asyncio.Task[None]] = set()  # watches of adopted runs, while they run
        self._closing: set[Job] = set()  # recorded, their supervisors being reaped

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

    def recover(self) -> None:
        """Take over what a previous service left unfinished (see the module docstring).

        Call once, before `start()` and before any request; result files no running record
        names are removed.
        """
        unfinished = [record for record in self.store.all() if not record.finished]
        for record in unfinished:
            if record.status is Status.RUNNING and record.run is not None:
                job = Job(record, adopted=record.run)
                self._jobs[record.id] = job
                self._adopted.append(job)
            else:  # never started, or started and lost before its run was recorded
                self.store.put(record.moved(Status.FAILED, INTERRUPTED, run=None))
        keep = {job.record.run.result_file for job in self._adopted if job.record.run}
        supervision.sweep(self.runs_dir, keep)

    def start(self) -> None:
        """Start the workers, and the watchers of adopted runs; call from the event loop."""
        for index in range(self.limits.workers):
            self._workers.append(asyncio.create_task(self._work(index), name=f"worker-{index}"))
        for job in self._adopted:
            self._watch_adopted(job)
        self._adopted.clear()

    def _watch_adopted(self, job: Job) -> None:
        """Watch an adopted run until it ends: not a worker (its end is no sign of ill health)."""
        task = asyncio.create_task(self._watch(job), name=f"adopted-{job.record.id}")
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def stop(self, reason: str = "interrupted by shutdown") -> None:
        """Fail the pending jobs, stop the running ones, end the workers."""
        for job in list(self._jobs.values()):
            if job.record.status is Status.PENDING:
                self._finish(job, Status.FAILED, reason)
            job.stop(reason)
        jobs = [*self._jobs.values(), *self._closing]  # those being let go of too
        waits = [asyncio.create_task(job.done.wait()) for job in jobs]
        if waits:
            grace = supervision.stop_time(self.limits.child()) + supervision.ADOPT_POLL
            await asyncio.wait(waits, timeout=grace)
        tasks = [*self._workers, *self._watchers, *waits]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()
        self._watchers.clear()
        self._abandon(reason)

    def _abandon(self, reason: str) -> None:
        """Fail what is left unfinished at shutdown: with one service, every such record."""
        self.store.fail_unfinished(reason)

    def submit(self, request: JobRequest) -> tuple[Record, bool]:
        """Queue a run for `request`; return its record and whether a new run was queued."""
        active = self._jobs.get(request.id)
        if active is not None:
            return active.record, False
        done = self._completed(request)
        if done is not None:
            log.info("job.repeated", id=request.id, deploy_id=request.deploy_id)
            return done, False
        if self.pending >= self.limits.queue_limit:
            raise QueueFull(f"{self.pending} jobs pending")
        job = Job(Record(request, timestamp=int(time.time())))
        self._jobs[request.id] = job
        self.store.put(job.record)
        self._queue.put_nowait(job)
        log.info("job.queued", id=request.id, name=request.name, pending=self.pending)
        return job.record, True

    def _completed(self, request: JobRequest) -> Record | None:
        """The completed record of the deploy `request` names, if it has a deploy id."""
        if not request.deploy_id:
            return None
        record = self.store.get(request.id)
        if record is None or record.status is not Status.COMPLETE:
            return None
        return record if record.request.deploy_id == request.deploy_id else None

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
        job.started = time.monotonic()
        self._update(job, job.record.moved(Status.RUNNING, "choosing a role", worker=index))
        status, message, output = Status.FAILED, "interrupted", None
        try:
            status, message, output = await self._attempt(job)
        except asyncio.CancelledError:  # the runner has killed the job's group
            message = job.stop_reason or "interrupted by shutdown"
            raise
        except Exception as exc:  # a bug in one job must not end the worker
            log.exception("job.crashed", id=job.record.id)
            message = f"internal error: {type(exc).__name__}"
        finally:
            self._closing.add(job)
            try:
                self._record_end(job, status, message, output)
                if job.run is not None:  # recorded: its supervisor and result file may go
                    await job.run.close()
            finally:  # only now: a shutdown waiting for it must not cut the reaping short
                self._closing.discard(job)
                job.done.set()

    async def _watch(self, job: Job) -> None:
        """Wait for a run a previous service started; record how it ended."""
        handle = job.adopted
        assert handle is not None
        log.info("job.adopted", id=job.record.id, pid=handle.pid)
        status, message, output = Status.FAILED, INTERRUPTED, ""
        try:
            finished = await supervision.adopt(handle)
            status, message = self._outcome(job, finished)
            output = finished.output
        except Interrupted:
            pass
        except StartError as exc:
            message = f"could not start: {exc.cause}"
        except asyncio.CancelledError:
            message = job.stop_reason or "interrupted by shutdown"
            raise
        finally:
            self._finish(job, status, message, output)
        handle.discard()

    async def _attempt(self, job: Job) -> tuple[Status, str, str | None]:
        request = job.record.request
        role = await self.picker.role_for(request)
        script = self.picker.script_for(request, role)
        if script is None:
            return Status.FAILED, f"no script configured for role {role!r}", None
        self._update(job, job.record.moved(Status.RUNNING, f"running {script.name}", role=role))
        log.info("job.started", id=request.id, role=role, script=script.name)
        argv = [str(script), request.id, request.name, request.ip, request.mac, role]
        return await self._execute(job, argv, script, child_env(request, role, self.hidden_env))

    async def _execute(
        self, job: Job, argv: list[str], script: Path, env: dict[str, str]
    ) -> tuple[Status, str, str | None]:
        if job.stop_reason is not None:
            return Status.FAILED, job.stop_reason, None
        run_file = self.runs_dir / f"{uuid.uuid4().hex}.json"
        try:
            run = await supervision.start(
                argv, result_file=run_file, limits=self.limits.child(), env=env
            )
        except StartError as exc:
            return Status.FAILED, f"could not start {script.name}: {exc.cause}", None
        job.run = run
        try:
            self._update(
                job, job.record.moved(job.record.status, job.record.message, run=run.handle)
            )
            run.release()
            if job.stop_reason is not None:  # stopped while it was being started
                run.stop()
            finished = await run.wait()
        except StartError as exc:
            return Status.FAILED, f"could not start {script.name}: {exc.cause}", None
        except Interrupted:
            return Status.FAILED, job.stop_reason or "interrupted", None
        except BaseException:
            await run.abort()
            raise
        return (*self._outcome(job, finished), finished.output)

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

    def _finish(self, job: Job, status: Status, message: str, output: str | None = None) -> None:
        """Record how the job ended and let go of it, unless it ended already."""
        if self._record_end(job, status, message, output):
            job.done.set()

    def _record_end(
        self, job: Job, status: Status, message: str, output: str | None = None
    ) -> bool:
        """Write the job's final record, once; False when it was written already."""
        if job.ended:
            return False
        job.ended = True
        output = job.output() if output is None else output
        self._update(job, job.record.moved(status, message, output=output, run=None))
        if self._jobs.get(job.record.id) is job:
            del self._jobs[job.record.id]
        if self.on_end is not None and job.started is not None:
            self.on_end(status, time.monotonic() - job.started)
        log.info("job.finished", id=job.record.id, status=status.name.lower(), message=message)
        return True


def child_env(request: JobRequest, role: str, hidden: Collection[str] = ()) -> dict[str, str]:
    """The service's environment minus its secrets, plus MAASFLOW_* facts about the job."""
    env = scrubbed_environ(hidden)
    env.update(
        MAASFLOW_SYSTEM_ID=request.id,
        MAASFLOW_HOSTNAME=request.name,
        MAASFLOW_IP=request.ip,
        MAASFLOW_MAC=request.mac,
        MAASFLOW_ROLE=role,
        MAASFLOW_DEPLOY_ID=request.deploy_id or "",
    )
    return env
