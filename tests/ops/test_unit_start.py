"""Each unit's ExecStart, started as systemd would start it on a fresh install: credentials made
by its LoadCredential=/SetCredential= lines (only the API key installed), its environment,
and a notify socket. Both must say READY=1: the serve unit with no power config and none of
its optional files, the daemon with the key alone (MAAS need not answer yet)."""

from __future__ import annotations

import asyncio
import codecs
import os
import socket
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALLED_BINARY = "/opt/maasflow/bin/maasflow"
KEY = "aaaaaaaaaaaaaaaaaa:bbbbbbbbbbbbbbbbbb:cccccccccccccccccccccccccccccccc"


def _service(name: str) -> dict[str, list[str]]:
    section: dict[str, list[str]] = {}
    inside = False
    for raw in (REPO / "systemd" / name).read_text().splitlines():
        line = raw.strip()
        if line.startswith("["):
            inside = line == "[Service]"
        elif inside and line and not line.startswith("#"):
            key, _, value = line.partition("=")
            section.setdefault(key, []).append(value)
    return section


def make_credentials(service: dict[str, list[str]], etc: Path, out: Path) -> None:
    """What systemd does at start: each LoadCredential= file copied when it exists, else its
    SetCredential= value (C escapes undone); a missing file without a default fails."""
    defaults = dict(value.split(":", 1) for value in service.get("SetCredential", []))
    out.mkdir(mode=0o700)
    for value in service["LoadCredential"]:
        name, _, source = value.partition(":")
        installed = etc / Path(source).relative_to("/etc/maasflow")
        if installed.exists():
            (out / name).write_bytes(installed.read_bytes())
        else:
            assert name in defaults, f"{name}: the unit would fail (243/CREDENTIALS)"
            (out / name).write_text(codecs.decode(defaults[name], "unicode_escape"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("unit", "env"),
    [
        ("maasflow-serve.service", {"MAASFLOW_SERVE_ARGS": "--port 0"}),
        ("maasflow.service", {"MAAS_URL": "http://127.0.0.1:9/MAAS"}),
    ],
)
async def test_a_fresh_install_starts_and_tells_systemd_it_is_ready(
    unit: str, env: dict[str, str], tmp_path: Path, short_dir: Path
) -> None:
    """Only /etc/maasflow/maas_api_key installed: the unit's command starts and sends READY=1."""
    service = _service(unit)
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "maas_api_key").write_text(KEY + "\n")
    credentials = tmp_path / "credentials"
    make_credentials(service, etc, credentials)
    (execstart,) = service["ExecStart"]
    binary = str(Path(sys.executable).parent / "maasflow")
    values = {**env, "LISTEN": f"127.0.0.1:{_free_port()}"}
    argv = [
        binary if word == INSTALLED_BINARY else word
        for part in execstart.split()
        for word in (values.get(part[1:], "").split() if part.startswith("$") else [part])
    ]
    notify = short_dir / f"n-{unit[:12]}"
    state = tmp_path / "state"
    state.mkdir()
    environment = {
        "PATH": os.environ["PATH"], "HOME": str(state), "STATE_DIRECTORY": str(state),
        "CREDENTIALS_DIRECTORY": str(credentials), "NOTIFY_SOCKET": str(notify), **values,
    }  # fmt: skip
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(notify))
        sock.setblocking(False)
        proc = await asyncio.create_subprocess_exec(
            *argv, env=environment, stderr=asyncio.subprocess.PIPE
        )
        try:
            seen = await asyncio.wait_for(_until_ready(sock, proc), 30)
        finally:
            if proc.returncode is None:
                proc.terminate()
            _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert "READY=1" in seen, err.decode()[-2000:]
    assert KEY not in err.decode()


async def _until_ready(sock: socket.socket, proc: asyncio.subprocess.Process) -> set[str]:
    loop = asyncio.get_running_loop()
    seen: set[str] = set()
    while "READY=1" not in seen and proc.returncode is None:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 0.5)
        except TimeoutError:
            continue
        seen.update(data.decode().splitlines())
    return seen
