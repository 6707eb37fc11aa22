"""The command backend: argv templates run without a shell, status regexes, timeouts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from maasflow.common.errors import ConfigError
from maasflow.serve.backends import PowerError, Target, UnsafeArgument
from maasflow.serve.backends.command import CommandBackend, render
from maasflow.serve.power_config import CommandMachine, load_power_config
from maasflow.serve.power_state import PowerStateStore
from tests.common.processes import alive, group_gone, wait_until
from tests.service_power.helpers import power_service
from tests.service_power.maas_replay import MaasWebhookDriver

HOSTILE = "a;rm -rf x"
RECORDER = """
import json, os, sys
with open(sys.argv[1], "a") as out:
    out.write(json.dumps({"argv": sys.argv[2:],
                          "token": "MAASFLOW_POWER_TOKEN" in os.environ}) + "\\n")
"""


@pytest.fixture
def recorder(tmp_path: Path) -> tuple[list[str], Path]:
    """An argv prefix that appends its arguments as JSON lines to a log file."""
    script = tmp_path / "record.py"
    script.write_text(RECORDER)
    return [sys.executable, str(script), str(tmp_path / "calls.jsonl")], tmp_path / "calls.jsonl"


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def spec(**kw: Any) -> CommandMachine:
    return CommandMachine.model_validate({"backend": "command", **kw})


def test_render_substitutes_each_argument_literally() -> None:
    """Placeholders are replaced inside each argument; values with braces stay literal."""
    target = Target("n{mac}", "aa:bb:cc:dd:ee:ff", "$(reboot)", "sys;id")
    argv = render(["ctl", "--host={hostname}", "{name}", "{system_id}/{mac}"], target)
    assert argv == ["ctl", "--host=$(reboot)", "n{mac}", "sys;id/aa:bb:cc:dd:ee:ff"]


async def test_hostile_names_reach_the_program_as_single_literal_arguments(
    recorder: tuple[list[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A machine named `a;rm -rf x` is passed as one argument and no shell ever runs it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").mkdir()
    monkeypatch.setenv("MAASFLOW_POWER_TOKEN", "tok")
    prefix, log = recorder
    machine = {
        "backend": "command",
        "hostname": "$(touch pwned)",
        "system_id": "abc123",
        "on": [*prefix, "on", "{name}", "{hostname}", "{system_id}"],
        "off": [*prefix, "off", "{name}"],
    }
    async with power_service({"machines": {HOSTILE: machine}}) as (base, _):
        driver = MaasWebhookDriver(
            f"{base}/power/{quote(HOSTILE)}/on", "", f"{base}/power/{quote(HOSTILE)}", "abc123"
        )
        await driver.perform("on")
    assert calls(log) == [{"argv": ["on", HOSTILE, "$(touch pwned)", "abc123"], "token": False}]
    assert (tmp_path / "x").is_dir() and not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    ("output", "state"),
    [("Chassis Power is on", "on"), ("power: OFF", "off"), ("running", "on"), ("???", "unknown")],
)
async def test_status_output_is_read_with_the_regexes(output: str, state: str) -> None:
    """The status program's stdout maps to on, off or unknown with the default regexes."""
    backend = CommandBackend(
        spec(on=["true"], off=["true"], status=[sys.executable, "-c", f"print({output!r})"]),
        PowerStateStore(None),
    )
    assert await backend.query(Target("m", None, "m", "")) == state


async def test_custom_regexes_decide_the_state() -> None:
    """Configured on_regex/off_regex replace the defaults."""
    machine = spec(
        on=["true"], off=["true"], status=["echo", "PWR=1"], on_regex=r"PWR=1", off_regex=r"PWR=0"
    )
    assert (
        await CommandBackend(machine, PowerStateStore(None)).query(Target("m", None, "m", ""))
        == "on"
    )


async def test_without_status_the_last_action_is_remembered(tmp_path: Path) -> None:
    """With no status template, a successful on/off is what the query answers."""
    store = PowerStateStore(tmp_path / "state.json")
    backend = CommandBackend(spec(on=["true"], off=["true"]), store)
    target = Target("m", None, "m", "")
    assert await backend.query(target) == "unknown"
    await backend.power_on(target)
    assert await backend.query(target) == "on"
    assert PowerStateStore(tmp_path / "state.json").get("m") == "on"


async def test_failing_program_is_an_error_with_exit_code_and_output() -> None:
    """A non-zero exit raises PowerError carrying the exit code and the output's tail."""
    argv = [sys.executable, "-c", "import sys; print('relay jammed'); sys.exit(3)"]
    backend = CommandBackend(spec(on=argv, off=argv), PowerStateStore(None))
    with pytest.raises(PowerError, match=r"exited 3: relay jammed"):
        await backend.power_on(Target("m", None, "m", ""))


async def test_slow_program_is_killed_at_its_timeout() -> None:
    """A program running past `timeout` is killed and reported as an error."""
    argv = [sys.executable, "-c", "import time; time.sleep(30)"]
    backend = CommandBackend(spec(on=argv, off=argv, timeout=0.2), PowerStateStore(None))
    with pytest.raises(PowerError, match=r"did not finish within 0\.2 s"):
        await backend.power_off(Target("m", None, "m", ""))


async def test_missing_program_answers_503() -> None:
    """A program that does not exist makes the request answer 503 JSON."""
    machine = {"backend": "command", "on": ["/nonexistent/power-tool", "{name}"], "off": ["true"]}
    async with (
        power_service({"machines": {"m": machine}}) as (base, _),
        httpx.AsyncClient() as client,
    ):
        response = await client.post(f"{base}/power/m/on")
    assert response.status_code == 503
    assert "/nonexistent/power-tool" in response.json()["error"]


def strict_vm(state_file: Path) -> dict[str, Any]:
    """A VM switched like `virsh start`/`destroy`: both fail when already in that state."""
    sh = "/bin/sh"
    on = f"if [ -e '{state_file}' ]; then echo 'error: active'; exit 1; fi; touch '{state_file}'"
    off = (
        f"if [ ! -e '{state_file}' ]; then echo 'error: not running'; exit 1; fi; rm '{state_file}'"
    )
    status = f"if [ -e '{state_file}' ]; then echo running; else echo 'shut off'; fi"
    return {
        "backend": "command",
        "system_id": "abc123",
        "on": [sh, "-c", on],
        "off": [sh, "-c", off],
        "status": [sh, "-c", status],
        "on_regex": "(?m)^running",
        "off_regex": "shut off",
    }


@pytest.mark.parametrize(("action", "already_on"), [("on", True), ("off", False)])
async def test_action_on_a_machine_already_in_that_state_succeeds(
    tmp_path: Path, action: str, already_on: bool
) -> None:
    """MAAS powering on a running VM (or off a stopped one) succeeds though the tool refuses."""
    state_file = tmp_path / "vm-on"
    if already_on:
        state_file.touch()
    async with power_service({"machines": {"vm1": strict_vm(state_file)}}) as (base, _):
        driver = MaasWebhookDriver(
            f"{base}/power/vm1/on", f"{base}/power/vm1/off", f"{base}/power/vm1", "abc123"
        )
        await driver.perform(action)
        assert driver.posts() == 1
    assert state_file.exists() is already_on


async def test_failed_action_is_accepted_when_the_state_now_matches(tmp_path: Path) -> None:
    """A non-zero exit is accepted when the status program then reads the wanted state."""
    state_file = tmp_path / "vm-on"
    machine = spec(
        on=["/bin/sh", "-c", f"touch '{state_file}'; echo 'late warning'; exit 1"],
        off=["true"],
        status=["/bin/sh", "-c", f"[ -e '{state_file}' ] && echo on || echo off"],
    )
    backend = CommandBackend(machine, PowerStateStore(None))
    assert await backend.power_on(Target("m", None, "m", "")) == "on"


async def test_failed_action_still_fails_when_the_state_does_not_match() -> None:
    """A non-zero exit with the status still reading the other state remains an error."""
    machine = spec(on=["false"], off=["true"], status=["echo", "off"])
    backend = CommandBackend(machine, PowerStateStore(None))
    with pytest.raises(PowerError, match="exited 1"):
        await backend.power_on(Target("m", None, "m", ""))


async def test_child_environment_lacks_every_configured_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Power programs never see a dli password_env, the service's credentials or a MAAS key."""
    monkeypatch.setenv("DLI_OUTLET_SECRET", "outlet-pw")
    monkeypatch.setenv("PROD_MAAS_API_KEY", "k:e:y")
    monkeypatch.setenv("MAASFLOW_POWER_PASS", "pass-secret")
    monkeypatch.setenv("HARMLESS", "kept")
    out = tmp_path / "env.txt"
    machines = {
        "pdu1": {
            "backend": "dli",
            "address": "127.0.0.1:1",
            "outlet": 1,
            "password_env": "DLI_OUTLET_SECRET",
        },
        "vm1": {"backend": "command", "on": ["/bin/sh", "-c", f"env > '{out}'"], "off": ["true"]},
    }
    async with power_service({"machines": machines}) as (base, _), httpx.AsyncClient() as client:
        assert (await client.post(f"{base}/power/vm1/on")).status_code == 200
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert env["HARMLESS"] == "kept"
    assert not {"DLI_OUTLET_SECRET", "PROD_MAAS_API_KEY", "MAASFLOW_POWER_PASS"} & set(env)


async def test_a_background_child_holding_stdout_does_not_lose_the_status(tmp_path: Path) -> None:
    """A status program that prints, exits 0 and leaves a child on stdout is read, not timed out."""
    pid_file = tmp_path / "bg.pid"
    status = ["/bin/sh", "-c", f"sleep 300 & echo $! > '{pid_file}'; echo 'Chassis Power is on'"]
    backend = CommandBackend(
        spec(on=["true"], off=["true"], status=status, timeout=5), PowerStateStore(None)
    )
    assert await backend.query(Target("m", None, "m", "")) == "on"
    assert await wait_until(lambda: not alive(int(pid_file.read_text())))


async def test_a_hung_program_is_killed_with_its_whole_process_group(tmp_path: Path) -> None:
    """At the timeout the program and everything it started are gone, not just the program."""
    pid_file = tmp_path / "prog.pid"
    argv = ["/bin/sh", "-c", f"echo $$ > '{pid_file}'; sleep 300 & sleep 300"]
    backend = CommandBackend(spec(on=argv, off=argv, timeout=0.3), PowerStateStore(None))
    with pytest.raises(PowerError, match=r"did not finish within 0\.3 s"):
        await backend.power_on(Target("m", None, "m", ""))
    pgid = int(pid_file.read_text())
    assert await wait_until(lambda: group_gone(pgid))


async def test_power_programs_never_see_a_provisioning_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither serve's nor the daemon's provisioning token reaches a power program."""
    monkeypatch.setenv("MAASFLOW_PROVISION_TOKEN", "serve-token")
    monkeypatch.setenv("AUTOMATION_PROVISION_TOKEN", "daemon-token")
    out = tmp_path / "env.txt"
    machine = spec(on=["/bin/sh", "-c", f"env > '{out}'"], off=["true"])
    await CommandBackend(machine, PowerStateStore(None)).power_on(Target("m", None, "m", ""))
    seen = out.read_text()
    assert "PATH=" in seen and "serve-token" not in seen and "daemon-token" not in seen


# --- option injection: nothing starting with "-" reaches argv -------------------------------

INJECTIONS = ["-oProxyCommand=touch pwned", "--help", "4y3ha3;id", "../x/y", "4Y3HA3", "4y3ha3z"]


def templated(prefix: list[str]) -> dict[str, Any]:
    """A command machine whose templates pass `{system_id}`, configured as 4y3ha3."""
    on = [*prefix, "on", "{system_id}"]
    status = [*prefix, "status", "{system_id}"]
    return {"backend": "command", "system_id": "4y3ha3", "on": on, "off": on, "status": status}


@pytest.mark.parametrize("header", INJECTIONS)
async def test_a_system_id_header_not_shaped_like_maas_is_refused_400_before_any_program_runs(
    recorder: tuple[list[str], Path], header: str
) -> None:
    """`-oProxyCommand=...` (or any non-MAAS id) in System_Id gets 400 and runs nothing."""
    prefix, log = recorder
    async with (
        power_service({"machines": {"m": templated(prefix)}}) as (base, _),
        httpx.AsyncClient() as client,
    ):
        on = await client.post(f"{base}/power/m/on", headers={"System_Id": header})
        query = await client.get(f"{base}/power/m", headers={"System_Id": header})
    for response in (on, query):
        assert response.status_code == 400
        assert "System_Id header is not a MAAS system_id" in response.json()["error"]
        assert header not in response.text
    assert not log.exists()


async def test_a_maas_shaped_system_id_header_is_accepted_but_the_placeholder_is_configured(
    recorder: tuple[list[str], Path],
) -> None:
    """MAAS's own ids (and the pre-2.0 node-<uuid> form) are accepted in System_id, and the
    program gets the configured system_id whoever asks, as on/off (which carry none) do."""
    prefix, log = recorder
    legacy = "node-5fb1f1a4-5b9b-11e3-9a58-00163e3ad93f"
    async with power_service({"machines": {"m": templated(prefix)}}) as (base, _):
        for sid in ("4y3ha3", legacy):
            driver = MaasWebhookDriver(f"{base}/power/m/on", "", f"{base}/power/m", sid)
            assert await driver.monitor() == "unknown"
    assert [call["argv"] for call in calls(log)] == [["status", "4y3ha3"], ["status", "4y3ha3"]]


async def test_maas_36_actions_fill_system_id_from_the_config(
    recorder: tuple[list[str], Path],
) -> None:
    """MAAS 3.6's agent sends no System_id with on/off, yet `{system_id}` is the machine's."""
    prefix, log = recorder
    machine = {**templated(prefix)}
    del machine["status"]  # the state is the last one recorded
    async with power_service({"machines": {"m": machine}}) as (base, _):
        driver = MaasWebhookDriver(f"{base}/power/m/on", "", f"{base}/power/m", "4y3ha3")
        assert await driver.agent("on") == "on"
    assert [sent.system_id for sent in driver.sent] == [None] * len(driver.sent)
    assert [call["argv"] for call in calls(log)] == [["on", "4y3ha3"]]


def test_a_template_using_system_id_needs_a_configured_one(
    recorder: tuple[list[str], Path], tmp_path: Path
) -> None:
    """`{system_id}` without a configured system_id is refused when the config loads, in one
    line naming the machine, instead of reaching a program empty."""
    prefix, _ = recorder
    machine = {**templated(prefix)}
    del machine["system_id"]
    path = tmp_path / "power.json"
    path.write_text(json.dumps({"machines": {"vm9": machine}}))
    with pytest.raises(
        ConfigError, match=r"machines\.vm9: a template uses \{system_id\}"
    ) as caught:
        load_power_config(path)
    assert "\n" not in str(caught.value)


def test_a_template_using_mac_needs_a_configured_one(
    recorder: tuple[list[str], Path], tmp_path: Path
) -> None:
    """`{mac}` without a configured mac is refused when the config loads, in one line naming
    the machine, the placeholder and the fix, instead of reaching a program empty."""
    prefix, _ = recorder
    machine = {"backend": "command", "on": [*prefix, "wake", "{mac}"], "off": ["true"]}
    path = tmp_path / "power.json"
    path.write_text(json.dumps({"machines": {"vm7": machine}}))
    with pytest.raises(ConfigError) as caught:
        load_power_config(path)
    message = str(caught.value)
    assert 'machines.vm7: a template uses {mac} but no "mac" is configured' in message
    assert "add the machine's MAC" in message
    assert "\n" not in message
    machine["mac"] = "52:54:00:12:34:56"
    path.write_text(json.dumps({"machines": {"vm7": machine}}))
    assert load_power_config(path).machines["vm7"].mac == "52:54:00:12:34:56"


def test_serve_refuses_an_undefined_placeholder_at_start_up_with_exit_2(tmp_path: Path) -> None:
    """`maasflow serve` with a `{mac}` template and no mac exits 2 with that one line."""
    machine = {"backend": "command", "on": ["wake", "{mac}"], "off": ["true"]}
    path = tmp_path / "power.json"
    path.write_text(json.dumps({"machines": {"vm7": machine}}))
    maasflow = str(Path(sys.executable).parent / "maasflow")
    argv = [maasflow, "serve", "--port", "0", "--db", ":memory:", "--power-config", str(path)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert 'machines.vm7: a template uses {mac} but no "mac" is configured' in line
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("field", ["hostname", "name"])
async def test_a_configured_value_starting_with_a_dash_is_refused_400_never_run(
    recorder: tuple[list[str], Path], field: str
) -> None:
    """A hostname or name like `-oProxyCommand=...` is refused with a clear 400, through any
    placeholder, rather than handed to the program as an option."""
    prefix, log = recorder
    hostile = "-oProxyCommand=touch pwned"
    machine = {"backend": "command", "on": [*prefix, "on", f"{{{field}}}"], "off": ["true"]}
    name = hostile if field == "name" else "m"
    if field == "hostname":
        machine["hostname"] = hostile
    async with (
        power_service({"machines": {name: machine}}) as (base, _),
        httpx.AsyncClient() as client,
    ):
        response = await client.post(f"{base}/power/{quote(name)}/on")
    assert response.status_code == 400
    assert f"{{{field}}} would be" in response.json()["error"]
    assert "would be read as an option" in response.json()["error"]
    assert not log.exists()


def test_render_refuses_a_leading_dash_in_any_placeholder() -> None:
    """Each placeholder's value is checked where it is substituted, not only system_id."""
    for target in (
        Target("m", "-aa", "h", "4y3ha3"),
        Target("m", None, "h", "-x"),
        Target("m", None, "-h", "4y3ha3"),
        Target("-m", None, "h", "4y3ha3"),
    ):
        with pytest.raises(UnsafeArgument, match="starts with '-'"):
            render(["ctl", "--to={mac}{system_id}{hostname}{name}"], target)
    assert render(["ctl", "{name}-{hostname}"], Target("m", None, "h", "")) == ["ctl", "m-h"]
