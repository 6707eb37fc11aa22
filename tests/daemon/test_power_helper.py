"""POWER_HELPER_SCRIPT: run with the MACs as argv, its JSON turned into PUT fields."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from maasflow.daemon.power_helper import PowerHelperError, power_fields, run_power_helper


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
