"""Credentials as systemd (LoadCredential=) and the docker image hand them over: files named by
purpose in $CREDENTIALS_DIRECTORY, a blank one meaning "none" (the units' default), read by the
daemon and `maasflow serve` when no flag or variable names another; and the key file's checks."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from maasflow.common.errors import ConfigError, Unauthorized
from maasflow.common.secrets import read_credential, readable_by_others
from maasflow.daemon.cli import _warn_if_key_file_is_open, key_source, maas_client
from maasflow.daemon.settings import load_settings
from maasflow.serve.cli import build_parser, config_from_args
from maasflow.serve.power_api import power_router_from_args
from maasflow.serve.power_config import load_power_auth

KEY = "aaaaaaaaaaaaaaaaaa:bbbbbbbbbbbbbbbbbb:cccccccccccccccccccccccccccccccc"
KEY2 = "dddddddddddddddddd:eeeeeeeeeeeeeeeeee:ffffffffffffffffffffffffffffffff"
URL = "http://127.0.0.1:9420/provision/"


@pytest.fixture
def creds(tmp_path: Path) -> Path:
    folder = tmp_path / "credentials"
    folder.mkdir()
    return folder


@pytest.fixture
def env(tmp_path: Path, creds: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A daemon environment whose only credential directory is `creds`, with the key in it."""
    monkeypatch.setattr("maasflow.daemon.flags.DEFAULT_KEY_FILE", str(tmp_path / "no-such-key"))
    (creds / "maas_api_key").write_text(KEY + "\n")
    return {"HOME": str(tmp_path), "CREDENTIALS_DIRECTORY": str(creds)}


@pytest.mark.parametrize("content", ["\n", "", "  \r\n"])
def test_a_blank_credential_means_none(creds: Path, content: str) -> None:
    """The units' `SetCredential=<name>:\\n` default (or an empty file) is no secret at all."""
    (creds / "power_token").write_text(content)
    env = {"CREDENTIALS_DIRECTORY": str(creds)}
    assert read_credential("power_token", "power token", env) is None
    assert read_credential("provision_token", "token", env) is None  # absent
    assert read_credential("power_token", "power token", {}) is None  # no directory


def test_a_credential_follows_the_secret_file_rule(creds: Path) -> None:
    """A credential is stripped to one line; two lines are refused naming the directory."""
    (creds / "power_token").write_text("  t0ken \n")
    env = {"CREDENTIALS_DIRECTORY": str(creds)}
    assert read_credential("power_token", "power token", env) == "t0ken"
    (creds / "power_token").write_text("one\ntwo\n")
    with pytest.raises(ConfigError, match=r"CREDENTIALS_DIRECTORY file .*power_token.*one line"):
        read_credential("power_token", "power token", env)


def test_daemon_takes_the_provisioning_token_credential_for_an_http_url(
    env: dict[str, str], creds: Path
) -> None:
    """provision_token is sent to an http(s) PROVISION_URL; a variable or a blank one wins."""
    (creds / "provision_token").write_text("cr3d\n")
    token = load_settings(["-provision-url", URL], env).provision_token
    assert token is not None and token.get_secret_value() == "cr3d"
    given = load_settings(["-provision-url", URL], {**env, "PROVISION_TOKEN": "v4r"})
    assert given.provision_token is not None
    assert given.provision_token.get_secret_value() == "v4r"
    (creds / "provision_token").write_text("\n")
    assert load_settings(["-provision-url", URL], env).provision_token is None


def test_daemon_ignores_the_token_credential_without_an_http_url(
    env: dict[str, str], creds: Path, tmp_path: Path
) -> None:
    """One token file shared with serve does not stop a daemon that runs a script (or none)."""
    (creds / "provision_token").write_text("cr3d\n")
    script = tmp_path / "provision"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o700)
    assert load_settings(["-provision-url", str(script)], env).provision_token is None
    assert load_settings([], env).provision_token is None


def test_serve_reads_every_token_and_password_from_the_credentials(
    creds: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """provision_token, power_token, power_pass and power_ack_pass reach serve from the
    directory, so the unit's ExecStart names no file; a flag's file still wins."""
    for name in ("provision_token", "power_token", "power_pass", "power_ack_pass"):
        (creds / name).write_text(f"{name}-s3cret\n")
    env = {"CREDENTIALS_DIRECTORY": str(creds)}
    monkeypatch.setattr(os, "environ", env)
    config = config_from_args(build_parser().parse_args(["--db", ":memory:"]), env)
    assert config.provision_token == "provision_token-s3cret"
    auth = load_power_auth(None, "maas", None)
    assert (auth.token, auth.password) == ("power_token-s3cret", "power_pass-s3cret")
    assert (auth.ack_user, auth.ack_password) == ("ack", "power_ack_pass-s3cret")
    flagged = creds.parent / "flag-token"
    flagged.write_text("fl4g\n")
    assert load_power_auth(flagged, None, None, complete=False).token == "fl4g"


def test_serve_without_power_config_needs_no_power_credential(
    creds: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unit's blank defaults: serve builds no power target and reads no power secret."""
    for name in ("provision_token", "power_token", "power_ack_pass", "power_pass"):
        (creds / name).write_text("\n")
    env = {"CREDENTIALS_DIRECTORY": str(creds)}
    monkeypatch.setattr(os, "environ", env)
    args = build_parser().parse_args(["--db", ":memory:", "--require-power-auth"])
    assert config_from_args(args, env).provision_token is None
    assert power_router_from_args(args) is None


def test_require_power_auth_refuses_an_open_power_target(
    creds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --power-config and no power credential, the unit's flag makes serve exit 2."""
    (creds / "power_token").write_text("\n")
    monkeypatch.setattr(os, "environ", {"CREDENTIALS_DIRECTORY": str(creds)})
    power = tmp_path / "power.json"
    power.write_text('{"machines": {"desk1": {"backend": "wol", "mac": "52:54:00:aa:bb:cc"}}}')
    argv = ["--db", ":memory:", "--power-config", str(power), "--require-power-auth"]
    args: argparse.Namespace = build_parser().parse_args(argv)
    with pytest.raises(ConfigError, match="/etc/maasflow/power_token"):
        power_router_from_args(args)


def test_the_key_file_is_read_again_for_a_rotation(env: dict[str, str], tmp_path: Path) -> None:
    """The key's file is the client's key source: a rewritten file gives the new key; a key
    from a variable has no file to read again."""
    key_file = tmp_path / "maas_api_key"
    key_file.write_text(KEY + "\n")
    del env["CREDENTIALS_DIRECTORY"]
    settings = load_settings(["-api-key-file", str(key_file)], env)
    source = key_source(settings)
    assert source is not None and source() == KEY
    key_file.write_text(KEY2 + "\n")
    assert source() == KEY2
    assert key_source(load_settings([], {**env, "MAAS_API_KEY": KEY})) is None


def test_a_key_file_every_user_can_read_is_warned_about(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Mode o+r on the key file logs one warning naming the file and the chmod; 0600 none."""
    key_file = tmp_path / "maas_api_key"
    key_file.write_text(KEY + "\n")
    del env["CREDENTIALS_DIRECTORY"]
    for mode, warned in ((0o644, True), (0o600, False), (0o640, False)):
        key_file.chmod(mode)
        assert readable_by_others(key_file) is warned
        with capture_logs() as logs:
            _warn_if_key_file_is_open(load_settings(["-api-key-file", str(key_file)], env))
        lines = [e for e in logs if e["log_level"] == "warning"]
        assert len(lines) == int(warned)
        if warned:
            assert lines[0]["file"] == str(key_file) and "chmod 600" in lines[0]["fix"]
            assert KEY not in repr(lines)


async def test_the_daemons_client_takes_a_rotated_key_from_its_file_without_a_restart(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The daemon's MAAS client (as `maasflow` builds it): a 401 for the old key, the file
    rewritten with the new one, and the next call succeeds with it; no new client."""
    key_file = tmp_path / "maas_api_key"
    key_file.write_text(KEY + "\n")
    del env["CREDENTIALS_DIRECTORY"]
    accepted = KEY2.split(":")[1]

    def answer(request: httpx.Request) -> httpx.Response:
        if f'oauth_token="{accepted}"' not in request.headers["authorization"]:
            return httpx.Response(401, text="Authorization Error: 'Invalid access token'")
        return httpx.Response(200, json={"username": "admin", "is_superuser": True})

    settings = load_settings(
        ["-api-key-file", str(key_file), "-maas", "http://127.0.0.1:9/MAAS"], env
    )
    async with maas_client(settings, transport=httpx.MockTransport(answer)) as client:
        with pytest.raises(Unauthorized):
            await client.whoami()
        key_file.write_text(KEY2 + "\n")
        assert (await client.whoami()).username == "admin"
