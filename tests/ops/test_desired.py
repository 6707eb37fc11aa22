"""The desired-state routes (`/machines/<id>/desired`) on a daemon's real endpoint on loopback:
their tokens, their answers (200, 400, 401, 403, 404, 409), persistence, history and status."""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from maasflow import cli
from maasflow.common.clock import FakeClock
from maasflow.common.errors import ConfigError, StoreError
from maasflow.daemon.cli import desire_token
from maasflow.daemon.control import control_routes
from maasflow.daemon.desire import MAX_USER_DATA
from maasflow.daemon.desire_api import MAX_BODY, desire_routes
from maasflow.daemon.lifecycle import Phase
from maasflow.daemon.loop import Daemon
from maasflow.daemon.preview import make_plan, print_plan
from maasflow.daemon.selection import FilterSpec
from maasflow.daemon.settings import load_settings
from maasflow.daemon.store import Store
from maasflow.daemon.stored_desire import StoredDesire
from maasflow.daemon.telemetry import build_telemetry_app, serve_telemetry
from tests.daemon.conftest import FakeMaas, daemon_on, machine

DESIRE = "orchestrator-token-1"
CONTROL = "operator-token-2"
USER_DATA = "#cloud-config\npassword: hunter2\n"


@dataclass
class Running:
    daemon: Daemon
    fake: FakeMaas
    url: str


def _fleet() -> FakeMaas:
    """New `node` (powered off: the rules commission it), `lab-1` (zone lab: filtered out),
    `held` (locked), `theirs` (Allocated to alice)."""
    return FakeMaas([
        machine("a", 0, hostname="node"),
        machine("b", 0, hostname="lab-1", zone="lab"),
        machine("c", 0, hostname="held", locked=True),
        machine("d", 10, hostname="theirs", owner="alice"),
    ])  # fmt: skip


async def _pass(daemon: Daemon) -> None:
    await daemon.run_pass()
    await daemon.executor.drain(2)
    daemon.executor = type(daemon.executor)(4)


async def _started(fake: FakeMaas, store: Store | None = None) -> Daemon:
    daemon = daemon_on(
        fake, filters=FilterSpec.default(), period=60.0, store=store,
        clock=FakeClock(wall=time.time()),
    )  # fmt: skip
    await daemon.identify(retry=False)
    await _pass(daemon)
    return daemon


async def _serve(daemon: Daemon, desire: str | None, control: str | None) -> AsyncIterator[str]:
    app = build_telemetry_app(
        daemon.health, daemon.metrics, daemon.snapshot,
        snapshot_all=lambda: daemon.snapshot(left_out=True), history=daemon.history,
        routes=[*control_routes(daemon, control), *desire_routes(daemon.desired, desire, control)],
    )  # fmt: skip
    async with serve_telemetry(app, "127.0.0.1:0") as url:
        yield url


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    """A daemon after one pass over `_fleet`, both tokens configured."""
    fake = _fleet()
    daemon = await _started(fake)
    async for url in _serve(daemon, DESIRE, CONTROL):
        yield Running(daemon, fake, url)


async def _call(
    url: str, method: str, machine: str, token: str | None = DESIRE, body: Any = None
) -> httpx.Response:
    headers = {"X-Maasflow-By": "cloud-7"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(trust_env=False) as client:
        return await client.request(
            method, f"{url}/machines/{machine}/desired", headers=headers, json=body
        )


@pytest.mark.parametrize("token", [None, "wrong", DESIRE + "x"])
async def test_a_missing_or_wrong_token_is_401_and_stores_nothing(
    running: Running, token: str | None
) -> None:
    """Without the exact desire or control token every method answers 401, WWW-Authenticate."""
    for method in ("GET", "PUT", "DELETE"):
        response = await _call(running.url, method, "node", token, {"target": "ignore"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer realm="maasflow-desired"'
        assert "bearer token" in response.json()["error"]
    assert running.daemon.desired.get("a") is None


async def test_the_desire_token_opens_only_these_routes_and_the_control_token_opens_both(
    running: Running,
) -> None:
    """An orchestrator's desire token cannot pause the daemon; the operator's control token
    sets desires too, and the history says which token was used."""
    async with httpx.AsyncClient(trust_env=False) as client:
        headers = {"Authorization": f"Bearer {DESIRE}"}
        paused = await client.post(f"{running.url}/control/pause", headers=headers)
    assert paused.status_code == 401 and not running.daemon.paused
    response = await _call(running.url, "PUT", "node", CONTROL, {"target": "ignore"})
    assert response.status_code == 200
    assert response.json()["set_by"].startswith("cloud-7 (control token, from 127.0.0.1")


async def test_without_any_token_the_routes_are_off_with_the_reason() -> None:
    """Neither -desire-token-file nor -control-token-file: 403 naming how to turn them on."""
    daemon = await _started(_fleet())
    async for url in _serve(daemon, None, None):
        response = await _call(url, "PUT", "node", DESIRE, {"target": "ignore"})
        assert response.status_code == 403
        assert "-desire-token-file" in response.json()["error"]
    assert daemon.desired.get("a") is None


async def test_get_without_a_stored_desire_answers_the_rules_one(running: Running) -> None:
    """GET answers the desire the last pass used ("default" here), by hostname or system_id."""
    for key in ("node", "a"):
        response = await _call(running.url, "GET", key)
        assert response.status_code == 200
        assert response.json() == {
            "system_id": "a", "hostname": "node", "source": "default", "desire": {},
            "untouchable": None,
        }  # fmt: skip


async def test_a_stored_desire_wins_at_the_next_pass_and_delete_gives_it_back_to_the_rules(
    running: Running,
) -> None:
    """PUT Ignore: the next pass leaves the Ready machine alone (no allocate); DELETE: the
    pass after allocates it. Both are in its history."""
    running.fake.calls.clear()
    running.fake.move("a", status=4)  # commissioned since the first pass
    put = await _call(running.url, "PUT", "node", body={"target": "Ignore"})
    assert put.status_code == 200
    assert put.json()["source"] == "api" and put.json()["desire"] == {"target": "ignore"}
    await _pass(running.daemon)
    assert running.fake.ops() == []
    assert running.daemon.views.find("node").phase is Phase.HANDS_OFF  # type: ignore[union-attr]
    deleted = await _call(running.url, "DELETE", "node")
    assert deleted.json() == {"system_id": "a", "hostname": "node", "deleted": True}
    await _pass(running.daemon)
    assert running.fake.ops() == [("allocate", "a")]
    again = await _call(running.url, "DELETE", "node")
    assert again.json()["deleted"] is False
    history = running.daemon.history("node")
    assert history is not None
    desires = [(e["action"], e["outcome"]) for e in history["events"] if e["kind"] == "operator"]
    assert desires == [("desire", "set"), ("desire", "cleared")]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"target": "Broken"}, "desired: target: 'Broken' is not one of Deployed, Allocated"),
        ({"colour": "red"}, "desired: unknown field 'colour'; the fields are "),
        ({"target": "deployed", "release": {}}, "desired: release: only a Ready target releases"),
        ([1, 2], "body: expected a JSON object"),
        ("not json", "body: not JSON"),
    ],
)
async def test_a_bad_desire_is_400_with_the_field_s_one_line(
    running: Running, body: Any, error: str
) -> None:
    """A field `Desire.parse` refuses, or a body that is no JSON object: 400, nothing stored."""
    if body == "not json":
        async with httpx.AsyncClient(trust_env=False) as client:
            response = await client.put(
                f"{running.url}/machines/node/desired", content=b"{target",
                headers={"Authorization": f"Bearer {DESIRE}"},
            )  # fmt: skip
    else:
        response = await _call(running.url, "PUT", "node", body=body)
    assert response.status_code == 400
    assert response.json()["error"].startswith(error)
    assert "\n" not in response.json()["error"]
    assert running.daemon.desired.get("a") is None


async def test_a_machine_never_listed_is_404(running: Running) -> None:
    """GET, PUT and DELETE of a machine the last pass did not list answer 404."""
    for method in ("GET", "PUT", "DELETE"):
        response = await _call(running.url, method, "ghost", body={"target": "ready"})
        assert response.status_code == 404
        assert "no such machine in the last pass" in response.json()["error"]


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("lab-1", "filtered out: zone 'lab' not included"),
        ("held", "locked in MAAS"),
        ("theirs", "owned by alice, not by maasflow's MAAS user maasflow"),
    ],
)
async def test_a_machine_maasflow_cannot_touch_is_409_with_why(
    running: Running, key: str, why: str
) -> None:
    """PUT for a filtered-out, locked or another user's machine: 409 saying why; GET says
    it too (`untouchable`)."""
    response = await _call(running.url, "PUT", key, body={"target": "ready"})
    assert response.status_code == 409
    assert response.json()["error"].startswith(f"maasflow cannot touch this machine: {why}")
    assert running.daemon.desired.find(key) is None
    shown = (await _call(running.url, "GET", key)).json()
    assert shown["untouchable"].startswith(why)


async def test_a_stored_desire_survives_a_daemon_restart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """PUT into a daemon on a state file; `status --db` shows it; a new daemon on that file
    acts on it and shows it."""
    path = tmp_path / "maasflow.sqlite"
    first = await _started(_fleet(), Store(path))
    async for url in _serve(first, DESIRE, None):
        put = await _call(url, "PUT", "a", body={"target": "ignore"})
        assert put.status_code == 200
    first.actuator.store.close()
    capsys.readouterr()
    assert cli.main(["status", "--db", str(path)]) == 0
    header, row = _table(capsys.readouterr().out, "node")
    assert row[header.index("DESIRED") :].startswith("api: target=ignore")
    assert cli.main(["status", "node", "--db", str(path)]) == 0
    assert "desired      api: target=ignore (by cloud-7" in capsys.readouterr().out
    fake = _fleet()
    second = await _started(fake, Store(path))
    assert fake.ops() == []  # the stored Ignore held from the first pass
    async for url in _serve(second, DESIRE, None):
        shown = (await _call(url, "GET", "node")).json()
    assert (shown["source"], shown["desire"]) == ("api", {"target": "ignore"})
    assert shown["set_by"].startswith("cloud-7 (desire token, from 127.0.0.1")


async def test_state_and_status_show_a_stored_desire_but_never_its_user_data(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    """/state marks the machine, `maasflow status` lists it, `status node` shows it; the
    user data shows as its size only, in those and in the logged history."""
    body = {"distro_series": "jammy", "user_data": USER_DATA}
    assert (await _call(running.url, "PUT", "node", body=body)).status_code == 200
    async with httpx.AsyncClient(trust_env=False) as client:
        state = (await client.get(f"{running.url}/state")).json()
        one = (await client.get(f"{running.url}/machines/node")).json()
    (row,) = [m for m in state["machines"] if m["hostname"] == "node"]
    summary = f"distro_series=jammy user_data=<{len(USER_DATA.encode())} bytes>"
    assert row["desired"]["summary"] == summary
    assert one["desired"]["summary"] == summary
    assert await asyncio.to_thread(cli.main, ["status", "--url", running.url]) == 0
    assert await asyncio.to_thread(cli.main, ["status", "node", "--url", running.url]) == 0
    out = capsys.readouterr().out
    header, node_row = _table(out, "node")
    assert node_row[header.index("DESIRED") :].startswith("api")
    assert f"desired      api: {summary} (by cloud-7" in out
    assert "hunter2" not in out + str(state) + str(one)


def _table(out: str, host: str) -> tuple[str, str]:
    lines = [x for x in out.splitlines() if not re.match(r"^\d{4}-\d\d-\d\d ", x)]
    header = next(x for x in lines if x.startswith("HOSTNAME"))
    return header, next(x for x in lines if x.startswith(host + " "))


async def test_preview_shows_a_stored_desire_as_the_winning_api_one(tmp_path: Path) -> None:
    """-preview reads the stored desires: the machine's line says `[api: ...]` and its plan is
    the desire's (Ignore: no action where the rules would commission)."""
    store = Store(tmp_path / "maasflow.sqlite")
    store.save_desire(StoredDesire("a", "node", {"target": "ignore"}, 1.0, "cloud-7"))
    daemon = daemon_on(_fleet(), filters=FilterSpec.default(), store=store)
    await daemon.identify(retry=False)
    items = {i.hostname: i for i in await make_plan(daemon)}
    node = items["node"]
    assert (node.rule, node.target, node.desired, node.action) == (
        "api", "ignore", "target=ignore", None,
    )  # fmt: skip
    out = io.StringIO()
    print_plan(list(items.values()), "text", out)
    (line,) = [x for x in out.getvalue().splitlines() if x.startswith("node ")]
    assert " api: ignore " in line and f"[api: target=ignore] {node.reason}" in line
    assert items["lab-1"].desired is None


def test_the_daemon_takes_its_desire_token_from_the_file_or_a_systemd_credential(
    tmp_path: Path,
) -> None:
    """-desire-token-file wins; else the credential desire_token; a blank one or none: off."""
    env = {"MAAS_API_KEY": "a:b:c", "HOME": str(tmp_path)}
    given = tmp_path / "given"
    given.write_text("from-the-flag\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "desire_token").write_text("from-systemd\n")
    (creds / "control_token").write_text("the-operators\n")
    flagged = load_settings(["-desire-token-file", str(given)], env)
    plain = load_settings([], env)
    assert desire_token(flagged, {"CREDENTIALS_DIRECTORY": str(creds)}) == "from-the-flag"
    assert desire_token(plain, {"CREDENTIALS_DIRECTORY": str(creds)}) == "from-systemd"
    (creds / "desire_token").write_text("\n")  # the unit's SetCredential= default
    assert desire_token(plain, {"CREDENTIALS_DIRECTORY": str(creds)}) is None
    assert desire_token(plain, {}) is None
    given.write_text("two\nlines\n")
    with pytest.raises(ConfigError, match=r"^-desire-token-file file .*one line"):
        desire_token(flagged, {})


class RefusingStore(Store):
    """A state file whose disk went bad after the daemon started: desires cannot be saved."""

    def save_desire(self, stored: StoredDesire) -> None:
        raise StoreError("state file x: disk I/O error")


async def test_a_store_refusing_the_desire_answers_503_and_keeps_nothing() -> None:
    """A PUT the state file refused is a 503 naming it; GET still answers the rules' desire."""
    daemon = await _started(_fleet(), RefusingStore(":memory:"))
    async for url in _serve(daemon, DESIRE, None):
        put = await _call(url, "PUT", "node", body={"target": "ignore"})
        shown = await _call(url, "GET", "node")
    assert put.status_code == 503
    assert put.json()["error"] == "not stored: state file x: disk I/O error"
    assert shown.json()["source"] == "default"


async def test_a_stored_desire_that_no_longer_parses_keeps_hands_off() -> None:
    """A row a newer maasflow wrote (an unknown field) is not dropped for the rules: the machine
    is left alone, and its reason says why."""
    store = Store(":memory:")
    store.save_desire(StoredDesire("a", "node", {"colour": "red"}, 1.0, "future"))
    fake = _fleet()
    daemon = await _started(fake, store)
    assert fake.ops() == []
    assert daemon.views.find("node").phase is Phase.HANDS_OFF  # type: ignore[union-attr]
    shown = daemon.desired.show("node")
    assert shown["source"].startswith("api (unreadable: stored desire of a: unknown field")


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["desire"], "maasflow: desire: name the machine"),
        (["desire", "node", "--clear", "--target", "ready"], "maasflow: --clear: give it alone"),
        (["desire", "node", "--user-data-file", "/nonexistent/x"],
         "maasflow: --user-data-file: cannot read file '/nonexistent/x'"),
        (["desire", "node", "--power", "off", "--target", "ignore"],
         "maasflow: desire: power: only a Deployed target takes it"),
    ],
)  # fmt: skip
def test_bad_desire_flags_exit_2_with_one_line_before_anything_is_sent(
    argv: list[str], line: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing machine, --clear with fields, an unreadable user-data file or a combination
    `Desire.parse` refuses: exit 2, one line, and no request (the URL answers nothing)."""
    token = tmp_path / "token"
    token.write_text(DESIRE + "\n")
    token.chmod(0o600)
    common = ["--url", "http://127.0.0.1:1", "--token-file", str(token)]
    assert cli.main([*argv, *common]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(line)


def test_user_data_larger_than_maas_takes_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user-data file over MAX_USER_DATA bytes: exit 2 naming the file and the limit."""
    big = tmp_path / "big"
    big.write_bytes(b"x" * (MAX_USER_DATA + 1))
    token = tmp_path / "token"
    token.write_text(DESIRE + "\n")
    argv = ["desire", "node", "--user-data-file", str(big), "--token-file", str(token)]
    assert cli.main([*argv, "--url", "http://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert f"--user-data-file: file {str(big)!r} is larger than 64 KiB" in err


async def test_a_body_too_large_is_400_and_stores_nothing(running: Running) -> None:
    """A PUT body over MAX_BODY bytes is refused before it is parsed."""
    body = {"comment": "x" * (MAX_BODY + 1)}
    response = await _call(running.url, "PUT", "node", body=body)
    assert response.status_code == 400
    assert response.json()["error"] == f"body: larger than {MAX_BODY} bytes"
    assert running.daemon.desired.get("a") is None


async def test_a_stored_desire_s_target_and_deploy_parameters_are_what_the_pass_acts_on(
    running: Running,
) -> None:
    """A stored Ready keeps a Ready machine where it is (the default would allocate it); a
    stored Deployed with a series deploys an Allocated machine with that series."""
    running.fake.calls.clear()
    running.fake.move("a", status=4)
    assert (await _call(running.url, "PUT", "node", body={"target": "ready"})).status_code == 200
    await _pass(running.daemon)
    assert running.fake.ops() == []
    running.fake.move("a", status=10, owner="maasflow")
    body = {"target": "deployed", "distro_series": "noble"}
    assert (await _call(running.url, "PUT", "node", body=body)).status_code == 200
    await _pass(running.daemon)
    sent = [
        (op, p.get("distro_series")) for method, op, p in running.fake.calls if method == "POST"
    ]
    assert sent == [("deploy", "noble")]


def test_a_stored_desire_is_parsed_once_per_row_not_per_ask() -> None:
    """Passes ask for a machine's desire several times: the same parsed Desire comes back
    until the stored row changes, then the new one."""
    store = Store(":memory:")
    store.save_desire(StoredDesire("a", "node", {"user_data": USER_DATA}, 1.0, "cloud-7"))
    states = daemon_on(_fleet(), store=store).desired
    states.reload()
    first = states.winning("a")
    states.reload()
    again = states.winning("a")
    assert first is not None and again is not None and again[1] is first[1]
    store.save_desire(StoredDesire("a", "node", {"power": "off"}, 2.0, "cloud-7"))
    states.reload()
    changed = states.winning("a")
    assert changed is not None and changed[1].power == "off" and states.winning("b") is None
