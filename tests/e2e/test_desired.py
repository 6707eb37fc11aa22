"""End to end: `maasflow desire` against the real daemon (a process, `-desire-token-file` from
the environment) driving the simulator over loopback: set, show, clear, and its refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from maasflow.sim import MachineSpec, SimConfig, SimulatorThread
from tests.e2e.conftest import FAST, DaemonFactory
from tests.e2e.helpers import base_env, get, run_cli, wait_until
from tests.e2e.test_telemetry import start_watched

TOKEN = "e2e-desire-token-0123456789"
USER_DATA = "#cloud-config\nchpasswd: {list: 'root:sekrit-pw'}\n"


def _fleet() -> SimConfig:
    """`dark-1`: New, power unknown (the rules wait: no write ever); `theirs`: another user's."""
    return SimConfig(time_factor=FAST, machines=[
        MachineSpec("dark-1", power_state="unknown", power_type=""),
        MachineSpec("theirs", status=6, owner="someone-else", power_state="on"),
    ])  # fmt: skip


def _row(url: str, host: str) -> dict[str, Any]:
    rows = get(f"{url}/state").json()["machines"]
    return next(m for m in rows if m["hostname"] == host)


def test_desire_sets_shows_and_clears_and_the_daemon_follows_at_its_next_pass(
    start_daemon: DaemonFactory, home: Path, tmp_path: Path
) -> None:
    """`desire dark-1 --target ignore` is stored and the next pass follows it; with no flag it
    is shown; `--clear` gives the machine back to the rules. User data never shows."""
    token_file = tmp_path / "desire-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    user_data = tmp_path / "user-data"
    user_data.write_text(USER_DATA)
    with SimulatorThread(_fleet()) as sim:
        daemon, url = start_watched(
            start_daemon, sim, home, tmp_path, DESIRE_TOKEN_FILE=str(token_file)
        )
        env = base_env(home, DESIRE_TOKEN_FILE=str(token_file), MAASFLOW_STATUS_URL=url)
        waiting = _row(url, "dark-1")["reason"]
        put = run_cli(["desire", "dark-1", "--target", "ignore", "--by", "cloud-7"], env)
        reason = wait_until(lambda: _row(url, "dark-1")["reason"], lambda r: r != waiting, 20,
                            "the next pass to follow the desire")  # fmt: skip
        shown = run_cli(["desire", "dark-1"], env)
        deploy = run_cli(["desire", "dark-1", "--distro", "jammy", "--user-data-file",
                          str(user_data)], env)  # fmt: skip
        status = run_cli(["status", "dark-1"], env)
        cleared = run_cli(["desire", "dark-1", "--clear"], env)
        back = wait_until(lambda: _row(url, "dark-1")["reason"], lambda r: r == waiting, 20,
                          "the rules to decide again")  # fmt: skip
        writes = sim.request_log.writes()  # the desire is maasflow's: nothing went to MAAS
    assert daemon.terminate() == 0
    assert put.returncode == 0, put.stderr
    sid = sim.find("dark-1").system_id
    assert put.stdout.strip().startswith(f"dark-1 ({sid}): api desire: target=ignore; set by")
    assert "Ignore" in reason and back == waiting
    assert shown.stdout.strip().startswith(f"dark-1 ({sid}): api desire: target=ignore")
    assert "set by cloud-7 (desire token, from 127.0.0.1" in shown.stdout
    assert deploy.returncode == 0, deploy.stderr
    size = len(USER_DATA.encode())
    assert f"api desire: distro_series=jammy user_data=<{size} bytes>" in deploy.stdout
    assert f"desired      api: distro_series=jammy user_data=<{size} bytes>" in status.stdout
    assert cleared.stdout.strip() == (
        f"dark-1 ({sid}): stored desire cleared; the rules decide from the next pass"
    )
    assert writes == []
    every = "".join(r.stdout + r.stderr for r in (put, shown, deploy, status, cleared))
    assert TOKEN not in every and "sekrit" not in every


def test_desire_refusals_exit_1_or_2_with_one_line(
    start_daemon: DaemonFactory, home: Path, tmp_path: Path
) -> None:
    """Another user's machine: exit 1 (409, why); an unknown one: exit 1 (404); a bad
    combination: exit 2 before anything is sent; no token file: exit 2."""
    token_file = tmp_path / "desire-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    with SimulatorThread(_fleet()) as sim:
        daemon, url = start_watched(
            start_daemon, sim, home, tmp_path, DESIRE_TOKEN_FILE=str(token_file)
        )
        env = base_env(home, DESIRE_TOKEN_FILE=str(token_file), MAASFLOW_STATUS_URL=url)
        theirs = run_cli(["desire", "theirs", "--target", "ready"], env)
        ghost = run_cli(["desire", "ghost"], env)
        bad = run_cli(["desire", "dark-1", "--target", "deployed", "--quick-erase"], env)
        bad_value = run_cli(["desire", "dark-1", "--power", "sideways"], env)
        no_token = run_cli(["desire", "dark-1"], base_env(home, MAASFLOW_STATUS_URL=url))
    assert daemon.terminate() == 0
    assert (theirs.returncode, theirs.stderr.strip()) == (1, (
        "maasflow: the daemon answered HTTP 409: maasflow cannot touch this machine: owned by "
        "someone-else, not by maasflow's MAAS user admin"
    ))  # fmt: skip
    assert ghost.returncode == 1 and "HTTP 404: no such machine" in ghost.stderr
    assert (bad.returncode, bad.stderr.strip()) == (
        2, "maasflow: desire: release: only a Ready target releases machines",
    )  # fmt: skip
    assert bad_value.returncode == 2 and len(bad_value.stderr.strip().splitlines()) == 1
    assert "--power" in bad_value.stderr
    assert no_token.returncode == 2 and "--token-file" in no_token.stderr
