"""`maasflow pause|resume|retry` and `maasflow status [--all] [<machine>]` against a daemon's
real endpoint on loopback: the Bearer token, the control routes, reasons and histories."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from maasflow import __version__, cli
from maasflow.common.clock import FakeClock
from maasflow.common.errors import ConfigError, StoreError, TemporaryMaasError
from maasflow.daemon.cli import control_token
from maasflow.daemon.control import control_routes
from maasflow.daemon.loop import Daemon
from maasflow.daemon.selection import FilterSpec
from maasflow.daemon.settings import load_settings
from maasflow.daemon.store import Store
from maasflow.daemon.telemetry import build_telemetry_app, serve_telemetry
from tests.daemon.conftest import FakeMaas, daemon_on, machine

TOKEN = "s3cret-control-token"


@dataclass
class Running:
    daemon: Daemon
    fake: FakeMaas
    url: str


async def _serve(daemon: Daemon, token: str | None) -> AsyncIterator[str]:
    app = build_telemetry_app(
        daemon.health,
        daemon.metrics,
        daemon.snapshot,
        snapshot_all=lambda: daemon.snapshot(left_out=True),
        history=daemon.history,
        routes=control_routes(daemon, token),
    )
    async with serve_telemetry(app, "127.0.0.1:0") as url:
        yield url


async def _daemon(store: Store | None = None) -> tuple[Daemon, FakeMaas]:
    """Two passes over `node` (Ready, its allocate refused: backing off) and `lab-1` (left out)."""
    fake = FakeMaas(
        [machine("a", 4, hostname="node"), machine("b", 4, hostname="lab-1", zone="lab")]
    )
    fake.errors["allocate"] = TemporaryMaasError("POST", "machines/", 503, "region busy")
    clock = FakeClock(wall=time.time())  # health is judged by the wall clock
    daemon = daemon_on(fake, filters=FilterSpec.default(), period=60.0, store=store, clock=clock)
    await daemon.identify(retry=False)
    for _ in range(2):  # the second pass finds the action backing off
        await daemon.run_pass()
        await daemon.executor.drain(2)
        daemon.executor = type(daemon.executor)(4)
    return daemon, fake


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    """A daemon after one pass, its endpoint with control on (token TOKEN)."""
    daemon, fake = await _daemon()
    async for url in _serve(daemon, TOKEN):
        yield Running(daemon, fake, url)


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "control-token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


def _out(capsys: pytest.CaptureFixture[str]) -> str:
    """What the command printed, without the log lines of the daemon in this process."""
    lines = capsys.readouterr().out.splitlines()
    return "\n".join(x for x in lines if not _LOG_LINE.match(x))


_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")


async def _cli(argv: list[str]) -> int:
    """The command in a thread: the endpoint it calls is served by this test's loop."""
    return await asyncio.to_thread(cli.main, argv)


async def _post(url: str, token: str | None = None) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(trust_env=False) as client:
        return await client.post(url, headers=headers)


async def test_pause_and_resume_switch_the_daemon_and_show_in_status_and_metrics(
    running: Running, token_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`maasflow pause` pauses (status says PAUSED, maasflow_paused 1); `resume` undoes it."""
    assert await _cli(["pause", "--url", running.url, "--token-file", str(token_file)]) == 0
    assert running.daemon.paused
    assert await _cli(["status", "--url", running.url]) == 0
    out = _out(capsys)
    assert out.startswith("paused: no new MAAS writes")
    assert out.splitlines()[1].startswith("PAUSED (maasflow resume to act again); 1 machine")
    async with httpx.AsyncClient(trust_env=False) as client:
        metrics = (await client.get(f"{running.url}/metrics")).text
    assert "\nmaasflow_paused 1.0\n" in metrics
    assert await _cli(["resume", "--url", running.url, "--token-file", str(token_file)]) == 0
    assert not running.daemon.paused
    assert TOKEN not in _out(capsys)


@pytest.mark.parametrize("token", [None, "wrong-token", TOKEN + "x"])
async def test_a_missing_or_wrong_token_is_401_and_changes_nothing(
    running: Running, token: str | None
) -> None:
    """Without the exact token every control route answers 401 with WWW-Authenticate."""
    for path in ("/control/pause", "/control/retry/node"):
        response = await _post(running.url + path, token)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer realm="maasflow-control"'
        assert "bearer token" in response.json()["error"]
    assert not running.daemon.paused
    assert running.daemon.setbacks.get("a") is not None


async def test_without_a_token_file_control_is_off_with_the_reason(
    token_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No -control-token-file: 403 naming how to turn control on, even with a token sent."""
    daemon, _fake = await _daemon()
    async for url in _serve(daemon, None):
        response = await _post(url + "/control/pause", TOKEN)
        assert response.status_code == 403
        assert "-control-token-file" in response.json()["error"]
        assert await _cli(["pause", "--url", url, "--token-file", str(token_file)]) == 1
    assert not daemon.paused
    err = capsys.readouterr().err.strip()
    assert err.startswith("maasflow: the daemon answered HTTP 403: control is off")


async def test_retry_clears_the_backoff_and_names_what_it_cleared(
    running: Running, token_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`maasflow retry node` clears its backoff so the next pass sends the action again."""
    assert running.daemon.setbacks.get("a") is not None
    assert await _cli(["retry", "node", "--url", running.url, "--token-file", str(token_file)]) == 0
    out = _out(capsys).strip()
    assert out.startswith("retry node (a): cleared backoff; last pass: allocate backing off")
    assert running.daemon.setbacks.get("a") is None
    del running.fake.errors["allocate"]
    await running.daemon.run_pass()
    await running.daemon.executor.drain(2)
    assert running.fake.ops() == [("allocate", "a"), ("allocate", "a")]


async def test_retry_of_an_unknown_machine_is_404_and_exit_1(
    running: Running, token_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A machine the last pass did not list: HTTP 404, exit 1 with one line saying so."""
    argv = ["retry", "ghost", "--url", running.url, "--token-file", str(token_file)]
    assert await _cli(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "maasflow: the daemon answered HTTP 404: no such machine in the last pass; "
        "give its hostname or system_id"
    ]


def test_a_control_command_without_a_token_file_is_bad_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """No --token-file (nor CONTROL_TOKEN_FILE), or an empty one: one line, exit 2."""
    monkeypatch.delenv("CONTROL_TOKEN_FILE", raising=False)
    assert cli.main(["pause", "--url", "http://127.0.0.1:1"]) == 2
    assert "--token-file: give the file holding the control token" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.write_text("")
    monkeypatch.setenv("CONTROL_TOKEN_FILE", str(empty))
    assert cli.main(["resume", "--url", "http://127.0.0.1:1"]) == 2
    assert "the file is empty" in capsys.readouterr().err


async def test_status_all_lists_filtered_out_machines_with_their_reason(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --all the filtered-out machine is absent; with it, its REASON names the filter."""
    assert await _cli(["status", "--url", running.url]) == 0
    assert "lab-1" not in _out(capsys)
    assert await _cli(["status", "--url", running.url, "--all"]) == 0
    header, *rows = _out(capsys).splitlines()[1:]
    row = next(r for r in rows if r.startswith("lab-1"))
    assert row[header.index("REASON") :].startswith("filtered out: zone 'lab' not included")
    node = next(r for r in rows if r.startswith("node"))
    assert node[header.index("REASON") :].startswith("allocate backing off until ")


async def test_status_of_one_machine_shows_its_reason_and_history(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    """`maasflow status node` shows why it waits and the action MAAS refused, with the answer."""
    assert await _cli(["status", "node", "--url", running.url]) == 0
    out = _out(capsys)
    assert "machine      node (a)" in out
    assert "reason       allocate backing off until " in out
    assert "history (1, oldest first):" in out
    (line,) = [x for x in out.splitlines() if " allocate " in x and "failed" in x]
    assert line.split()[2:7] == ["0s", "ago", "action", "allocate", "failed"]
    assert "region busy" in line
    assert await _cli(["status", "ghost", "--url", running.url]) == 1
    assert "knows no machine 'ghost'" in capsys.readouterr().err


async def test_status_of_one_machine_reads_the_store_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --db the machine's history comes from the state file, by hostname or system_id."""
    path = tmp_path / "maasflow.sqlite"
    daemon, _fake = await _daemon(Store(path))
    daemon.flush_history()  # as the daemon does when it stops
    daemon.actuator.store.close()
    for key in ("node", "a"):
        assert await _cli(["status", key, "--db", str(path)]) == 0
        out = _out(capsys)
        assert "allocate" in out and "region busy" in out and "backoff" in out


async def test_daemon_metrics_carry_version_health_and_in_flight(running: Running) -> None:
    """/metrics has maasflow_build_info{version}, maasflow_healthy and the in-flight gauge."""
    running.fake.hold = asyncio.Event()
    del running.fake.errors["allocate"]
    running.daemon.setbacks.cleared("a")
    await running.daemon.run_pass()
    async with httpx.AsyncClient(trust_env=False) as client:
        text = (await client.get(f"{running.url}/metrics")).text
    running.fake.hold.set()
    assert f'maasflow_build_info{{version="{__version__}"}} 1.0' in text
    assert "\nmaasflow_healthy 1.0\n" in text
    assert "\nmaasflow_actions_in_flight 1.0\n" in text
    assert "\nmaasflow_paused 0.0\n" in text


def test_the_daemon_takes_its_control_token_from_the_file_or_a_systemd_credential(
    tmp_path: Path,
) -> None:
    """-control-token-file wins; else the credential control_token; a blank one or none: off."""
    env = {"MAAS_API_KEY": "a:b:c", "HOME": str(tmp_path)}
    given = tmp_path / "given"
    given.write_text("from-the-flag\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "control_token").write_text("from-systemd\n")
    blank = tmp_path / "blank"
    blank.mkdir()
    (blank / "control_token").write_text("\n")  # the unit's SetCredential= default
    flagged = load_settings(["-control-token-file", str(given)], env)
    plain = load_settings([], env)
    assert control_token(flagged, {"CREDENTIALS_DIRECTORY": str(creds)}) == "from-the-flag"
    assert control_token(plain, {"CREDENTIALS_DIRECTORY": str(creds)}) == "from-systemd"
    assert control_token(plain, {"CREDENTIALS_DIRECTORY": str(blank)}) is None
    assert control_token(plain, {"CREDENTIALS_DIRECTORY": str(tmp_path)}) is None
    assert control_token(plain, {}) is None
    given.write_text("two\nlines\n")
    with pytest.raises(ConfigError, match=r"^-control-token-file file .*one line"):
        control_token(flagged, {})
    (creds / "control_token").write_text("has space\n")
    with pytest.raises(ConfigError, match=r"^CREDENTIALS_DIRECTORY/control_token: .*printable"):
        control_token(plain, {"CREDENTIALS_DIRECTORY": str(creds)})


class BrokenStore(Store):
    """A state file whose disk went bad after the daemon started: reads of histories and the
    retry's write fail."""

    def retry_now(self, system_id: str) -> None:
        raise StoreError("state file x: disk I/O error")

    def events(self, system_id: str, limit: int = 50) -> list[Any]:
        raise StoreError("state file x: disk I/O error")


async def test_a_store_failing_under_retry_or_history_answers_503_with_why() -> None:
    """The state file failing is a 503 naming it, for a retry and for a machine's history."""
    daemon, _fake = await _daemon(BrokenStore(":memory:"))
    async for url in _serve(daemon, TOKEN):
        retried = await _post(f"{url}/control/retry/node", TOKEN)
        async with httpx.AsyncClient(trust_env=False) as client:
            history = await client.get(f"{url}/machines/node")
    assert retried.status_code == 503
    assert retried.json()["error"] == "retry incomplete: state file x: disk I/O error"
    assert history.status_code == 503 and "disk I/O error" in history.json()["error"]
    assert daemon.setbacks.get("a") is None  # cleared before the store failed
