"""Records survive restarts; jobs a stopped or killed service left behind become failed."""

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
from pathlib import Path
from typing import Any

import httpx
import pytest

from maasflow.common.errors import ConfigError
from maasflow.common.supervision import RunHandle
from maasflow.serve import ServiceConfig, serve_service
from maasflow.serve.records import JobRequest, Record, Records, RecordStore, Status

REPO = Path(__file__).resolve().parents[2]
PENDING, RUNNING, COMPLETE, FAILED = 0, 1, 2, 3


async def test_finished_record_survives_a_restart(kit: Any) -> None:
    """A record finished before a restart is still there, unchanged, after it."""
    db = kit.tmp / "serve.sqlite"
    script = kit.script("echo.sh", "echo provisioned $1\n")
    config = ServiceConfig(script=script, db=db)
    async with kit.running(config) as client:
        await client.post("/provision/", json=kit.machine())
        before = await kit.wait_record(client, "abc123", COMPLETE)
    async with kit.running(config) as client:
        after = await client.get("/provision/abc123")
        log = await client.get("/provision/abc123/log")
    assert after.status_code == 200 and after.json() == before
    assert log.text == "provisioned abc123\n"


async def test_shutdown_kills_running_jobs_and_fails_pending_ones(kit: Any) -> None:
    """A clean shutdown kills running jobs' process groups and fails every unfinished record."""
    db = kit.tmp / "serve.sqlite"
    script = kit.gated_script("held.sh")
    config = ServiceConfig(script=script, db=db, workers=1)
    async with kit.running(config) as client:
        await client.post("/provision/", json=kit.machine("run"))
        await kit.wait_record(client, "run", RUNNING)
        await kit.wait_until(lambda: (kit.tmp / "held.sh.pid").exists(), "the script's pid")
        await client.post("/provision/", json=kit.machine("wait"))
    pid = int((kit.tmp / "held.sh.pid").read_text())
    await kit.wait_until(lambda: not kit.alive(pid), "the running script to be killed")
    async with kit.running(config) as client:
        records = {r["request"]["id"]: r for r in (await client.get("/provision/")).json()}
    assert {r["status"] for r in records.values()} == {FAILED}
    assert {r["message"] for r in records.values()} == {"interrupted by shutdown"}
    assert len(kit.runs("held.sh")) == 1


@pytest.fixture
def orphan_pids() -> Iterator[list[int]]:
    """Process groups a killed service leaves behind, killed after the test."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


@contextlib.contextmanager
def serve_cli(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`python -m maasflow serve --port 0 ...` and the URL its listening line names; on the
    way out the process is ended (killed if still running) and its pipe drained and closed."""
    argv = [sys.executable, "-m", "maasflow", "serve", "--port", "0", *args]
    with subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        drain = threading.Thread(target=proc.stdout.read, daemon=True)  # keeps the pipe flowing
        try:
            url = _listening_url(proc)
            drain.start()
            yield proc, url
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if drain.is_alive():
                drain.join(timeout=10)


def _listening_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.search(r"service\.listening.*url=(http://127\.0\.0\.1:\d+)", line)
        if found:
            return found.group(1)
    pytest.fail(f"maasflow serve exited {proc.wait()} before listening")


async def wait_status(url: str, job_id: str, status: int) -> dict[str, Any]:
    """Poll the service until `job_id` has `status`; its record."""
    deadline = time.monotonic() + 20
    while (record := httpx.get(f"{url}/provision/{job_id}").json())["status"] != status:
        assert time.monotonic() < deadline, f"{job_id} never reached {status}: {record}"
        await asyncio.sleep(0.02)
    body: dict[str, Any] = record
    return body


def wait_running(url: str, job_id: str) -> None:
    """Poll the service until `job_id` is running (its script started)."""
    deadline = time.monotonic() + 20
    while httpx.get(f"{url}/provision/{job_id}").json()["status"] != RUNNING:
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.02)


async def test_serve_sigkilled_mid_job_adopts_the_run_and_never_runs_it_twice(
    kit: Any, orphan_pids: list[int]
) -> None:
    """A job running when `maasflow serve` is SIGKILLed runs on; the restarted service
    adopts it (202), records its real end, and a repeated POST starts no second run."""
    db = kit.tmp / "serve.sqlite"
    script = kit.gated_script("held.sh", "echo provisioned $1\n")
    with serve_cli("--db", str(db), "--script", str(script)) as (proc, url):
        httpx.post(f"{url}/provision/", json=kit.machine(deploy_id="d1"))
        wait_running(url, "abc123")
        await kit.wait_until(lambda: (kit.tmp / "held.sh.pid").exists(), "the script's pid")
        orphan_pids.append(int((kit.tmp / "held.sh.pid").read_text()))
        proc.kill()
    assert kit.alive(orphan_pids[0])  # the run outlived the service
    with serve_cli("--db", str(db), "--script", str(script)) as (proc, url):
        adopted = httpx.get(f"{url}/provision/abc123")
        again = httpx.post(f"{url}/provision/", json=kit.machine(deploy_id="d1"))
        kit.release("held.sh")
        done = await wait_status(url, "abc123", COMPLETE)
        log = httpx.get(f"{url}/provision/abc123/log").text
        proc.kill()
    assert (adopted.status_code, adopted.json()["status"]) == (202, RUNNING)
    assert again.status_code == 202 and again.json()["status"] == RUNNING
    assert done["message"] == "completed" and log == "provisioned abc123\n"
    assert len(kit.runs("held.sh")) == 1


async def test_a_job_that_ended_while_serve_was_dead_keeps_its_result(
    kit: Any, orphan_pids: list[int]
) -> None:
    """A job that finishes while the service is down is recorded with its real outcome."""
    db = kit.tmp / "serve.sqlite"
    script = kit.gated_script("held.sh", "echo broke >&2\nexit 7\n")
    with serve_cli("--db", str(db), "--script", str(script)) as (proc, url):
        httpx.post(f"{url}/provision/", json=kit.machine())
        wait_running(url, "abc123")
        await kit.wait_until(lambda: (kit.tmp / "held.sh.pid").exists(), "the script's pid")
        pid = int((kit.tmp / "held.sh.pid").read_text())
        orphan_pids.append(pid)
        proc.kill()
    kit.release("held.sh")
    await kit.wait_until(lambda: not kit.alive(pid), "the script to end")
    async with kit.running(ServiceConfig(script=script, db=db)) as client:
        record = await kit.wait_record(client, "abc123", FAILED)
    assert record["message"] == "exit status 7: broke"
    assert len(kit.runs("held.sh")) == 1


async def test_job_of_a_killed_service_is_failed_after_restart(
    kit: Any, orphan_pids: list[int]
) -> None:
    """A job whose run died with the SIGKILLed service (as in a container stop) is failed
    "interrupted by restart"."""
    db = kit.tmp / "serve.sqlite"
    script = kit.gated_script("held.sh")
    with serve_cli("--db", str(db), "--script", str(script)) as (proc, url):
        httpx.post(f"{url}/provision/", json=kit.machine())
        wait_running(url, "abc123")
        await kit.wait_until(lambda: (kit.tmp / "held.sh.pid").exists(), "the script's pid")
        orphan_pids.append(int((kit.tmp / "held.sh.pid").read_text()))
        proc.kill()
        proc.wait()
    store = RecordStore(db)
    running = store.get("abc123")
    store.close()
    assert running is not None and running.run is not None
    for pgid in (running.run.pgid, orphan_pids[0]):  # the run's supervisor, then the script
        os.killpg(pgid, signal.SIGKILL)
    await kit.wait_until(lambda: not running.run.alive(), "the supervisor to be gone")
    async with kit.running(ServiceConfig(script=script, db=db)) as client:
        record = await client.get("/provision/abc123")
    assert record.status_code == 200
    assert record.json()["status"] == FAILED
    assert record.json()["message"] == "interrupted by restart"
    assert len(kit.runs("held.sh")) == 1


async def test_sigterm_stops_the_cli_cleanly_with_exit_0(kit: Any) -> None:
    """`maasflow serve` exits 0 on SIGTERM, after killing its running job and recording it."""
    db = kit.tmp / "serve.sqlite"
    script = kit.gated_script("held.sh")
    with serve_cli("--db", str(db), "--script", str(script)) as (proc, url):
        try:
            httpx.post(f"{url}/provision/", json=kit.machine())
            wait_running(url, "abc123")
            await kit.wait_until(lambda: (kit.tmp / "held.sh.pid").exists(), "the script's pid")
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
    pid = int((kit.tmp / "held.sh.pid").read_text())
    assert code == 0
    assert not kit.alive(pid)
    record = RecordStore(db).get("abc123")
    assert record is not None and record.message == "interrupted by shutdown"


def test_store_round_trips_a_record(open_records: Callable[[], Records]) -> None:
    """A record put in the store comes back equal, across connections (both stores)."""
    record = Record(
        JobRequest("m1", "node", "10.0.0.1", "", role="gpu", script="wipe"),
        status=Status.COMPLETE,
        worker=2,
        message="completed",
        timestamp=1700000000,
        role="gpu",
        output="ok\n",
    )
    open_records().put(record)
    assert open_records().get("m1") == record


def test_fail_unfinished_touches_only_pending_and_running(
    open_records: Callable[[], Records],
) -> None:
    """Only pending and running records become failed; finished ones keep their outcome
    (both stores)."""
    store = open_records()
    for job_id, status in [("p", Status.PENDING), ("r", Status.RUNNING), ("c", Status.COMPLETE)]:
        store.put(Record(JobRequest(job_id, "n", "10.0.0.1", ""), status=status, message="x"))
    assert store.fail_unfinished("interrupted by restart") == 2
    outcome = {r.id: (r.status, r.message) for r in store.all()}
    assert outcome == {
        "p": (Status.FAILED, "interrupted by restart"),
        "r": (Status.FAILED, "interrupted by restart"),
        "c": (Status.COMPLETE, "x"),
    }


@pytest.mark.parametrize("kind", ["directory", "not sqlite"])
def test_unusable_db_is_a_config_error(tmp_path: Path, kind: str) -> None:
    """A --db that is a directory or not an SQLite file is a ConfigError naming --db."""
    path = tmp_path / "db"
    if kind == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(ConfigError, match=r"^--db "):
        RecordStore(path)


async def test_an_adopted_run_that_ends_leaves_the_pool_healthy(kit: Any, tmp_path: Path) -> None:
    """A run adopted at start-up that turns out gone is failed "interrupted", and the pool still
    counts as healthy afterwards (its watch is no worker), so the watchdog keeps being fed."""
    db = tmp_path / "serve.sqlite"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run = RunHandle(gone.pid, gone.pid, 1, str(tmp_path / "serve-runs" / "lost.json"))
    request = JobRequest("abc123", "node1", "10.0.0.5", "52:54:00:00:00:01")
    with contextlib.closing(RecordStore(db)) as store:
        store.put(Record(request, Status.RUNNING, message="running", run=run))
    async with serve_service(ServiceConfig(db=db, workers=1)) as svc:
        found = svc.pool.store.get
        await kit.wait_until(
            lambda: getattr(found("abc123"), "status", None) is Status.FAILED,
            "the adopted run to be found gone",
        )
        record = found("abc123")  # written as the watch ends, in its last step
        assert svc.pool.healthy
    assert record is not None and "interrupted" in record.message
