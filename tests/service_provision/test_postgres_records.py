"""The shared queue's SQL on a real PostgreSQL: enqueue, claim, fenced writes, the sweep."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from maasflow.common.postgres import PostgresUrl
from maasflow.common.supervision import RunHandle
from maasflow.serve.postgres_records import PostgresRecords, Replica
from maasflow.serve.records import JobRequest, Status

A = Replica("a-1", "host-a/boot", "/var/lib/maasflow/serve-runs")
B = Replica("b-1", "host-b/boot", "/var/lib/maasflow/serve-runs")


@pytest.fixture
def open_shared(postgres_database: Any) -> Iterator[Callable[[], PostgresRecords]]:
    """Opens the records of this test's database, a new connection each call."""
    opened: list[PostgresRecords] = []
    url = PostgresUrl.parse(postgres_database.url, "test")

    def open_one() -> PostgresRecords:
        opened.append(PostgresRecords(url, postgres_database.server.password))
        return opened[-1]

    yield open_one
    for store in opened:
        store.close()


def request(job_id: str = "m1", deploy_id: str | None = "d1") -> JobRequest:
    return JobRequest(job_id, "node", "10.0.0.1", "", deploy_id=deploy_id)


def test_enqueue_queues_once_per_active_id_and_completed_deploy(
    open_shared: Callable[[], PostgresRecords],
) -> None:
    """An active id or a completed deploy queues nothing; a new deploy queues a run."""
    one, two = open_shared(), open_shared()
    first = one.enqueue(request())
    again = two.enqueue(request())
    claimed = one.claim(A, 0)
    assert claimed is not None
    one.put(claimed.moved(Status.COMPLETE, "completed"))
    repeat = two.enqueue(request())
    redeploy = two.enqueue(request(deploy_id="d2"))
    assert [first[1], again[1], repeat[1], redeploy[1]] == [True, False, False, True]
    assert repeat[0].status is Status.COMPLETE
    assert redeploy[0].status is Status.PENDING


def test_each_pending_job_is_claimed_by_one_replica_only(
    open_shared: Callable[[], PostgresRecords],
) -> None:
    """Claims from two connections take different jobs, oldest first, then none."""
    one, two = open_shared(), open_shared()
    for job_id in ("m1", "m2"):
        one.enqueue(request(job_id))
    first, second, third = one.claim(A, 0), two.claim(B, 0), one.claim(A, 1)
    assert first is not None and second is not None and third is None
    assert (first.id, second.id) == ("m1", "m2")
    assert first.status is Status.RUNNING and first.claim != second.claim


def test_a_write_without_the_current_claim_changes_nothing(
    open_shared: Callable[[], PostgresRecords],
) -> None:
    """A run whose claim was given up on, or whose record was deleted, writes nothing."""
    store = open_shared()
    store.enqueue(request())
    claimed = store.claim(A, 0)
    assert claimed is not None
    store.put(replace(claimed.moved(Status.COMPLETE, "late"), claim="not-the-claim"))
    kept = store.get("m1")
    store.delete("m1")
    store.put(claimed.moved(Status.COMPLETE, "after delete"))
    assert kept is not None and kept.status is Status.RUNNING
    assert store.get("m1") is None


def test_sweep_fails_a_dead_replicas_job_elsewhere_and_adopts_one_it_can_watch(
    open_shared: Callable[[], PostgresRecords],
) -> None:
    """Jobs of a replica silent past the bound: failed "lost" when their run is on another
    host, adopted (a new claim) when it is on the sweeper's host and runs directory."""
    store = open_shared()
    store.register(A)
    for job_id, host in (("far", "elsewhere/boot"), ("near", A.host)):
        store.enqueue(request(job_id))
        claimed = store.claim(replace(A, host=host), 0)
        assert claimed is not None
        store.put(claimed.moved(Status.RUNNING, "running", run=RunHandle(1, 1, 1, "/r.json")))
    near = replace(A, id="a-2")  # the same host and runs directory as A
    adopted, failed = store.sweep(near, bound=0.0)
    assert [r.id for r in adopted] == ["near"] and adopted[0].claim is not None
    assert [r.id for r in failed] == ["far"]
    far = store.get("far")
    assert far is not None and far.status is Status.FAILED
    assert far.message == "interrupted: replica a-1 lost" and far.run is None
    assert not store.beat(A)  # its row is gone: it was found dead


def test_a_live_replicas_jobs_are_left_alone_by_the_sweep(
    open_shared: Callable[[], PostgresRecords],
) -> None:
    """A replica that beat within the bound keeps its running jobs."""
    store = open_shared()
    store.register(A)
    store.enqueue(request())
    store.claim(A, 0)
    adopted, failed = store.sweep(B, bound=3600.0)
    running = store.get("m1")
    assert (adopted, failed) == ([], [])
    assert running is not None and running.status is Status.RUNNING and store.beat(A)
