"""POWER_HELPER_SCRIPT: run with the MACs as argv, its JSON turned into PUT fields MAAS takes."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from maasflow.daemon.power_helper import PowerHelperError, power_fields, run_power_helper
from tests.common.processes import alive, group_gone, wait_until


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "helper"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


async def test_the_helper_gets_the_macs_as_separate_arguments(tmp_path: Path) -> None:
    """Each MAC is one argv entry, and the printed JSON becomes power_type and parameters."""
    script = _script(
        tmp_path,
        'printf \'{"power_type": "amt", "power_parameters": {"power_address": "%s", '
        '"count": "%s"}}\' "$1" "$#"\n',
    )
    fields = await run_power_helper(script, ["52:54:00:00:00:01", "52:54:00:00:00:02"])
    assert fields == {
        "power_type": "amt",
        "power_parameters_power_address": "52:54:00:00:00:01",
        "power_parameters_count": "2",
    }


async def test_maas_flows_user_and_host_come_before_the_macs(tmp_path: Path) -> None:
    """With leading arguments (POWER_HELPER_USER, _HOST) the helper runs as maas-flow ran it."""
    seen = tmp_path / "argv"
    script = _script(tmp_path, f'printf "%s\\n" "$@" > {seen}\nprintf \'{{"name": "amt"}}\'\n')
    macs = ["52:54:00:00:00:01", "52:54:00:00:00:02"]
    await run_power_helper(script, macs, args=("cord", "10.1.0.1"))
    assert seen.read_text().splitlines() == ["cord", "10.1.0.1", *macs]


async def test_a_hostile_mac_string_is_passed_literally(tmp_path: Path) -> None:
    """Shell metacharacters in an argument reach the helper untouched, nothing is run."""
    marker = tmp_path / "pwned"
    script = _script(tmp_path, 'printf \'{"name": "manual", "arg": "%s"}\' "$1"\n')
    hostile = f"$(touch {marker})"
    fields = await run_power_helper(script, [hostile])
    assert fields["power_parameters_arg"] == hostile
    assert not marker.exists()


async def test_a_failing_helper_reports_its_exit_code_and_stderr(tmp_path: Path) -> None:
    """A non-zero exit is a PowerHelperError carrying the code and the error text."""
    script = _script(tmp_path, "echo 'no BMC for this MAC' >&2\nexit 3\n")
    with pytest.raises(PowerHelperError, match="exited 3: no BMC for this MAC"):
        await run_power_helper(script, ["52:54:00:00:00:01"])


async def test_a_hanging_helper_is_killed_at_the_timeout(tmp_path: Path) -> None:
    """A helper that never answers is stopped and reported, not waited for forever."""
    script = _script(tmp_path, "sleep 30\n")
    with pytest.raises(PowerHelperError, match="timed out"):
        await run_power_helper(script, [], timeout=0.2)


def test_opencord_flat_form_uses_name_as_the_power_type() -> None:
    """`{"name": ..., k: v}` means power_type=name and every other key a parameter."""
    assert power_fields('{"name": "ipmi", "power_address": "10.0.0.9", "port": 623}') == {
        "power_type": "ipmi",
        "power_parameters_power_address": "10.0.0.9",
        "power_parameters_port": "623",
    }


def test_cords_virtualbox_answer_is_sent_under_maas_names() -> None:
    """CORD's power_discovery flat amt answer: power_password is power_pass, mac_address dropped.

    Today's MAAS refuses a PUT naming a parameter the amt driver lacks ("Unknown
    parameter(s)"): amt has power_pass, not power_password, and no mac_address since 1.x.
    """
    answer = (
        '{"name":"amt","mac_address":"08:00:27:aa:bb:cc",'
        '"power_password":"cord","power_address":"10.1.0.1"}'
    )
    assert power_fields(answer) == {
        "power_type": "amt",
        "power_parameters_power_pass": "cord",
        "power_parameters_power_address": "10.1.0.1",
    }


def test_flat_form_keeps_a_mac_address_its_driver_has() -> None:
    """ipmi has a mac_address parameter ("Power MAC"), so only amt's is dropped."""
    answer = '{"name": "ipmi", "mac_address": "52:54:00:00:00:09", "power_password": "pw"}'
    assert power_fields(answer) == {
        "power_type": "ipmi",
        "power_parameters_mac_address": "52:54:00:00:00:09",
        "power_parameters_power_pass": "pw",
    }


def test_maas_form_names_are_sent_as_given() -> None:
    """`{"power_type", "power_parameters"}` already speaks MAAS: no name is changed or dropped."""
    answer = '{"power_type": "amt", "power_parameters": {"power_pass": "x", "port": "16993"}}'
    assert power_fields(answer) == {
        "power_type": "amt",
        "power_parameters_power_pass": "x",
        "power_parameters_port": "16993",
    }


@pytest.mark.parametrize("text", ["not json", "[1]", '{"power_parameters": {}}', '{"name": ""}'])
def test_answers_that_are_not_a_power_configuration_are_refused(text: str) -> None:
    """Garbage from the helper is an error, never a PUT of nonsense."""
    with pytest.raises(PowerHelperError):
        power_fields(text)


async def test_the_helper_never_sees_the_maas_api_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MAAS_API_KEY (and AUTOMATION_MAAS_API_KEY) are removed from the helper's environment."""
    monkeypatch.setenv("MAAS_API_KEY", "aaa:bbb:ccc")
    monkeypatch.setenv("AUTOMATION_MAAS_API_KEY", "ddd:eee:fff")
    keys = '"$MAAS_API_KEY" "$AUTOMATION_MAAS_API_KEY"'
    script = _script(tmp_path, f'printf \'{{"name": "manual", "seen": "%s%s"}}\' {keys}\n')
    fields = await run_power_helper(script, [])
    assert fields["power_parameters_seen"] == ""


async def test_a_background_child_holding_stdout_does_not_lose_the_answer(tmp_path: Path) -> None:
    """A helper that answers and exits 0 but leaves a child on stdout is not a timeout."""
    pid_file = tmp_path / "bg.pid"
    script = _script(
        tmp_path, f'sleep 300 &\necho $! > {pid_file}\nprintf \'{{"name": "amt"}}\'\nexit 0\n'
    )
    fields = await run_power_helper(script, [], timeout=5)
    assert fields == {"power_type": "amt"}
    assert await wait_until(lambda: not alive(int(pid_file.read_text())))


async def test_a_hung_helper_is_killed_with_its_whole_process_group(tmp_path: Path) -> None:
    """At the timeout the helper and everything it started are gone, not just the helper."""
    pid_file = tmp_path / "helper.pid"
    script = _script(tmp_path, f"echo $$ > {pid_file}\nsleep 300 &\nsleep 300\n")
    with pytest.raises(PowerHelperError, match=r"timed out after 0\.3 s"):
        await run_power_helper(script, [], timeout=0.3)
    pgid = int(pid_file.read_text())
    assert await wait_until(lambda: group_gone(pgid))


async def test_a_helper_that_cannot_start_is_a_power_helper_error(tmp_path: Path) -> None:
    """A missing helper is reported as a PowerHelperError naming it, not an OSError."""
    missing = str(tmp_path / "no-such-helper")
    with pytest.raises(PowerHelperError, match="no-such-helper' could not start"):
        await run_power_helper(missing, [])


@pytest.mark.parametrize(
    "name",
    ["PROVISION_TOKEN", "AUTOMATION_PROVISION_TOKEN", "MAASFLOW_PROVISION_TOKEN", "MAAS_API_KEY"],
)
async def test_the_helper_never_sees_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """The provisioning tokens (any spelling) and the MAAS key are not in the helper's env."""
    monkeypatch.setenv(name, "t0ken-value")
    monkeypatch.setenv("KEEP_ME", "kept")
    out = tmp_path / "env.txt"
    script = _script(tmp_path, f'env > {out}\nprintf \'{{"name": "manual"}}\'\n')
    await run_power_helper(script, [])
    seen = out.read_text()
    assert "t0ken-value" not in seen and f"{name}=" not in seen
    assert "KEEP_ME=kept" in seen
