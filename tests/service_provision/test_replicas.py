"""`maasflow serve` replicas on one PostgreSQL: real processes sharing one job queue.

Each replica is `python -m maasflow serve --db postgresql://... --db-password-file F`, with a
short `--heartbeat` so that a dead replica is noticed soon; every wait is a condition polled
against a deadline, never a sleep of a guessed length.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.tcp_cut import CuttableProxy

REPO = Path(__file__).resolve().parents[2]
RUNNING, COMPLETE, FAILED = 1, 2, 3
HEARTBEAT = "0.5s"
DEADLINE = 30.0


@dataclass(frozen=True)
class Replica:
    """A running `maasflow serve` replica: its process, URL and replica id."""

    proc: subprocess.Popen[str]
    url: str
    id: str

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=10)

    def post(self, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{self.url}/provision/", json=body, timeout=10)


class Replicas:
    """Starts replicas on this test's database; every one is ended after the test."""

    def __init__(self, url: str, password_file: Path, tmp: Path) -> None:
        self.url = url
        self.password_file = password_file
        self.tmp = tmp
        self._stack = contextlib.ExitStack()

    def start(self, script: Path, state: str = "a", *extra: str, db: str | None = None) -> Replica:
        """A replica running `script`, its state (runs directory) in `tmp/<state>`, on this
        test's database (or the URL `db`)."""
        argv = [
            sys.executable, "-m", "maasflow", "serve", "--port", "0", "--db", db or self.url,
            "--db-password-file", str(self.password_file), "--heartbeat", HEARTBEAT,
            "--script", str(script), "--log-format", "text", *extra,
        ]  # fmt: skip
        env = {**os.environ, "STATE_DIRECTORY": str(self.tmp / state)}
        return self._stack.enter_context(_replica(argv, env))

    def close(self) -> None:
        self._stack.close()


@contextlib.contextmanager
def _replica(argv: list[str], env: dict[str, str]) -> Iterator[Replica]:
    with subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        drain = threading.Thread(target=proc.stdout.read, daemon=True)
        try:
            replica_id, url = _announced(proc)
            drain.start()
            yield Replica(proc, url, replica_id)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if drain.is_alive():
                drain.join(timeout=10)


def _announced(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """The replica id (`replica.joined`) and URL (`service.listening`) its log names."""
    assert proc.stdout is not None
    replica_id, seen = "", []
    for line in proc.stdout:
        seen.append(line)
        if joined := re.search(r"replica\.joined.*replica=(\S+)", line):
            replica_id = joined.group(1)
        if listening := re.search(r"service\.listening.*url=(http://127\.0\.0\.1:\d+)", line):
            return replica_id, listening.group(1)
    pytest.fail(f"maasflow serve exited {proc.wait()} before listening: {seen[-3:]}")


@pytest.fixture
def replicas(postgres_database: Any, tmp_path: Path) -> Iterator[Replicas]:
    """Replicas on a database of this test's own, the password in a 0600 file."""
    password_file = tmp_path / "db_password"
    password_file.write_text(postgres_database.server.password + "\n")
    password_file.chmod(0o600)
    started = Replicas(postgres_database.url, password_file, tmp_path)
    yield started
    started.close()


@pytest.fixture
def orphan_pids() -> Iterator[list[int]]:
    """Process groups a killed replica leaves behind, killed after the test."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


async def wait_for(check: Callable[[], Any], what: str) -> Any:
    """Poll `check` until it returns something truthy; that value. Fails naming `what`."""
    deadline = time.monotonic() + DEADLINE
    while not (value := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        await asyncio.sleep(0.05)
    return value


def status_is(replica: Replica, job_id: str, status: int) -> Callable[[], dict[str, Any] | None]:
    """A check: the job's record on `replica` once it has `status`."""

    def check() -> dict[str, Any] | None:
        record: dict[str, Any] = replica.get(f"/provision/{job_id}").json()
        return record if record.get("status") == status else None

    return check


async def test_a_post_to_one_replica_is_visible_on_the_other(replicas: Replicas, kit: Any) -> None:
    """A job POSTed to replica A is listed and answered by replica B, output included."""
    script = kit.script("echo.sh", "echo provisioned $1\n")
    a, b = replicas.start(script), replicas.start(script, "b")
    posted = a.post(kit.machine("seen", deploy_id="d1"))
    on_b = b.get("/provision/seen")
    done = await wait_for(status_is(b, "seen", COMPLETE), "the job to complete")
    assert posted.status_code == 202
    assert on_b.status_code in (200, 202)
    assert on_b.json()["request"] == posted.json()["request"]
    assert [r["request"]["id"] for r in b.get("/provision/").json()] == ["seen"]
    assert done["message"] == "completed"
    assert b.get("/provision/seen/log").text == "provisioned seen\n"
    assert a.id and b.id and a.id != b.id


async def test_jobs_posted_across_replicas_run_exactly_once_each(
    replicas: Replicas, kit: Any
) -> None:
    """Jobs POSTed alternately to two replicas each run once, on one or the other."""
    ran = kit.tmp / "ran.txt"
    script = kit.script("record.sh", f'echo "$1" >> {ran}\n')
    a = replicas.start(script, "a", "--workers", "2")
    b = replicas.start(script, "b", "--workers", "2")
    ids = [f"m{n}" for n in range(12)]
    for n, job_id in enumerate(ids):
        assert (a if n % 2 else b).post(kit.machine(job_id)).status_code == 202
    for job_id in ids:
        await wait_for(status_is(a, job_id, COMPLETE), f"{job_id} to complete")
    assert sorted(ran.read_text().splitlines()) == sorted(ids)


async def test_a_killed_replicas_job_is_failed_lost_and_not_run_again(
    replicas: Replicas, kit: Any, orphan_pids: list[int]
) -> None:
    """SIGKILL a replica mid-job: once silent past the bound, the survivor (another runs
    directory, so it cannot watch the run) fails the job "interrupted: replica <id> lost",
    and the job is never run a second time."""
    script = kit.gated_script("held.sh")
    a = replicas.start(script, "a")
    a.post(kit.machine("held", deploy_id="d1"))
    await wait_for(lambda: (kit.tmp / "held.sh.pid").exists(), "the script to start on A")
    orphan_pids.append(int((kit.tmp / "held.sh.pid").read_text()))
    b = replicas.start(script, "b")
    a.proc.kill()
    failed = await wait_for(status_is(b, "held", FAILED), "B to give the job up")
    assert failed["message"] == f"interrupted: replica {a.id} lost"
    assert kit.runs("held.sh") == ["held node-1 10.0.0.7 52:54:00:aa:bb:cc compute"]
    assert b.get("/healthz").json()["queue"] == 0  # nothing queued it again
    assert kit.alive(orphan_pids[0])  # A's run lives on, unwatched: hence "lost", not re-run


async def test_a_killed_replicas_run_on_the_same_host_and_runs_dir_is_adopted(
    replicas: Replicas, kit: Any, orphan_pids: list[int]
) -> None:
    """SIGKILL a replica mid-job: a survivor sharing its runs directory adopts the run by pid,
    as a restarted service does, and records how it really ended; it ran once."""
    script = kit.gated_script("held.sh", "echo provisioned $1\n")
    a = replicas.start(script, "shared")
    a.post(kit.machine("held"))
    await wait_for(lambda: (kit.tmp / "held.sh.pid").exists(), "the script to start on A")
    orphan_pids.append(int((kit.tmp / "held.sh.pid").read_text()))
    b = replicas.start(script, "shared")
    a.proc.kill()
    kit.release("held.sh")
    done = await wait_for(status_is(b, "held", COMPLETE), "B to record the adopted run")
    assert done["message"] == "completed"
    assert b.get("/provision/held/log").text == "provisioned held\n"
    assert len(kit.runs("held.sh")) == 1


async def test_one_deploy_posted_to_both_replicas_at_once_starts_one_run(
    replicas: Replicas, kit: Any
) -> None:
    """The same deploy_id POSTed to both replicas at the same moment queues one run; both
    answer the one record, and a repeat after it completed answers 200 and runs nothing."""
    script = kit.gated_script("held.sh")
    a, b = replicas.start(script, "a"), replicas.start(script, "b")
    ids = [f"m{n}" for n in range(5)]
    async with httpx.AsyncClient(timeout=10) as client:
        answers = await asyncio.gather(
            *(
                client.post(f"{r.url}/provision/", json=kit.machine(i, deploy_id=f"d-{i}"))
                for i in ids
                for r in (a, b)
            )
        )
    kit.release("held.sh")
    for job_id in ids:
        await wait_for(status_is(b, job_id, COMPLETE), f"{job_id} to complete")
    repeat = a.post(kit.machine("m0", deploy_id="d-m0"))
    assert {answer.status_code for answer in answers} == {202}
    assert sorted(line.split()[0] for line in kit.runs("held.sh")) == ids
    assert repeat.status_code == 200 and repeat.json()["status"] == COMPLETE
    assert len(kit.runs("held.sh")) == len(ids)


async def test_a_delete_on_one_replica_stops_the_run_on_the_other(
    replicas: Replicas, kit: Any
) -> None:
    """DELETE answered by B of a job running on A: A stops the run at its next heartbeat,
    and its end does not bring the record back."""
    script = kit.gated_script("held.sh")
    a = replicas.start(script, "a")
    a.post(kit.machine("held"))
    await wait_for(lambda: (kit.tmp / "held.sh.pid").exists(), "the script to start on A")
    pid = int((kit.tmp / "held.sh.pid").read_text())
    b = replicas.start(script, "b")
    deleted = b.get("/provision/held").json()
    assert httpx.delete(f"{b.url}/provision/held", timeout=10).status_code == 200
    await wait_for(lambda: not kit.alive(pid), "A to stop the deleted job's script")
    await wait_for(lambda: not a.get("/healthz").json()["running"], "A to let go of it")
    assert deleted["status"] == RUNNING
    assert a.get("/provision/held").status_code == 404
    assert b.get("/provision/").json() == []


async def test_a_replica_cut_off_from_its_database_stops_its_own_run(
    replicas: Replicas, kit: Any, postgres_database: Any, orphan_pids: list[int]
) -> None:
    """A's path to PostgreSQL goes dark mid-job: A's fence stops the run itself (its event
    loop hangs in a database call meanwhile), B fails the job as lost, and it ran once."""
    script = kit.gated_script("held.sh")
    server = postgres_database.server
    proxy = CuttableProxy((server.host, server.port))
    try:
        via_proxy = (
            f"postgresql://{server.user}@{server.host}:{proxy.port}/{postgres_database.name}"
        )
        a = replicas.start(script, "a", db=via_proxy)
        a.post(kit.machine("held"))
        await wait_for(lambda: (kit.tmp / "held.sh.pid").exists(), "the script to start on A")
        pid = int((kit.tmp / "held.sh.pid").read_text())
        orphan_pids.append(pid)  # killed at teardown should the fence fail
        b = replicas.start(script, "b")
        proxy.cut()
        await wait_for(lambda: not kit.alive(pid), "A's fence to stop its run")
        failed = await wait_for(status_is(b, "held", FAILED), "B to give the job up")
    finally:
        proxy.close()
    assert failed["message"] == f"interrupted: replica {a.id} lost"
    assert len(kit.runs("held.sh")) == 1
