"""Fixtures for the end-to-end tests: simulators, daemon subprocesses, a recording script.

Simulators run in-process (`SimulatorThread`) so a test can read their request log; the
daemon is always the real CLI in a subprocess. Every factory stops what it started at
teardown, so a failing assertion never leaves a process or a thread behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from maasflow.sim import SimConfig, Simulator, SimulatorThread
from tests.e2e.helpers import DaemonProcess, base_env, write_recording_script

FAST = 0.01  # simulator time factor: a 20 s commissioning takes 0.2 s

SimFactory = Callable[[SimConfig], Simulator]
DaemonFactory = Callable[[list[str], dict[str, str]], DaemonProcess]


@pytest.fixture(params=["on", "off"])
def events(request: pytest.FixtureRequest) -> str:
    """`-events on` (the default: every e2e test runs with it) and `-events off` (plain
    polling): the key end-to-end tests ask for this fixture and run with both."""
    value: str = request.param
    return value


@pytest.fixture
def sim_threads() -> Iterator[list[SimulatorThread]]:
    """The simulator threads a test started (stopped at teardown)."""
    threads: list[SimulatorThread] = []
    yield threads
    for thread in threads:
        thread.stop()


@pytest.fixture
def start_sim(sim_threads: list[SimulatorThread]) -> SimFactory:
    """Start a simulator on 127.0.0.1 from a config; it is stopped at teardown."""

    def start(config: SimConfig) -> Simulator:
        thread = SimulatorThread(config)
        sim = thread.start()
        sim_threads.append(thread)
        return sim

    return start


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[DaemonFactory]:
    """Start `maasflow [args]` in the background; it is killed at teardown if still running."""
    started: list[DaemonProcess] = []

    def start(args: list[str], env: dict[str, str]) -> DaemonProcess:
        daemon = DaemonProcess(args, env, tmp_path / f"daemon-{len(started)}")
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.kill()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A private HOME for the subprocesses."""
    return tmp_path / "home"


@pytest.fixture
def runs_file(tmp_path: Path) -> Path:
    """Where the recording script writes one line per run."""
    return tmp_path / "runs.txt"


@pytest.fixture
def script(tmp_path: Path, runs_file: Path) -> Path:
    """A provisioning script that records each run in `runs_file`."""
    return write_recording_script(tmp_path / "provision.sh", runs_file)


@pytest.fixture
def env_for(home: Path) -> Callable[[Simulator], dict[str, str]]:
    """The daemon's environment for a simulator: its admin key in MAAS_API_KEY."""

    def make(sim: Simulator, **extra: str) -> dict[str, str]:
        return base_env(home, MAAS_API_KEY=sim.admin_key, MAAS_URL=sim.url, **extra)

    return make
