"""One `maasflow serve` per records file: a second one exits 2 and touches nobody's jobs.

Real processes: `python -m maasflow serve --port 0 --db <file>`. Without the lock a second
service on the same file would mark the first one's running jobs "interrupted by restart"
at start-up, and both would run what is queued.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
RUNNING, COMPLETE = 1, 2


@dataclass
class Started:
    """The serve processes a test started, and the threads draining their output."""

    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    drains: list[threading.Thread] = field(default_factory=list)


@pytest.fixture
def started() -> Iterator[Started]:
    """The serve processes a test started: killed at teardown, their pipes drained and closed."""
    services = Started()
    yield services
    for proc in services.procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    for drain in services.drains:
        drain.join(10)
    for proc in services.procs:
        if proc.stdout is not None:
            proc.stdout.close()


def serve(started: Started, *args: str) -> subprocess.Popen[str]:
    """Start `maasflow serve --port 0 <args>`, its output on one pipe."""
    argv = [sys.executable, "-m", "maasflow", "serve", "--port", "0", *args]
    proc = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    started.procs.append(proc)
    return proc


def listening(started: Started, proc: subprocess.Popen[str]) -> str:
    """The URL the service's listening line names (fails if it exits first)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.search(r"service\.listening.*url=(http://127\.0\.0\.1:\d+)", line)
        if found:
            drain = threading.Thread(target=proc.stdout.read, daemon=True)  # keep it flowing
            drain.start()
            started.drains.append(drain)
            return found.group(1)
    pytest.fail(f"maasflow serve exited {proc.wait()} before listening")


async def test_second_serve_on_the_same_records_exits_2_naming_the_holder(
    kit: Any, started: Started
) -> None:
    """The second service exits 2 with one line; the first one's running job is still running."""
    db = kit.tmp / "serve.sqlite"
    script = kit.gated_script("held.sh")
    first = serve(started, "--db", str(db), "--script", str(script))
    url = listening(started, first)
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        await client.post("/provision/", json=kit.machine())
        await kit.wait_record(client, "abc123", RUNNING)
        second = serve(started, "--db", str(db), "--script", str(script))
        out, _ = second.communicate(timeout=30)
        assert second.returncode == 2
        (line,) = out.strip().splitlines()
        assert line.startswith("maasflow: ") and f"pid {first.pid}" in line and str(db) in line
        assert (await client.get("/provision/abc123")).json()["status"] == RUNNING
        kit.release("held.sh")
        await kit.wait_record(client, "abc123", COMPLETE)
    assert len(kit.runs("held.sh")) == 1


def test_a_sigkilled_serve_never_blocks_a_restart_on_its_records(
    tmp_path: Path, started: Started
) -> None:
    """The kernel drops a killed holder's lock, so a restart on the same file listens."""
    db = tmp_path / "serve.sqlite"
    holder = serve(started, "--db", str(db))
    listening(started, holder)
    holder.kill()
    holder.wait(10)
    restarted = serve(started, "--db", str(db))
    assert httpx.get(f"{listening(started, restarted)}/healthz").status_code == 200
    assert (tmp_path / "serve.sqlite.lock").read_text() == f"{restarted.pid}\n"


def test_in_memory_records_take_no_lock(started: Started) -> None:
    """Two services keeping records in memory share no state, so both run."""
    first = serve(started, "--db", ":memory:")
    second = serve(started, "--db", ":memory:")
    assert listening(started, first) != listening(started, second)
