"""End to end: `maasflow demo`, the README's first command, as a user runs it.

Both provisioning modes run as real subprocesses started together (each mostly waits on the
simulator's clock, so side by side they take the time of one); each test then checks one.
A demo must exit 0 within 90 s and its output must name every one of its machines.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.e2e.helpers import MAASFLOW, base_env, stop_process

DEMO_HOSTS = [f"node-{n:02d}" for n in range(1, 13)]
MODES = {"url": ["demo", "--machines", "12"], "script": ["demo", "--provision", "script"]}


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[int, str]]]:
    """Both demos run at once; mode → (exit status, output)."""
    tmp = tmp_path_factory.mktemp("demo")
    env = base_env(tmp / "home")
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        for mode, args in MODES.items():
            procs[mode] = subprocess.Popen(
                [*MAASFLOW, *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        yield {mode: _finish(proc) for mode, proc in procs.items()}
    finally:
        for proc in procs.values():
            stop_process(proc)


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=90)
    return proc.returncode, out


@pytest.mark.parametrize("mode", list(MODES))
def test_demo_exits_0_and_names_every_machine(demos: dict[str, tuple[int, str]], mode: str) -> None:
    """`maasflow demo` (through serve, or with a script) exits 0 and shows all twelve machines."""
    code, out = demos[mode]
    assert code == 0, out
    missing = [host for host in DEMO_HOSTS if host not in out]
    assert missing == []
    assert "12/12 machines where they should be" in out


def test_demo_never_calls_a_selected_machine_excluded(
    demos: dict[str, tuple[int, str]],
) -> None:
    """The live view never labels a machine it is about to drive as excluded."""
    code, out = demos["url"]
    assert code == 0
    assert "excluded (selected)" not in out
