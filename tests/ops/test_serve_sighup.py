"""`maasflow serve` survives SIGHUP: it logs that nothing is reloaded and keeps serving.

SIGHUP's default action ends a process, and systemd counts that as a clean exit, so a
service killed by a stray `kill -HUP` (or `systemctl kill -s HUP`) would stay down.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.e2e.helpers import get, wait_until

SERVE = [str(Path(sys.executable).parent / "maasflow"), "serve", "--port", "0"]


def events(path: Path) -> list[dict[str, Any]]:
    """The JSON log lines in `path` so far."""
    found = []
    for line in path.read_text().splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def event(path: Path, name: str, proc: subprocess.Popen[bytes]) -> dict[str, Any] | None:
    """The first log event called `name`; fail at once if the process has exited."""
    assert proc.poll() is None, f"serve exited {proc.returncode}: {path.read_text()}"
    return next((e for e in events(path) if e.get("event") == name), None)


def test_serve_logs_sighup_and_keeps_serving(tmp_path: Path) -> None:
    """After SIGHUP, serve logs a warning, still answers /healthz, and SIGTERM exits 0."""
    log = tmp_path / "serve.log"
    with log.open("w") as err:
        args = [*SERVE, "--db", ":memory:", "--log-format", "json"]
        proc = subprocess.Popen(args, stderr=err, stdout=subprocess.DEVNULL)
    try:
        listening = wait_until(
            lambda: event(log, "service.listening", proc), bool, 20, "serve listening"
        )
        assert listening is not None
        proc.send_signal(signal.SIGHUP)
        hup = wait_until(
            lambda: next((e for e in events(log) if "SIGHUP" in e.get("event", "")), None),
            bool,
            20,
            "the SIGHUP line",
        )
        assert hup is not None and hup["level"] == "warning"
        assert get(f"{listening['url']}/healthz").status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
