"""`--version`: every maasflow command prints the one version and exits 0."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import maasflow

REPO = Path(__file__).resolve().parents[2]
MAASFLOW = Path(sys.executable).parent / "maasflow"


@pytest.mark.parametrize(
    "argv",
    [["--version"], ["-version"], ["serve", "--version"], ["sim", "--version"],
     ["status", "--version"], ["power-config", "--version"], ["demo", "--version"],
     ["-maas", "http://maas.example:5240/MAAS", "--version"]],
)  # fmt: skip
def test_version_flag_prints_the_package_version_and_exits_0(argv: list[str]) -> None:
    """`maasflow [sub-command] --version` prints `maasflow <version>` on stdout, exit 0."""
    done = subprocess.run(
        [str(MAASFLOW), *argv], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        f"maasflow {maasflow.__version__}\n",
        "",
    )


def test_the_version_is_written_once_and_the_package_metadata_takes_it() -> None:
    """pyproject.toml takes the version from maasflow.__version__; nothing else spells it."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "maasflow.__version__"
