"""Helpers for the end-to-end tests: the real `maasflow` CLI as a subprocess, and waiting.

The daemon runs as `[sys.executable, "-m", "maasflow", ...]` with a minimal environment of
our own making (so a developer's `MAAS_*`, proxy or systemd variables never leak in), its
output going to files (a pipe nobody reads could block it). Its log is JSON (`-log-format
json`), one object per line on stderr, which is how we learn the telemetry URL. A provisioning
script that appends one line per run to a file is the witness of "ran once per machine".
Every wait is a poll with a deadline that fails with the last thing seen; nothing here sleeps
to assert. Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx

MAASFLOW = [sys.executable, "-m", "maasflow"]
T = TypeVar("T")

RECORDING_SCRIPT = """#!/bin/sh
# One line per run: the id from the environment, whether a MAAS key leaked in, then argv.
printf '%s|%s|%s\\n' "$MAASFLOW_SYSTEM_ID" "${{MAAS_API_KEY:-unset}}" "$*" >> '{runs}'
"""


def base_env(home: Path, **extra: str) -> dict[str, str]:
    """A minimal environment: PATH, a private HOME (so default state lands in tmp), `extra`."""
    home.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LC_ALL": "C.UTF-8"}
    env.update(extra)
    return env


def run_cli(
    args: list[str], env: dict[str, str], timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run `maasflow <args>` to completion and capture its output."""
    return subprocess.run(
        [*MAASFLOW, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def write_recording_script(path: Path, runs: Path) -> Path:
    """An executable script appending `<env id>|<key or unset>|<argv>` to `runs` per run."""
    path.write_text(RECORDING_SCRIPT.format(runs=runs))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@dataclass(frozen=True)
class Run:
    """One line of the recording script's file."""

    env_id: str
    key: str
    argv: list[str]


def read_runs(runs: Path) -> list[Run]:
    """Every recorded script run, in order (none when the file does not exist)."""
    if not runs.exists():
        return []
    result = []
    for line in runs.read_text().splitlines():
        env_id, key, argv = line.split("|", 2)
        result.append(Run(env_id, key, argv.split()))
    return result


def wait_until(probe: Callable[[], T], done: Callable[[T], bool], timeout: float, what: str) -> T:
    """Call `probe` until `done(value)`; fail after `timeout` s showing the last value."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not done(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; got {value!r}")
        time.sleep(0.05)
        value = probe()
    return value


def get(url: str, timeout: float = 5.0) -> httpx.Response:
    """A GET on loopback that ignores any proxy settings."""
    return httpx.get(url, timeout=timeout, trust_env=False)


class DaemonProcess:
    """`maasflow [flags]` running in the background, its stdout/stderr in files."""

    def __init__(self, args: list[str], env: dict[str, str], workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = workdir / "daemon.stdout"
        self.stderr_path = workdir / "daemon.stderr"
        with self.stdout_path.open("w") as out, self.stderr_path.open("w") as err:
            self.proc = subprocess.Popen([*MAASFLOW, *args], env=env, stdout=out, stderr=err)

    def output(self) -> str:
        """Everything the daemon wrote so far (stdout then stderr)."""
        return self.stdout_path.read_text() + self.stderr_path.read_text()

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (other lines are skipped)."""
        found = []
        for line in self.stderr_path.read_text().splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                found.append(item)
        return found

    def wait_event(self, event: str, timeout: float = 20.0) -> dict[str, Any]:
        """The first log event called `event`; fail if the process ends or time runs out."""

        def probe() -> dict[str, Any] | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.output()}")
            return next((e for e in self.events() if e.get("event") == event), None)

        found = wait_until(probe, lambda e: e is not None, timeout, f"log event {event!r}")
        assert found is not None
        return found

    def telemetry_url(self, timeout: float = 20.0) -> str:
        """The `-listen` URL the daemon logged."""
        return str(self.wait_event("telemetry listening", timeout)["url"])

    def state(self, url: str) -> dict[str, Any]:
        """The daemon's `/state` document."""
        doc: dict[str, Any] = get(f"{url}/state").json()
        return doc

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit status (killed and failed after `timeout`)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"no exit {timeout:g}s after SIGTERM:\n{self.output()}") from None

    def kill(self) -> None:
        """SIGKILL if still running (for `finally` blocks)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def phases(state: dict[str, Any]) -> dict[str, str]:
    """system_id → maasflow phase, from a `/state` document."""
    return {m["system_id"]: m["phase"] for m in state.get("machines", [])}


def wait_all_provisioned(
    daemon: DaemonProcess, url: str, system_ids: set[str], timeout: float
) -> None:
    """Poll `/state` until every machine in `system_ids` is in phase `provisioned`."""

    def pending() -> dict[str, str]:
        if daemon.proc.poll() is not None:
            raise AssertionError(f"daemon exited {daemon.proc.returncode}:\n{daemon.output()}")
        seen = phases(daemon.state(url))
        return {sid: seen.get(sid, "-") for sid in system_ids if seen.get(sid) != "provisioned"}

    wait_until(pending, lambda left: not left, timeout, "every machine provisioned")


def key_free(text: str, key: str) -> bool:
    """True when neither the key nor its secret part appears in `text`."""
    secret = key.rsplit(":", 1)[-1]
    return key not in text and (len(secret) < 6 or secret not in text)


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """Terminate, then kill, a subprocess we started (for `finally` blocks)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class InstantProvisioner:
    """An HTTP provisioner on 127.0.0.1 whose jobs are done the moment they are POSTed.

    Each POST appends a line to `runs` in the recording script's format, so `read_runs`
    witnesses it the same way; GET answers 200 complete, DELETE 200. For tests that judge
    something else than provisioning and must not pay for script processes.
    """

    def __init__(self, runs: Path) -> None:
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                job = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock, runs.open("a") as out:
                    out.write(f"{job['id']}|unset|{job['id']} {job['name']} {job['ip']}\n")
                self._answer(202)

            def do_GET(self) -> None:
                self._answer(200)

            def do_DELETE(self) -> None:
                self._answer(200)

            def _answer(self, code: int) -> None:
                body = json.dumps({"status": 2, "status_name": "complete"}).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/provision/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
