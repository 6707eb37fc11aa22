"""`maasflow power-config`: the exact MAAS webhook parameters for a machine."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from maasflow.cli import main as maasflow_main
from maasflow.common.errors import ConfigError
from maasflow.serve.power_config import main

Writer = Callable[..., Path]
CONFIG = {
    "machines": {
        "desk 1": {"backend": "wol", "mac": "52:54:00:ab:cd:ef", "system_id": "abc123"},
        "vm": {"backend": "command", "on": ["true"], "off": ["true"]},
    }
}
# Parameter names of MAAS's webhook driver (3.6 webhook.py; facts section 7.1).
MAAS_PARAMETERS = (
    "power_on_uri",
    "power_off_uri",
    "power_query_uri",
    "power_on_regex",
    "power_off_regex",
    "power_verify_ssl",
)


def lines(text: str) -> dict[str, str]:
    return dict(
        line.split("=", 1)
        for line in text.splitlines()
        if "=" in line and not line.startswith("maas ")
    )


def test_prints_every_webhook_parameter_with_maas_names(
    write_json: Writer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The output has power_type=webhook and each power_parameters_* name MAAS expects."""
    path = write_json(CONFIG)
    assert main(["desk 1", "--power-config", str(path), "--base-url", "http://10.0.0.2:8080/"]) == 0
    values = lines(capsys.readouterr().out)
    assert values["power_type"] == "webhook"
    for name in MAAS_PARAMETERS:
        assert f"power_parameters_{name}" in values
    assert values["power_parameters_power_on_uri"] == "http://10.0.0.2:8080/power/desk%201/on"
    assert values["power_parameters_power_off_uri"] == "http://10.0.0.2:8080/power/desk%201/off"
    assert values["power_parameters_power_query_uri"] == "http://10.0.0.2:8080/power/desk%201"
    assert values["power_parameters_power_on_regex"] == r"status.*\:.*running"
    assert values["power_parameters_power_off_regex"] == r"status.*\:.*stopped"
    assert values["power_parameters_power_verify_ssl"] == "n"


def test_maas_command_line_is_ready_to_paste(
    write_json: Writer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The printed `maas <profile> machine update <system_id>` line splits into the parameters."""
    path = write_json(CONFIG)
    main(
        [
            "52-54-00-AB-CD-EF",
            "--power-config",
            str(path),
            "--base-url",
            "https://h:8443",
            "--profile",
            "ops",
            "--verify-ssl",
            "y",
        ]
    )
    command = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("maas"))
    words = shlex.split(command)
    assert words[:6] == ["maas", "ops", "machine", "update", "abc123", "power_type=webhook"]
    assert r"power_parameters_power_on_regex=status.*\:.*running" in words
    assert "power_parameters_power_verify_ssl=y" in words


def test_secrets_are_placeholders_unless_asked(
    write_json: Writer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The token prints as a placeholder by default and for real only with --show-secrets."""
    path = write_json(CONFIG)
    token = tmp_path / "token"
    token.write_text("t0ken-value\n")
    args = [
        "vm",
        "--power-config",
        str(path),
        "--base-url",
        "http://10.1.1.1:8080",
        "--power-token-file",
        str(token),
    ]
    main(args)
    hidden = capsys.readouterr()
    assert "power_parameters_power_token=<POWER_TOKEN>" in hidden.out
    assert "t0ken-value" not in hidden.out + hidden.err
    assert "<system_id>" in hidden.out  # vm has no configured system_id
    main([*args, "--show-secrets"])
    assert "power_parameters_power_token=t0ken-value" in capsys.readouterr().out


def test_basic_auth_parameters(
    write_json: Writer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--auth basic prints power_user and a power_pass placeholder."""
    path = write_json(CONFIG)
    main(
        [
            "vm",
            "--power-config",
            str(path),
            "--base-url",
            "http://10.1.1.1",
            "--auth",
            "basic",
            "--power-user",
            "maas",
        ]
    )
    values = lines(capsys.readouterr().out)
    assert values["power_parameters_power_user"] == "maas"
    assert values["power_parameters_power_pass"] == "<POWER_PASS>"


@pytest.mark.parametrize(
    "url", ["http://localhost:8080", "http://127.0.0.5:8080", "http://[::1]:8080"]
)
def test_loopback_base_url_warns(
    write_json: Writer, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    """A loopback base URL gets a warning: MAAS routes power requests by that IP."""
    main(["vm", "--power-config", str(write_json(CONFIG)), "--base-url", url])
    assert "rack controller" in capsys.readouterr().err


def test_list_machines(write_json: Writer, capsys: pytest.CaptureFixture[str]) -> None:
    """--list prints one line per configured machine with its backend."""
    main(["--list", "--power-config", str(write_json(CONFIG))])
    out = capsys.readouterr().out.splitlines()
    assert out == ["desk 1\twol\t52:54:00:ab:cd:ef\tabc123", "vm\tcommand\t-\t-"]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["nope", "--base-url", "http://10.0.0.1"], "not in"),
        (["vm"], "--base-url is required"),
        (["vm", "--base-url", "ftp://x"], "use http(s)"),
        (["--base-url", "http://10.0.0.1"], "name a machine"),
    ],
)
def test_mistakes_are_config_errors(write_json: Writer, argv: list[str], fragment: str) -> None:
    """Unknown machines and bad or missing base URLs are ConfigErrors."""
    with pytest.raises(ConfigError, match=None) as caught:
        main([*argv, "--power-config", str(write_json(CONFIG))])
    assert fragment in str(caught.value)


def test_through_the_maasflow_command(
    write_json: Writer, capsys: pytest.CaptureFixture[str]
) -> None:
    """`maasflow power-config` dispatches here, and a mistake exits 2 with one line."""
    path = write_json(CONFIG)
    assert (
        maasflow_main(
            ["power-config", "vm", "--power-config", str(path), "--base-url", "http://10.0.0.9"]
        )
        == 0
    )
    assert "power_type=webhook" in capsys.readouterr().out
    assert (
        maasflow_main(
            ["power-config", "ghost", "--power-config", str(path), "--base-url", "http://10.0.0.9"]
        )
        == 2
    )
    assert capsys.readouterr().err.count("\n") == 1


def test_the_maas_line_pastes_into_a_shell_without_a_redirection(
    write_json: Writer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Pasted into sh, the line for a machine without a system_id passes `<system_id>` as one
    literal word (a stand-in for the id) and creates no file; stderr says what to fill in."""
    main(["vm", "--power-config", str(write_json(CONFIG)), "--base-url", "http://10.0.0.2:9420"])
    printed = capsys.readouterr()
    line = next(text for text in printed.out.splitlines() if text.startswith("maas "))
    script = 'maas() { for word in "$@"; do printf \'%s\\n\' "$word"; done; }\n' + line
    words = subprocess.run(
        ["/bin/sh", "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert words[:5] == ["admin", "machine", "update", "<system_id>", "power_type=webhook"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["power.json"]
    assert "replace <system_id> with vm's MAAS system_id" in printed.err
