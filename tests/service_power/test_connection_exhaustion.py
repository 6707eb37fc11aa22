"""`maasflow serve` keeps answering MAAS while more clients hold idle connections than it has files.

A real `maasflow serve` runs with its open-file limit lowered to 256 (the systemd default is
1,024; the units now raise it, but the service must not depend on that), and this test opens
600 idle connections to it, more than the limit allows. Before the fix every accept() then
failed with EMFILE: nobody was answered, MAAS's power queries included, and asyncio logged a
traceback per attempt. Now a power query is answered at once and the log stays short.
"""

from __future__ import annotations

import json
import re
import resource
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
FILE_LIMIT = 256
IDLE = 600
CONFIG = {
    "machines": {
        "desk1": {
            "backend": "command",
            "on": ["true"],
            "off": ["true"],
            "status": ["echo", "status: running"],
        }
    }
}


def _lower_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, FILE_LIMIT))


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`maasflow serve` with a power config and a 256-file limit; (URL, its log file)."""
    config = tmp_path / "power.json"
    config.write_text(json.dumps(CONFIG))
    log = tmp_path / "serve.log"
    argv = [sys.executable, "-m", "maasflow", "serve", "--port", "0", "--db", ":memory:"]
    argv += ["--power-config", str(config), "--power-state", str(tmp_path / "state.json")]
    with log.open("w") as out:
        proc = subprocess.Popen(
            argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_lower_file_limit
        )
    try:
        yield _listening(proc, log), log
    finally:
        proc.kill()
        proc.wait(10)


def _listening(proc: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"service\.listening url=(http://127\.0\.0\.1:\d+)", log.read_text())
        if found:
            return found.group(1)
        assert proc.poll() is None, log.read_text()
        time.sleep(0.05)
    pytest.fail(f"maasflow serve did not listen within 30 s:\n{log.read_text()}")


def open_idle(port: int, count: int, settle: float = 5.0) -> list[socket.socket]:
    """Start `count` connections at once (non-blocking) and wait until the kernel made them."""
    pending = selectors.DefaultSelector()
    made: list[socket.socket] = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        pending.register(sock, selectors.EVENT_WRITE)
    deadline = time.monotonic() + settle
    while pending.get_map() and time.monotonic() < deadline:
        for key, _ in pending.select(0.1):
            pending.unregister(key.fileobj)
            made.append(key.fileobj)  # type: ignore[arg-type]
    made += [key.fileobj for key in list(pending.get_map().values())]  # type: ignore[misc]
    pending.close()
    return made


def test_idle_connections_beyond_the_file_limit_never_starve_a_power_query(
    service: tuple[str, Path],
) -> None:
    """600 idle connections at a 256-file limit: the query is answered, the log stays short."""
    url, log = service
    idle = open_idle(int(url.rsplit(":", 1)[1]), IDLE)
    try:
        # Before the fix nobody was answered at all; the generous timeout is not a timing goal.
        response = httpx.get(f"{url}/power/desk1", timeout=60, trust_env=False)
        health = httpx.get(f"{url}/healthz", timeout=60, trust_env=False)
    finally:
        for sock in idle:
            sock.close()
    assert response.status_code == 200 and response.text == '{"status": "running"}\n'
    assert health.status_code == 200
    lines = log.read_text().splitlines()
    assert len(lines) < 40, "\n".join(lines[:40])
    assert "Traceback" not in log.read_text()
