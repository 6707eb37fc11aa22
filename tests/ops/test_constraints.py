"""constraints.txt pins every package maasflow installs, and everything that installs uses it:
./dev (so CI), the Dockerfile and packaging/install.sh."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version.strip(), f"not pinned with ==: {line!r}"
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_every_dependency_is_pinned_to_a_version_pyproject_allows() -> None:
    """Each runtime and test dependency has one == pin inside pyproject's own range."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = _pins()
    for text in [*project["dependencies"], *project["optional-dependencies"]["test"]]:
        requirement = Requirement(text)
        pin = pins.get(canonicalize_name(requirement.name))
        assert pin is not None, f"{requirement.name} is not in constraints.txt"
        assert requirement.specifier.contains(pin, prereleases=True), (text, pin)


def test_dev_install_script_and_image_install_with_the_constraints() -> None:
    """./dev's pip install, install.sh's and the Dockerfile's RUN pip install all pass -c."""
    dev = (REPO / "dev").read_text()
    assert re.search(r"pip install -q -c constraints\.txt -e '\.\[test\]'", dev)
    assert "./dev lint" in (REPO / ".ci" / "run").read_text()  # CI installs through ./dev
    install = (REPO / "packaging" / "install.sh").read_text()
    assert '-c "$SRC/constraints.txt"' in install
    docker = (REPO / "Dockerfile").read_text()
    installs = [line for line in docker.splitlines() if "pip install" in line]
    assert installs and all(
        "-c constraints.txt" in line or "--no-deps" in line for line in installs
    )
