"""End to end: the running daemon's `/healthz`, `/metrics`, `/state`, `maasflow status`, sd_notify.

The daemon is the real CLI with `-listen 127.0.0.1:0`; the URL comes from its JSON log. While
the simulator answers, health is 200 after a pass, the metrics count passes and MAAS requests
per op, `/state` and `maasflow status` list the machines. Once the simulator is stopped,
health turns 503 with a reason naming MAAS. Under a systemd-like `NOTIFY_SOCKET` (a datagram
socket bound here) READY=1, STATUS= and WATCHDOG=1 arrive.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from maasflow.sim import SimConfig, Simulator, SimulatorThread, generate_machines
from tests.e2e.conftest import FAST, DaemonFactory
from tests.e2e.helpers import DaemonProcess, base_env, get, run_cli, wait_until

LISTEN = ["-period", "0.2s", "-listen", "127.0.0.1:0", "-log-format", "json"]


def machines_config(seed: int) -> SimConfig:
    return SimConfig(seed=seed, time_factor=FAST, machines=generate_machines(4, seed))


def start_watched(
    start_daemon: DaemonFactory, sim: Simulator, home: Path, tmp_path: Path, **env: str
) -> tuple[DaemonProcess, str]:
    """A looping daemon on `sim` and its telemetry URL, once its first pass succeeded."""
    args = [*LISTEN, "-maas", sim.url, "-db", str(tmp_path / "state.sqlite")]
    daemon = start_daemon(args, base_env(home, MAAS_API_KEY=sim.admin_key, **env))
    url = daemon.telemetry_url()
    wait_until(lambda: get(f"{url}/healthz").status_code, lambda c: c == 200, 20, "healthz 200")
    return daemon, url


def health(url: str) -> tuple[int, str]:
    """(status code, reason) of `/healthz`."""
    response = get(f"{url}/healthz")
    return response.status_code, str(response.json().get("reason", ""))


def test_healthz_metrics_state_and_status_while_running(
    start_daemon: DaemonFactory, home: Path, tmp_path: Path
) -> None:
    """After a pass: healthz 200; metrics count passes and requests per op; state and status list
    the machines."""
    with SimulatorThread(machines_config(51)) as sim:
        daemon, url = start_watched(start_daemon, sim, home, tmp_path)
        hosts = sorted(m.hostname for m in sim.machines.values())
        wait_until(lambda: commissions(url), lambda n: n >= len(hosts), 20, "4 commissions counted")
        metrics = get(f"{url}/metrics").text
        state = get(f"{url}/state").json()
        status = run_cli(["status", "--url", url], base_env(home))
    assert daemon.terminate() == 0
    assert re.search(r'^maasflow_passes_total\{outcome="ok"\} [1-9]', metrics, re.M)
    assert re.search(r'^maasflow_maas_requests_total\{.*op="whoami".*\} 1\.0$', metrics, re.M)
    assert sorted(m["hostname"] for m in state["machines"]) == hosts
    assert status.returncode == 0, status.stderr
    assert all(host in status.stdout for host in hosts)


def commissions(url: str) -> float:
    """How many commission requests the daemon's metrics counted so far."""
    pattern = r'^maasflow_maas_requests_total\{[^}]*op="commission"[^}]*\} (\S+)$'
    found = re.findall(pattern, get(f"{url}/metrics").text, re.M)
    return sum(float(value) for value in found)


def test_healthz_turns_503_naming_maas_once_the_simulator_is_gone(
    start_daemon: DaemonFactory, home: Path, tmp_path: Path
) -> None:
    """Stop the simulator under a running daemon: /healthz answers 503 with a reason about MAAS."""
    thread = SimulatorThread(machines_config(52))
    sim = thread.start()
    try:
        daemon, url = start_watched(start_daemon, sim, home, tmp_path)
    finally:
        thread.stop()
    code, reason = wait_until(lambda: health(url), lambda h: "MAAS" in h[1], 30, "MAAS in reason")
    assert code == 503
    assert reason.startswith("MAAS unreachable")
    assert daemon.terminate() == 0


def test_healthz_names_maas_from_its_first_503(
    start_daemon: DaemonFactory, home: Path, tmp_path: Path
) -> None:
    """The first unhealthy answer after MAAS goes away already says MAAS, not 'loop stuck'."""
    thread = SimulatorThread(machines_config(53))
    sim = thread.start()
    try:
        daemon, url = start_watched(start_daemon, sim, home, tmp_path)
    finally:
        thread.stop()
    _, reason = wait_until(lambda: health(url), lambda h: h[0] == 503, 30, "healthz 503")
    daemon.kill()
    assert "MAAS" in reason


@contextlib.contextmanager
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound in a short directory (AF_UNIX paths are limited to ~108 bytes)."""
    directory = tempfile.mkdtemp(prefix="mf-", dir="/tmp")
    path = f"{directory}/notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(path)
        sock.settimeout(0.2)
        yield sock, path
    finally:
        sock.close()
        shutil.rmtree(directory, ignore_errors=True)


def collect(sock: socket.socket, until: Callable[[list[str]], bool], timeout: float) -> list[str]:
    """Datagrams (each may hold several lines) received until `until(lines)` or the deadline."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while not until(lines) and time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            lines += sock.recv(4096).decode().splitlines()
    return lines


def test_systemd_hears_ready_status_and_watchdog(
    start_daemon: DaemonFactory, home: Path, tmp_path: Path
) -> None:
    """With NOTIFY_SOCKET and WATCHDOG_USEC=2 s the daemon sends READY=1, STATUS= and WATCHDOG=1."""

    def complete(lines: list[str]) -> bool:
        return {"READY=1", "WATCHDOG=1"} <= set(lines) and any(
            line.startswith("STATUS=") for line in lines
        )

    with SimulatorThread(machines_config(54)) as sim, notify_socket() as (sock, path):
        env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"}
        daemon, _ = start_watched(start_daemon, sim, home, tmp_path, **env)
        lines = collect(sock, complete, 15)
        assert daemon.terminate() == 0
        lines += collect(sock, lambda seen: "STOPPING=1" in seen, 2)
    assert complete(lines), lines
    assert "STOPPING=1" in lines
    assert lines.index("READY=1") < lines.index("WATCHDOG=1")
