"""The image's entrypoint, run for real on this host: as root it hands a root-only secret to
maasflow as uid 10001 through $CREDENTIALS_DIRECTORY and drops every privilege; as another
user it runs maasflow as is. And the image itself, built only where a docker engine runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import maasflow

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "packaging" / "docker-entrypoint.sh"
KEY = "aaaaaaaaaaaaaaaaaa:bbbbbbbbbbbbbbbbbb:cccccccccccccccccccccccccccccccc"
# A stand-in for maasflow: who it runs as, what it may read, and its privileges.
FAKE_MAASFLOW = """#!/bin/sh
echo "uid=$(id -u) gid=$(id -g) groups=$(id -G) args=$*"
echo "credentials=$CREDENTIALS_DIRECTORY"
echo "key=$(cat "$CREDENTIALS_DIRECTORY/maas_api_key")"
grep -E '^(NoNewPrivs|CapEff|CapPrm):' /proc/self/status
"""


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Path]:
    """A directory uid 10001 can reach (pytest's tmp dirs are root-only) with a fake maasflow."""
    base = Path(tempfile.mkdtemp(prefix="maasflow-entrypoint-", dir="/tmp"))
    try:
        base.chmod(0o755)
        (base / "bin").mkdir(mode=0o755)
        fake = base / "bin" / "maasflow"
        fake.write_text(FAKE_MAASFLOW)
        fake.chmod(0o755)
        yield base
    finally:
        shutil.rmtree(base)


def _run(world: Path, secrets: Path, user: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{world / 'bin'}:/usr/bin:/bin",
        "MAASFLOW_SECRETS_DIR": str(secrets),
        "MAASFLOW_CREDENTIALS_DIR": str(world / "credentials"),
    }
    argv = [str(ENTRYPOINT), "-once", "-maas", "http://maas.example:5240/MAAS"]
    if user is not None:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]
        env["CREDENTIALS_DIRECTORY"] = str(secrets)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="the root path needs root (the image starts as it)")
def test_as_root_a_root_only_secret_reaches_maasflow_as_10001_with_no_privileges(
    world: Path, tmp_path: Path
) -> None:
    """/run/secrets/maas_api_key mode 0600 root (the README's key file, bind-mounted): maasflow
    runs as 10001:10001, no groups, no capabilities, no_new_privs, and reads the key from a
    0500 directory of 0400 copies; the arguments pass through untouched."""
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    (secrets / "maas_api_key").write_text(KEY + "\n")
    (secrets / "maas_api_key").chmod(0o600)
    (secrets / "provision_token").write_text("t0ken\n")
    done = _run(world, secrets)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        "uid=10001 gid=10001 groups=10001 args=-once -maas http://maas.example:5240/MAAS\n"
    )
    credentials = world / "credentials"
    assert f"credentials={credentials}\n" in done.stdout
    assert f"key={KEY}\n" in done.stdout
    assert "NoNewPrivs:1" in done.stdout.replace("\t", "")
    assert "CapEff:0000000000000000" in done.stdout.replace("\t", "")
    assert "CapPrm:0000000000000000" in done.stdout.replace("\t", "")
    stat = credentials.stat()
    assert (stat.st_uid, stat.st_gid, stat.st_mode & 0o777) == (10001, 10001, 0o500)
    for name in ("maas_api_key", "provision_token"):
        copy = (credentials / name).stat()
        assert (copy.st_uid, copy.st_mode & 0o777) == (10001, 0o400)
    assert KEY not in done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="starting as another user needs root here")
def test_as_another_user_it_runs_maasflow_as_that_user_and_copies_nothing(
    world: Path, tmp_path: Path
) -> None:
    """`docker run --user 10002`: no copy, no privilege change, the given credentials stay."""
    secrets = world / "secrets"
    secrets.mkdir(mode=0o755)
    (secrets / "maas_api_key").write_text(KEY + "\n")
    (secrets / "maas_api_key").chmod(0o644)
    done = _run(world, secrets, user=10002)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("uid=10002 gid=10002")
    assert f"credentials={secrets}\n" in done.stdout
    assert not (world / "credentials").exists()


def _docker_engine(docker: str | None) -> str | None:
    """Why no docker engine can build here, or None when one answers."""
    if docker is None:
        return "no docker client on PATH"
    info = subprocess.run(
        [docker, "info", "--format", "{{.ServerVersion}}"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if info.returncode != 0:
        return f"no docker engine answers (`docker info`: {info.stderr.strip()[:160]})"
    return None


def test_the_image_builds_and_runs_with_a_root_only_key(tmp_path: Path) -> None:
    """Where an engine runs: `docker build`, `--version`, and the README's recipe with a
    root-only key reaches MAAS (exit 1: unreachable), never exit 2 (permission denied)."""
    docker = shutil.which("docker")
    reason = _docker_engine(docker)
    if reason is not None or docker is None:
        pytest.skip(f"image not built: {reason}; the Dockerfile is checked statically instead")
    tag = "maasflow-test:ops"
    subprocess.run([docker, "build", "-q", "-t", tag, str(REPO)], check=True, timeout=1800)
    try:
        version = subprocess.run(
            [docker, "run", "--rm", tag, "--version"],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        assert version.stdout.strip() == f"maasflow {maasflow.__version__}"
        key = tmp_path / "maas_api_key"
        key.write_text(KEY + "\n")
        key.chmod(0o600)
        run = subprocess.run(
            [docker, "run", "--rm", "-v", f"{key}:/run/secrets/maas_api_key:ro", tag,
             "-maas", "http://127.0.0.1:9/MAAS", "-once"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert run.returncode == 1, run.stderr
    finally:
        subprocess.run([docker, "rmi", "-f", tag], capture_output=True, timeout=120, check=False)
