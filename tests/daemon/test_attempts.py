"""Provisioning attempts, in process: a store that refuses writes or reads, lost and repeated
POSTs, runs a dead daemon left behind, and the count of Deployed machines without a record.

The store faults are injected by a wrapper around the real SQLite store that raises what the
store raises for a full disk (`StoreError`); the e2e tests do the same with a real full
filesystem where the sandbox lets them mount one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from structlog.testing import capture_logs

from maasflow.common.clock import FakeClock
from maasflow.common.errors import StoreError
from maasflow.daemon.actions import Actuator
from maasflow.daemon.loop import Daemon
from maasflow.daemon.mappings import Mappings
from maasflow.daemon.provisioning import HttpProvisioner, ScriptProvisioner
from maasflow.daemon.selection import FilterSpec
from maasflow.daemon.store import ProvisionRecord, SqliteStore
from maasflow.daemon.telemetry import Health

DEPLOYED = 6


class RefusingStore(SqliteStore):
    """The SQLite store, refusing the calls named in `refuse` as a full disk would."""

    def __init__(self, path: Path | str, clock: Callable[[], float]) -> None:
        super().__init__(path, clock=clock)
        self.refuse: set[str] = set()
        self.refused: list[str] = []

    def _check(self, call: str) -> None:
        if call in self.refuse:
            self.refused.append(call)
            raise StoreError(f"state file {self.path}: database or disk is full")

    def complete(self, system_id: str, output_tail: str) -> ProvisionRecord | None:
        self._check("complete")
        return super().complete(system_id, output_tail)

    def all(self) -> list[ProvisionRecord]:
        self._check("all")
        return super().all()


def build(fake: Any, store: SqliteStore, provisioner: Any, clock: FakeClock) -> Daemon:
    health = Health(1.0, clock=clock.time)
    actuator = Actuator(fake, store, provisioner, clock=clock.time, health=health)
    return Daemon(
        fake,
        actuator,
        filters=FilterSpec.load("{}", "test"),
        mappings=Mappings.load("{}", "test"),
        period=1.0,
        health=health,
        clock=clock,
        provision_existing=True,  # provision machines first seen Deployed
    )


async def passes(daemon: Daemon, count: int) -> None:
    for _ in range(count):
        await daemon.run_pass()
        await daemon.executor.drain(20)
        daemon.executor = type(daemon.executor)(4)


def script(tmp_path: Path, body: str) -> ScriptProvisioner:
    path = tmp_path / "provision.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return ScriptProvisioner(str(path), ttl=30, runs_dir=tmp_path / "runs")


async def test_a_refused_result_is_retried_while_health_names_the_store(
    tmp_path: Path, mk: Any, Fake: Any
) -> None:
    """The store refuses the finished script's result: 503 naming the store, the write
    retried until it is taken, then healthy; the script ran once."""
    clock = FakeClock()
    store = RefusingStore(tmp_path / "s.sqlite", clock.time)
    store.refuse.add("complete")
    runs = tmp_path / "runs.txt"
    daemon = build(
        Fake([mk("a", DEPLOYED, owner="maasflow")]),
        store,
        script(tmp_path, f"echo a >> {runs}\n"),
        clock,
    )
    await daemon.identify(retry=False)
    await daemon.run_pass()
    while len(store.refused) < 2:  # refused, retried, refused again
        await asyncio.sleep(0.01)
    ok, reason = daemon.health.check()
    assert not ok and reason == f"state store: state file {store.path}: database or disk is full"
    store.refuse.clear()
    await daemon.executor.drain(20)
    record = store.get("a")
    assert record is not None and record.state == "complete" and record.run is None
    assert daemon.health.store_errors == {}
    assert runs.read_text() == "a\n"
    assert list((tmp_path / "runs").iterdir()) == []


async def test_an_unreadable_store_decides_nothing_and_health_names_it(
    tmp_path: Path, mk: Any, Fake: Any
) -> None:
    """A pass that cannot read the records provisions nothing (it would redo every machine)."""
    clock = FakeClock()
    store = RefusingStore(tmp_path / "s.sqlite", clock.time)
    store.refuse.add("all")
    runs = tmp_path / "runs.txt"
    daemon = build(
        Fake([mk("a", DEPLOYED, owner="maasflow")]),
        store,
        script(tmp_path, f"echo a >> {runs}\n"),
        clock,
    )
    await daemon.identify(retry=False)
    await passes(daemon, 2)
    assert not runs.exists() and store.get("a") is None
    assert daemon.health.check()[1].startswith("state store: ")
    store.refuse.clear()
    await passes(daemon, 1)
    assert runs.read_text() == "a\n" and daemon.health.store_errors == {}


async def test_a_run_recorded_but_never_released_fails_interrupted_and_waits_its_backoff(
    tmp_path: Path, mk: Any, Fake: Any
) -> None:
    """A daemon died between recording an attempt and releasing its script: the script never
    ran, so the attempt fails ("interrupted") and is retried after the usual backoff."""
    clock = FakeClock()
    store = RefusingStore(tmp_path / "s.sqlite", clock.time)
    store.start("a", "host-a", "script")  # the dead daemon got this far
    runs = tmp_path / "runs.txt"
    daemon = build(
        Fake([mk("a", DEPLOYED, owner="maasflow")]),
        store,
        script(tmp_path, f"echo a >> {runs}\n"),
        clock,
    )
    await daemon.identify(retry=False)
    await passes(daemon, 1)
    record = store.get("a")
    assert record is not None and record.state == "failed"
    assert "interrupted before its run was recorded" in record.last_error
    assert record.next_attempt_at is not None and record.next_attempt_at > clock.time()
    assert not runs.exists()
    clock.advance(record.next_attempt_at - clock.time() + 1)
    await passes(daemon, 1)
    assert runs.read_text() == "a\n"


class Provisioner:
    """An HTTP provisioner's answers, queued per method; every request is kept."""

    def __init__(self, **answers: list[httpx.Response | Exception]) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        queue = self.answers.get(request.method, [])
        answer = queue.pop(0) if queue else httpx.Response(200, json={"status": 2})
        if isinstance(answer, Exception):
            raise answer
        return answer

    def methods(self) -> list[str]:
        return [request.method for request in self.requests]


def http(answers: Provisioner, clock: FakeClock) -> HttpProvisioner:
    client = httpx.AsyncClient(transport=httpx.MockTransport(answers))
    url = "http://127.0.0.1:9/provision/"
    return HttpProvisioner(url, ttl=600, client=client, clock=clock.time)


def job(code: int, deploy_id: str | None, status: int) -> httpx.Response:
    request: dict[str, str] = {"id": "a"} | ({"deploy_id": deploy_id} if deploy_id else {})
    return httpx.Response(code, json={"request": request, "status": status})


async def test_a_post_whose_answer_is_lost_is_asked_about_not_repeated(
    tmp_path: Path, mk: Any, Fake: Any
) -> None:
    """A POST that timed out waiting for its answer leaves the attempt running; the next
    pass GETs the job, and no second POST is ever sent."""
    answers = Provisioner(
        POST=[httpx.ReadTimeout("the answer never came")],
        GET=[httpx.Response(202), httpx.Response(200)],
    )
    clock = FakeClock()
    store = RefusingStore(tmp_path / "s.sqlite", clock.time)
    daemon = build(Fake([mk("a", DEPLOYED, owner="maasflow")]), store, http(answers, clock), clock)
    await daemon.identify(retry=False)
    await passes(daemon, 4)
    assert answers.methods() == ["POST", "GET", "GET"]
    record = store.get("a")
    assert record is not None and (record.state, record.attempts) == ("complete", 1)


async def test_a_retry_asks_first_and_adopts_this_deploys_job(
    tmp_path: Path, mk: Any, Fake: Any
) -> None:
    """After a failed POST, the retry GETs the job: one of this deploy (running, then done)
    is adopted; nothing is POSTed again."""
    clock = FakeClock()
    store = RefusingStore(tmp_path / "s.sqlite", clock.time)
    answers = Provisioner(POST=[httpx.Response(500, text="busy")])
    daemon = build(Fake([mk("a", DEPLOYED, owner="maasflow")]), store, http(answers, clock), clock)
    await daemon.identify(retry=False)
    await passes(daemon, 1)
    failed = store.get("a")
    assert failed is not None and failed.state == "failed" and failed.next_attempt_at
    body = answers.requests[0].read()
    assert failed.deploy_id and failed.deploy_id.encode() in body
    answers.answers["GET"] = [job(202, failed.deploy_id, 1), job(200, failed.deploy_id, 2)]
    clock.advance(failed.next_attempt_at - clock.time() + 1)
    await passes(daemon, 2)
    assert answers.methods() == ["POST", "GET", "GET"]
    record = store.get("a")
    assert record is not None and (record.state, record.attempts) == ("complete", 2)


async def test_a_retry_posts_when_the_job_found_is_another_deploys_or_failed(
    tmp_path: Path, mk: Any, Fake: Any
) -> None:
    """The job found belongs to an earlier deploy, or failed: the retry POSTs (a real run)."""
    for found in (job(200, "an-earlier-deploy", 2), job(200, None, 3)):
        clock = FakeClock()
        store = RefusingStore(tmp_path / f"s{id(found)}.sqlite", clock.time)
        answers = Provisioner(POST=[httpx.Response(500), httpx.Response(202)], GET=[found])
        daemon = build(
            Fake([mk("a", DEPLOYED, owner="maasflow")]), store, http(answers, clock), clock
        )
        await daemon.identify(retry=False)
        await passes(daemon, 1)
        failed = store.get("a")
        assert failed is not None and failed.next_attempt_at is not None
        clock.advance(failed.next_attempt_at - clock.time() + 1)
        await passes(daemon, 1)
        assert answers.methods() == ["POST", "GET", "POST"]


async def test_a_retry_never_posts_blind_when_the_provisioner_cannot_be_asked(
    tmp_path: Path, mk: Any, Fake: Any
) -> None:
    """If the GET before a repeated POST gets no answer, nothing is POSTed: a failed attempt."""
    clock = FakeClock()
    store = RefusingStore(tmp_path / "s.sqlite", clock.time)
    answers = Provisioner(POST=[httpx.Response(500)], GET=[httpx.ConnectError("refused")])
    daemon = build(Fake([mk("a", DEPLOYED, owner="maasflow")]), store, http(answers, clock), clock)
    await daemon.identify(retry=False)
    await passes(daemon, 1)
    failed = store.get("a")
    assert failed is not None and failed.next_attempt_at is not None
    clock.advance(failed.next_attempt_at - clock.time() + 1)
    await passes(daemon, 1)
    assert answers.methods() == ["POST", "GET"]
    again = store.get("a")
    assert again is not None and again.state == "failed" and "ConnectError" in again.last_error


async def test_the_first_pass_counts_our_deployed_machines_without_a_record(
    tmp_path: Path, mk: Any, Fake: Any
) -> None:
    """Once, at the first pass: how many of our Deployed machines have no record (a lost
    state directory would provision them again); others' machines and recorded ones not."""
    clock = FakeClock()
    store = RefusingStore(tmp_path / "s.sqlite", clock.time)
    store.start("c", "host-c", "script")
    store.complete("c", "")
    machines = [
        mk("a", DEPLOYED, owner="maasflow"),
        mk("b", DEPLOYED, owner="maasflow"),
        mk("c", DEPLOYED, owner="maasflow"),
        mk("d", DEPLOYED, owner="someone-else"),
        mk("e", 4),
    ]
    daemon = build(Fake(machines), store, script(tmp_path, "exit 0\n"), clock)
    await daemon.identify(retry=False)
    with capture_logs() as logs:
        await passes(daemon, 3)
    warned = [e for e in logs if "without a provisioning record" in e["event"]]
    assert len(warned) == 1
    assert (warned[0]["count"], warned[0]["system_ids"]) == (2, ["a", "b"])
