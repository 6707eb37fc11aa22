"""packaging/install.sh, run for real into a temporary root: a virtualenv in /opt/maasflow with
maasflow's wheel, the units, the environment file and /etc/maasflow, kept on a second run.

Offline: the wheel is built with .venv's setuptools (`./dev wheel`'s command) and pip gets no
index; the dependencies come from .venv's site-packages on PYTHONPATH (pip counts them as
installed), so the test checks the script's work, not the package index.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import maasflow

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "packaging" / "install.sh"
NOT_DEPENDENCIES = ("maasflow", "__editable__", "pip", "setuptools", "_distutils_hack")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """maasflow's wheel, built as `./dev wheel` builds it (no index, no build isolation)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(out), str(REPO)],
        check=True, timeout=300, capture_output=True,
    )  # fmt: skip
    (built,) = out.glob(f"maasflow-{maasflow.__version__}-py3-none-any.whl")
    return built


@pytest.fixture(scope="module")
def offline_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """pip with no index and no machine config; the dependencies importable from PYTHONPATH."""
    deps = tmp_path_factory.mktemp("deps")
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(NOT_DEPENDENCIES) and entry.suffix != ".pth":
            (deps / entry.name).symlink_to(entry)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV"))}
    env.update(PYTHONPATH=str(deps), PIP_NO_INDEX="1", PIP_CONFIG_FILE=os.devnull)
    return env


def _install(root: Path, wheel: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = [str(SCRIPT), "--root", str(root), "--wheel", str(wheel), "--python", sys.executable]
    return subprocess.run(
        argv, env=env, cwd=root.parent, capture_output=True, text=True, timeout=600, check=False
    )


def test_install_script_lays_out_a_working_install_and_keeps_local_edits_on_rerun(
    tmp_path: Path, wheel: Path, offline_env: dict[str, str]
) -> None:
    """The venv runs `maasflow --version` from the wheel (not the source tree); units, default
    file, samples and the /usr/local/bin link are in place; no secret file is invented; a
    second run upgrades in place and keeps the operator's environment file."""
    root = tmp_path / "root"
    done = _install(root, wheel, offline_env)
    assert done.returncode == 0, done.stderr
    venv = root / "opt" / "maasflow"
    version = subprocess.run(
        [str(venv / "bin" / "maasflow"), "--version"],
        env=offline_env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert version.stdout == f"maasflow {maasflow.__version__}\n"
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import maasflow; print(maasflow.__file__)"],
        env=offline_env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert where.stdout.startswith(str(venv / "lib"))
    for unit in ("maasflow.service", "maasflow-serve.service"):
        installed = root / "etc" / "systemd" / "system" / unit
        assert installed.read_text() == (REPO / "systemd" / unit).read_text()
        assert installed.stat().st_mode & 0o777 == 0o644
    default = root / "etc" / "default" / "maasflow"
    assert default.read_text() == (REPO / "systemd" / "maasflow.default").read_text()
    etc = root / "etc" / "maasflow"
    samples = {p.name for p in (REPO / "filters").iterdir()}
    assert {p.name for p in (etc / "filters").iterdir()} == samples
    assert {"mappings.json", "power.example.json", "filters"} == {p.name for p in etc.iterdir()}
    assert os.readlink(root / "usr" / "local" / "bin" / "maasflow") == "/opt/maasflow/bin/maasflow"
    assert f"maasflow {maasflow.__version__}" in done.stdout

    default.write_text("MAAS_URL=http://maas.example:5240/MAAS\n")
    again = _install(root, wheel, offline_env)
    assert again.returncode == 0, again.stderr
    assert default.read_text() == "MAAS_URL=http://maas.example:5240/MAAS\n"
    assert "kept" in again.stdout


def test_install_script_refuses_bad_usage_in_one_line(tmp_path: Path) -> None:
    """An unknown argument or a missing wheel: exit 2, one line naming it, nothing written."""
    for argv in (["--bogus"], ["--root", str(tmp_path / "r"), "--wheel", "nope.whl"]):
        done = subprocess.run(
            [str(SCRIPT), *argv], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 2
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert argv[-1].lstrip("-") in done.stderr
    assert not (tmp_path / "r").exists()
