"""`maasflow serve` as a process: SIGHUP does not stop it, and its logs follow the environment.

SIGHUP's default action ends a process, and systemd counts that as a clean exit, so a
service killed by a stray `kill -HUP` (or `systemctl kill -s HUP`) would stay down. Its log
level and format come from LOG_LEVEL and LOG_FORMAT as the daemon's do, and on the journal
(JOURNAL_STREAM naming its stderr) each line carries its syslog priority.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.e2e.helpers import get, wait_until

SERVE = [str(Path(sys.executable).parent / "maasflow"), "serve", "--port", "0"]
ENV = {k: v for k, v in os.environ.items() if not k.endswith(("LOG_LEVEL", "LOG_FORMAT"))}


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
        proc = subprocess.Popen(args, stderr=err, stdout=subprocess.DEVNULL, env=ENV)
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


def test_serve_takes_its_log_format_and_level_from_the_environment_and_marks_priorities(
    tmp_path: Path,
) -> None:
    """LOG_FORMAT=json and LOG_LEVEL=debug apply; on the journal every line starts <N>."""
    log = tmp_path / "serve.log"
    with log.open("w") as err:
        found = os.fstat(err.fileno())
        env = {**ENV, "LOG_FORMAT": "json", "LOG_LEVEL": "debug"}
        env["JOURNAL_STREAM"] = f"{found.st_dev}:{found.st_ino}"
        proc = subprocess.Popen(
            [*SERVE, "--db", ":memory:"], stderr=err, stdout=subprocess.DEVNULL, env=env
        )
    try:

        def listening() -> dict[str, Any] | None:
            assert proc.poll() is None, log.read_text()
            lines = [line[3:] for line in log.read_text().splitlines() if line[:3] == "<6>"]
            return next((e for e in map(json.loads, lines) if "listening" in e["event"]), None)

        started = wait_until(listening, bool, 20, "serve listening")
        assert started is not None
        assert get(f"{started['url']}/healthz").status_code == 200
        probe = '"path": "/healthz"'
        wait_until(log.read_text, lambda text: probe in text, 20, "the probe's line")
        (line,) = [line for line in log.read_text().splitlines() if probe in line]
        assert line.startswith("<7>{") and json.loads(line[3:])["level"] == "debug"
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_bad_log_level_in_the_environment_exits_2_naming_it() -> None:
    """LOG_LEVEL=loud stops serve at once: exit 2 and one line naming LOG_LEVEL."""
    env = {**ENV, "LOG_LEVEL": "loud"}
    done = subprocess.run([*SERVE, "--db", ":memory:"], env=env, capture_output=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.decode().strip().splitlines()[-1].startswith("maasflow")
    assert "LOG_LEVEL: log level 'loud'" in done.stderr.decode()
    assert "Traceback" not in done.stderr.decode()
