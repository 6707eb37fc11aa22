"""Machine sets: generated ones are deterministic, the demo dozen has its mixed states."""

from __future__ import annotations

import pytest

from maasflow.common.errors import ConfigError
from maasflow.sim import MachineSpec, SimConfig, demo_machines, generate_machines
from maasflow.sim.scenario import ADMIN, OTHER_OWNER
from maasflow.sim.statuses import LOCKABLE


def test_generated_machines_are_named_and_deterministic() -> None:
    """node-0001… New and powered off; the same n and seed give the same list."""
    specs = generate_machines(3, seed=5)
    assert [s.hostname for s in specs] == ["node-0001", "node-0002", "node-0003"]
    assert all(s.status == 0 and s.power_state == "off" for s in specs)
    assert specs == generate_machines(3, seed=5)
    assert len({s.macs[0] for s in generate_machines(500)}) == 500


def test_demo_has_the_mixed_states_the_demo_needs() -> None:
    """New on and off, Ready, a locked Deployed, another zone, someone-else's, a failing one."""
    specs = {s.hostname: s for s in demo_machines(1)}
    assert len(specs) == 12
    new = [s for s in specs.values() if s.status == 0]
    assert {s.power_state for s in new} == {"on", "off"}
    assert any(s.status == 4 and not s.locked for s in specs.values())
    assert [s.hostname for s in specs.values() if s.locked] == ["node-09"]
    assert (specs["node-09"].status, specs["node-09"].owner) == (6, ADMIN)
    assert [s.zone for s in specs.values() if s.zone != "default"] == ["lab-b"]
    assert (specs["node-11"].owner, specs["node-11"].status) == (OTHER_OWNER, 10)
    assert specs["node-12"].commission_outcome == "fail"


def test_demo_locks_only_what_maas_can_lock() -> None:
    """Every locked demo machine is Deployed or Deploying, the only statuses MAAS locks."""
    locked = [s for s in demo_machines(3) if s.locked]
    assert locked
    assert all(s.status in LOCKABLE and s.owner for s in locked)


@pytest.mark.parametrize(
    "bad",
    [
        {"status": 99},
        {"power_state": "sideways"},
        {"commission_outcome": "maybe"},
        {"deploy_outcome": "fail_testing"},
    ],
)
def test_bad_specs_are_config_errors(bad: dict[str, object]) -> None:
    """A spec with an impossible status, power state or outcome is refused."""
    with pytest.raises(ConfigError):
        MachineSpec("x", **bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [{"time_factor": 0}, {"deploy_fail_rate": 2.0}])
def test_bad_config_is_config_error(bad: dict[str, float]) -> None:
    """A non-positive time factor or a rate outside 0..1 is refused."""
    with pytest.raises(ConfigError):
        SimConfig(**bad)  # type: ignore[arg-type]
