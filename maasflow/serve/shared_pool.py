"""The job pool of a `maasflow serve` replica: workers that take jobs from a shared queue.

With `--db postgresql://...` several `serve` processes (replicas, on one host or many) share
one queue (`postgres_records`). The rules of `jobs.JobPool` hold, across replicas:

- a POST queues a job in the database (atomically: one active job per id, one run per
  completed deploy id), so a GET on any replica sees it;
- each worker takes the oldest pending job with `SELECT ... FOR UPDATE SKIP LOCKED`, so a job
  runs on exactly one replica; idle workers look again every `poll` seconds, and at once when
  a POST reaches this replica;
- every `heartbeat` this replica stamps its row in `serve_replicas`, stops the runs whose
  records were deleted (a DELETE answered by another replica) or taken from it, and sweeps:
  a replica silent for `LOST_AFTER` heartbeats is dead, and each job it was running is
  adopted when its run is on this host in this runs directory (watched by pid, as after a
  restart), else failed "interrupted: replica <id> lost". Never two runs of one job at once:
  a job is never queued again by the service itself; a client's retry is a new run;
- a replica whose heartbeat went unanswered for `LOST_AFTER - 1` heartbeats stops its runs
  itself (`replica_fence`, a thread: the event loop may hang on a dark network), before the
  others may give its jobs up;
- a replica that finds its own row gone (it was paused, or cut from the database, past the
  bound and was declared dead) stops its runs at once, their records being failed already,
  and joins again under the same id;
- a run's end the database refused (it was out of reach) is written at a later heartbeat;
- on shutdown a replica fails its own running jobs ("interrupted by shutdown") and leaves;
  pending jobs stay queued for the other replicas.

What this module stops at: it reuses `JobPool`'s running, watching and recording of a job;
it adds where jobs come from and the replicas' liveness. A job's live output is served by the
replica running it; the others show its output once it is finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Collection
from pathlib import Path

import structlog

from maasflow.common import supervision
from maasflow.common.errors import StoreError
from maasflow.serve.jobs import Job, JobPool, PoolLimits, QueueFull
from maasflow.serve.postgres_records import PostgresRecords, Replica
from maasflow.serve.records import JobRequest, Record, Status
from maasflow.serve.replica_fence import Fence
from maasflow.serve.roles import ScriptPicker

log = structlog.get_logger(__name__)

LOST_AFTER = 3  # heartbeats a replica may miss before it is taken for dead
MAX_POLL = 1.0  # seconds an idle worker waits at most before looking at the queue again


class SharedJobPool(JobPool):
    """A `JobPool` whose queue is in PostgreSQL, shared with the other replicas."""

    def __init__(
        self,
        store: PostgresRecords,
        picker: ScriptPicker,
        limits: PoolLimits | None = None,
        hidden_env: Collection[str] = (),
        runs_dir: Path | None = None,
        on_end: Callable[[Status, float], None] | None = None,
        *,
        heartbeat: float = 10.0,
    ) -> None:
        super().__init__(store, picker, limits, hidden_env, runs_dir, on_end)
        self.shared = store
        self.replica = Replica.here(self.runs_dir)
        self.heartbeat = heartbeat
        self.poll = min(MAX_POLL, heartbeat)
        self._nudge = asyncio.Event()
        self._leaving = False
        self._unwritten: dict[str, Record] = {}  # final records the database refused, by id
        self._fence = Fence((LOST_AFTER - 1) * heartbeat)

    @property
    def bound(self) -> float:
        """Seconds of silence after which a replica is taken for dead."""
        return LOST_AFTER * self.heartbeat

    @property
    def pending(self) -> int:
        return self.shared.pending()

    def recover(self) -> None:
        """Join the replicas; remove result files no running record (of any replica) names."""
        self.shared.register(self.replica)
        supervision.sweep(self.runs_dir, self.shared.running_files())
        log.info("replica.joined", replica=self.replica.id, heartbeat=self.heartbeat)

    def start(self) -> None:
        super().start()
        self._workers.append(asyncio.create_task(self._beat(), name="heartbeat"))
        self._fence.start()

    async def stop(self, reason: str = "interrupted by shutdown") -> None:
        self._leaving = True
        await super().stop(reason)
        self._fence.stop()

    def _abandon(self, reason: str) -> None:
        """Fail this replica's own unfinished jobs and leave; the queue stays for the others."""
        try:
            self.shared.leave(self.replica, reason)
        except StoreError as exc:
            log.warning("replica.leave_failed", replica=self.replica.id, error=str(exc))

    def submit(self, request: JobRequest) -> tuple[Record, bool]:
        """Queue a run for `request` in the shared queue; its record, and whether it is new."""
        held = self.shared.get(request.id)
        new_run = held is None or _replaced_by(held, request)
        if new_run and self.shared.pending() >= self.limits.queue_limit:
            raise QueueFull("the shared queue is full")
        record, queued = self.shared.enqueue(request)
        if queued:
            self._nudge.set()
            log.info("job.queued", id=request.id, name=request.name, replica=self.replica.id)
        else:
            log.info("job.repeated", id=request.id, deploy_id=request.deploy_id)
        return record, queued

    async def delete(self, job_id: str) -> Record | None:
        """Stop and forget the job; one running on another replica is stopped by it at its
        next heartbeat (its record gone, its claim no longer holds)."""
        if job_id in self._jobs:
            return await super().delete(job_id)
        record = self.shared.get(job_id)
        if record is not None and self.shared.delete(job_id):
            log.info("job.deleted", id=job_id)
        return record

    async def _work(self, index: int) -> None:
        while True:
            job = self._take(index)
            if job is None:
                await self._idle()
                continue
            try:
                await self._run(job, index)
            except StoreError as exc:  # its end is written at a later heartbeat
                log.warning("job.unrecorded", id=job.record.id, error=str(exc))
                self._unwritten[job.record.id] = job.record
                if self._jobs.get(job.record.id) is job:
                    del self._jobs[job.record.id]

    def _take(self, index: int) -> Job | None:
        """The oldest pending job, claimed for this replica; None when none (or no database)."""
        if self._leaving or self._fence.expired():  # fenced: no new run until a beat is answered
            return None
        try:
            record = self.shared.claim(self.replica, index)
        except StoreError as exc:
            log.warning("queue.unreachable", error=str(exc))
            return None
        if record is None:
            return None
        job = Job(record)
        self._jobs[record.id] = job
        return job

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._nudge.wait(), self.poll)
        self._nudge.clear()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                self._beat_once()
            except StoreError as exc:
                log.warning("replica.heartbeat_failed", replica=self.replica.id, error=str(exc))
            if self._fence.expired():  # its runs were stopped (`replica_fence`): say why
                self._stop_all(f"interrupted: replica {self.replica.id} lost its database")

    def _beat_once(self) -> None:
        """Stamp this replica, write what could not be, let go of runs no longer ours, sweep."""
        sent = time.monotonic()
        if not self.shared.beat(self.replica):
            log.warning("replica.lost", replica=self.replica.id, running=len(self._jobs))
            self._stop_all(f"interrupted: replica {self.replica.id} lost")
            self.shared.register(self.replica)
        self._fence.renewed(sent)
        for job_id, record in list(self._unwritten.items()):
            self.shared.put(record)  # fenced by its claim: never over a newer run
            del self._unwritten[job_id]
        self._stop_unheld()
        adopted, failed = self.shared.sweep(self.replica, self.bound)
        for record in failed:
            log.warning("job.lost", id=record.id, message=record.message)
        for record in adopted:
            self._adopt(record)

    def _stop_all(self, reason: str) -> None:
        for job in list(self._jobs.values()):
            job.stop(reason)

    def _update(self, job: Job, record: Record) -> None:
        """Write the record, the fence knowing its run first (the write may hang)."""
        self._fence.track(record.id, record.run)
        super()._update(job, record)

    def _stop_unheld(self) -> None:
        """Stop the local runs whose claims no longer hold (deleted, or given up on)."""
        claims = {job.record.claim: job for job in self._jobs.values() if job.record.claim}
        if not claims:
            return
        held = self.shared.held(list(claims))
        for claim, job in claims.items():
            if claim not in held and job.record.status is Status.RUNNING:
                job.stop("deleted")

    def _adopt(self, record: Record) -> None:
        """Watch a dead replica's run that is on this host, as after a restart."""
        job = Job(record, adopted=record.run)
        self._jobs[record.id] = job
        self._fence.track(record.id, record.run)
        self._watch_adopted(job)


def _replaced_by(record: Record, request: JobRequest) -> bool:
    """Whether a POST of `request` would queue a new run over `record` (see `jobs`)."""
    if not record.finished:
        return False
    same_deploy = bool(request.deploy_id) and record.request.deploy_id == request.deploy_id
    return not (record.status is Status.COMPLETE and same_deploy)
