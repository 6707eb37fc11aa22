"""Where deployed machines' addresses come from: three /24s by default, larger ones on request."""

from __future__ import annotations

import pytest

from maasflow.common.errors import ConfigError
from maasflow.sim import MachineSpec, SimConfig, serve_simulator


def _specs(count: int) -> list[MachineSpec]:
    return [
        MachineSpec(f"n{i}", status=4, macs=[f"52:54:00:00:{i >> 8:02x}:{i & 255:02x}"])
        for i in range(count)
    ]


async def test_the_default_subnets_run_out_after_735_machines() -> None:
    """Three RFC 5737 /24s: the 736th machine gets no address (MAAS would answer 503)."""
    async with serve_simulator(SimConfig(seed=3, machines=_specs(740))) as sim:
        given = [sim.world.assign_ips(m) for m in sim.machines.values()]
    assert given.count(True) == 735


async def test_larger_subnets_let_more_machines_deploy() -> None:
    """Given a /22, 800 machines each get their own address from it, behind its gateway."""
    config = SimConfig(seed=3, machines=_specs(800), subnets=["100.64.0.0/22"])
    async with serve_simulator(config) as sim:
        for machine in sim.machines.values():
            assert sim.world.assign_ips(machine)
        addresses = [ip for m in sim.machines.values() for ip in m.ip_addresses]
        assert len(addresses) == len(set(addresses)) == 800
        assert all(ip.startswith("100.64.") for ip in addresses)
        assert sim.world.subnets[0].gateway == "100.64.0.1"


@pytest.mark.parametrize("cidr", ["nope", "10.0.0.0/30", "2001:db8::/64"])
def test_a_subnet_that_is_no_usable_ipv4_network_is_refused(cidr: str) -> None:
    """A bad, tiny or IPv6 CIDR is a ConfigError naming it."""
    with pytest.raises(ConfigError, match="subnet"):
        SimConfig(subnets=[cidr])
