"""The systemd units: `systemd-analyze verify` passes and the directives operators need are set."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from maasflow.daemon.flags import settings_reference
from maasflow.daemon.settings import load_settings
from maasflow.serve.cli import build_parser
from maasflow.serve.power_config import load_power_auth

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "systemd"
UNIT_NAMES = ("maasflow.service", "maasflow-serve.service")
INSTALLED_BINARY = "/opt/maasflow/bin/maasflow"  # the virtualenv packaging/install.sh makes
KEY = "aaaaaaaaaaaaaaaaaa:bbbbbbbbbbbbbbbbbb:cccccccccccccccccccccccccccccccc"

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """[section] -> key -> every value in order (systemd keys may repeat)."""
    unit: Unit = {}
    section: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not key=value: {raw!r}"
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def _unit(name: str) -> Unit:
    return parse_unit((UNITS / name).read_text())


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.fail(
            "systemd-analyze is not installed: CI must install Debian's systemd package "
            "(apt-get install -y systemd) so the units can be verified"
        )
    return found


def _verify(unit_file: Path, tmp_path: Path) -> list[str]:
    """systemd-analyze verify on a copy whose ExecStart binary exists; the lines about it."""
    binary = Path(sys.executable).parent / "maasflow"
    text = unit_file.read_text().replace(INSTALLED_BINARY, str(binary))
    copy = tmp_path / unit_file.name
    copy.write_text(text)
    result = subprocess.run(
        [_systemd_analyze(), "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = (result.stdout + result.stderr).splitlines()
    mentions = [line for line in output if unit_file.name in line or str(binary) in line]
    assert result.returncode == 0, "\n".join(output)
    return mentions


@pytest.mark.parametrize("name", UNIT_NAMES)
def test_unit_passes_systemd_analyze_verify(name: str, tmp_path: Path) -> None:
    """systemd-analyze verify accepts the unit with no warning (unknown keys, bad values)."""
    assert _verify(UNITS / name, tmp_path) == []


def test_verify_would_catch_a_misspelt_directive(tmp_path: Path) -> None:
    """The check above is not vacuous: a typo in a directive is reported."""
    broken = tmp_path / "src" / "maasflow.service"
    broken.parent.mkdir()
    text = (UNITS / "maasflow.service").read_text()
    broken.write_text(text.replace("ProtectHome=yes", "ProtectHomme=yes"))
    assert any("ProtectHomme" in line for line in _verify(broken, tmp_path))


COMMON = {
    "Type": "notify",
    "NotifyAccess": "main",
    "DynamicUser": "yes",
    "User": "maasflow",
    "StateDirectory": "maasflow",
    "EnvironmentFile": "-/etc/default/maasflow",
    "Restart": "on-failure",
    "RestartSec": "5",
    "RestartPreventExitStatus": "2",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "NoNewPrivileges": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectControlGroups": "yes",
    "LockPersonality": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "SystemCallFilter": "~@privileged @resources",  # the last line; @system-service before it
    "CapabilityBoundingSet": "",
    "PrivateUsers": "yes",
    "PrivateMounts": "yes",
    "ProcSubset": "pid",
}


@pytest.mark.parametrize("name", UNIT_NAMES)
def test_unit_sets_notify_user_state_restart_and_hardening(name: str) -> None:
    """Both units: Type=notify with a watchdog, dynamic user, state dir, restart, hardening."""
    unit = _unit(name)
    service = {key: values[-1] for key, values in unit["Service"].items()}
    assert {key: service.get(key) for key in COMMON} == COMMON
    assert unit["Service"]["SystemCallFilter"][0] == "@system-service"
    assert int(service["WatchdogSec"]) >= 30
    assert {"StartLimitIntervalSec", "StartLimitBurst"} <= unit["Unit"].keys()
    assert service["ExecStart"].startswith(f"{INSTALLED_BINARY} ")
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


@pytest.mark.parametrize("name", UNIT_NAMES)
def test_unit_raises_the_open_file_limit_above_systemds_1024(name: str) -> None:
    """Each connection is a file: both units lift LimitNOFILE well above the 1,024 default."""
    (limit,) = _unit(name)["Service"]["LimitNOFILE"]
    assert int(limit) >= 16384


def test_daemon_unit_loads_the_api_key_as_a_credential_settings_reads(tmp_path: Path) -> None:
    """LoadCredential's name is the file settings reads from $CREDENTIALS_DIRECTORY."""
    credential, *_optional = _unit("maasflow.service")["Service"]["LoadCredential"]
    name, _, source = credential.partition(":")
    assert source == "/etc/maasflow/maas_api_key"
    (tmp_path / name).write_text(KEY + "\n")
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path), "HOME": str(tmp_path)}
    assert load_settings([], env).api_key.get_secret_value() == KEY


def test_daemon_unit_gives_a_graceful_stop_time_to_finish() -> None:
    """TimeoutStopSec exceeds the default shutdown grace (30 s) so actions can finish."""
    service = _unit("maasflow.service")["Service"]
    assert int(service["TimeoutStopSec"][-1]) > 30
    assert service["ExecStart"] == [f"{INSTALLED_BINARY} $MAASFLOW_ARGS"]


def test_daemon_unit_reloads_with_sighup_and_serve_has_no_reload() -> None:
    """`systemctl reload maasflow` sends SIGHUP (the daemon reloads its filter and mappings);
    serve reloads nothing, so its unit offers no reload that would pretend to."""
    assert _unit("maasflow.service")["Service"]["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert "ExecReload" not in _unit("maasflow-serve.service")["Service"]


def test_serve_unit_loads_every_power_and_provisioning_secret_as_a_credential() -> None:
    """The serve unit runs `maasflow serve --require-power-auth` and loads the power token, the
    ack page's password, the Basic password and the provisioning token as credentials."""
    service = _unit("maasflow-serve.service")["Service"]
    (execstart,) = service["ExecStart"]
    argv = execstart.split()
    assert argv[:3] == [INSTALLED_BINARY, "serve", "--require-power-auth"]
    assert "--power-token-file" not in argv  # found by name in $CREDENTIALS_DIRECTORY
    assert service["LoadCredential"] == [
        "power_token:/etc/maasflow/power_token",
        "power_ack_pass:/etc/maasflow/power_ack_pass",
        "power_pass:/etc/maasflow/power_pass",
        "provision_token:/etc/maasflow/provision_token",
    ]
    args = build_parser().parse_args([word for word in argv[2:] if not word.startswith("$")])
    assert args.require_power_auth


@pytest.mark.parametrize("name", UNIT_NAMES)
def test_every_optional_credential_has_a_blank_default_so_the_unit_starts_without_it(
    name: str,
) -> None:
    """Each credential but the daemon's key has `SetCredential=<name>:\\n` (systemd uses it
    when the file is missing; maasflow reads a blank credential as none): a host with no
    power config starts maasflow-serve without /etc/maasflow/power_token."""
    service = _unit(name)["Service"]
    loaded = [c.partition(":")[0] for c in service["LoadCredential"]]
    optional = [c for c in loaded if c != "maas_api_key"]
    assert service["SetCredential"] == [f"{c}:\\n" for c in optional]
    assert ("maas_api_key" in loaded) == (name == "maasflow.service")


def test_serve_unit_gives_the_ack_page_a_password_serve_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both credentials land where serve reads them: the token and the acknowledgement
    page's password from the credentials directory, so a browser can ack."""
    service = _unit("maasflow-serve.service")["Service"]
    (execstart,) = service["ExecStart"]
    for credential in service["LoadCredential"][:2]:
        name, _, source = credential.partition(":")
        assert source == f"/etc/maasflow/{name}"
        (tmp_path / name).write_text(f"{name}-secret\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    argv = execstart.split()[2:]
    args = build_parser().parse_args([word for word in argv if not word.startswith("$")])
    auth = load_power_auth(
        args.power_token_file,
        args.power_user,
        args.power_pass_file,
        ack_user=args.power_ack_user,
        ack_pass_file=args.power_ack_pass_file,
    )
    assert auth.token == "power_token-secret"
    assert (auth.ack_user, auth.ack_password) == ("ack", "power_ack_pass-secret")
    assert auth.browser_can_ack


@pytest.mark.parametrize("name", UNIT_NAMES)
def test_unit_exposure_is_at_most_1_1_by_systemd_analyze_security(
    name: str, tmp_path: Path
) -> None:
    """`systemd-analyze security --offline=yes` rates each unit 1.1 or better (was 1.7), and
    reads every line of it (no "Invalid syntax, ignoring")."""
    binary = Path(sys.executable).parent / "maasflow"
    copy = tmp_path / name
    copy.write_text((UNITS / name).read_text().replace(INSTALLED_BINARY, str(binary)))
    done = subprocess.run(
        [_systemd_analyze(), "security", "--offline=yes", "--no-pager", str(copy)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", output)
    assert found is not None, output
    assert float(found.group(1)) <= 1.1, output
    assert "ignoring" not in output.lower(), output


NON_OBVIOUS = (
    "Type",
    "LoadCredential",
    "DynamicUser",
    "StateDirectory",
    "Environment",
    "RestartPreventExitStatus",
    "CapabilityBoundingSet",
    "RestrictAddressFamilies",
    "SystemCallFilter",
    "StartLimitIntervalSec",
    "LimitNOFILE",
    "SetCredential",
    "PrivateUsers",
    "ProcSubset",
)


@pytest.mark.parametrize("name", UNIT_NAMES)
def test_non_obvious_directives_carry_a_comment(name: str) -> None:
    """Each non-obvious directive sits in a block of lines opened by a comment."""
    lines = (UNITS / name).read_text().splitlines()
    for key in NON_OBVIOUS:
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{key}="))
        block = []
        for line in reversed(lines[:index]):
            if not line.strip():
                break
            block.append(line)
        assert any(line.startswith("#") for line in block), f"{name}: {key}= has no comment"


def test_example_environment_file_documents_every_setting_commented_out() -> None:
    """systemd/maasflow.default names every env var of the settings, all commented out."""
    text = (UNITS / "maasflow.default").read_text()
    documented = set(re.findall(r"^#([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    settings_env = {name for _, names, _, _ in settings_reference() for name in names}
    units = " ".join((UNITS / n).read_text() for n in UNIT_NAMES)
    set_by_systemd = {"CREDENTIALS_DIRECTORY", "MAINPID"}
    unit_vars = set(re.findall(r"\$([A-Z][A-Z0-9_]*)", units)) - set_by_systemd
    assert settings_env - documented == set()
    assert unit_vars - documented == set()
    active = [line for line in text.splitlines() if re.match(r"\s*[A-Za-z_]+=", line)]
    assert active == []


async def test_serve_tells_systemd_it_is_ready_and_alive(short_dir: Path) -> None:
    """The serve unit is Type=notify with WatchdogSec: `maasflow serve` must send READY=1 and
    WATCHDOG=1 to NOTIFY_SOCKET, or systemd fails its start (or kills it two minutes later)."""
    path = str(short_dir / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.setblocking(False)
        env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"}
        argv = [str(Path(sys.executable).parent / "maasflow"), "serve", "--port", "0"]
        proc = await asyncio.create_subprocess_exec(
            *argv, "--db", ":memory:", env=env, stderr=asyncio.subprocess.DEVNULL
        )
        try:
            seen = await asyncio.wait_for(_until_ready_and_watchdog(sock), 15)
        except TimeoutError:
            pytest.fail(
                "maasflow serve sent no READY=1 and WATCHDOG=1 within 15 s: it must call "
                "maasflow.common.notify.SystemdNotifier().ready() once listening "
                "and run its keepalive()"
            )
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)
    assert {"READY=1", "WATCHDOG=1"} <= seen


async def _until_ready_and_watchdog(sock: socket.socket) -> set[str]:
    loop = asyncio.get_running_loop()
    seen: set[str] = set()
    while not {"READY=1", "WATCHDOG=1"} <= seen:
        seen.update((await loop.sock_recv(sock, 4096)).decode().splitlines())
    return seen
