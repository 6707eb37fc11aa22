"""target_for: which IP and MAC a provisioner is told about, and when there is none."""

from __future__ import annotations

import json
from typing import Any

import pytest

from maasflow.common.errors import ProvisionError
from maasflow.daemon.maas.models import Machine
from maasflow.daemon.provisioning import dns_resolve, target_for
from tests.shared_samples import ABSENT, SAMPLES


def iface(ident: int, mac: str | None, *ips: str | None, **extra: Any) -> dict[str, Any]:
    links = [{"id": ident * 10 + i, "mode": "auto", "ip_address": ip} for i, ip in enumerate(ips)]
    return {"id": ident, "name": f"eth{ident}", "mac_address": mac, "links": links, **extra}


def machine(**fields: Any) -> Machine:
    base: dict[str, Any] = {
        "system_id": "abc123",
        "hostname": "node1",
        "fqdn": "node1.maas",
        "status": 6,
        "zone": {"name": "z1"},
        "pool": {"name": "p1"},
    }
    base.update(fields)
    return Machine.model_validate(base)


def no_dns(name: str) -> str | None:
    raise AssertionError(f"DNS must not be consulted, asked for {name}")


def test_boot_interface_link_address_comes_first() -> None:
    """The first link of the boot interface that has an address wins over ip_addresses."""
    boot = iface(2, "52:54:00:00:00:02", None, "10.0.2.7")
    m = machine(
        boot_interface=boot,
        interface_set=[iface(1, "52:54:00:00:00:01", "10.0.1.1"), boot],
        ip_addresses=["10.9.9.9"],
    )
    target = target_for(m, resolve=no_dns)
    assert (target.ip, target.mac) == ("10.0.2.7", "52:54:00:00:00:02")
    assert (target.system_id, target.hostname, target.fqdn) == ("abc123", "node1", "node1.maas")
    assert (target.zone, target.pool) == ("z1", "p1")


def test_boot_links_are_found_in_interface_set_when_omitted() -> None:
    """A boot_interface listed without links borrows them from its interface_set entry."""
    m = machine(
        boot_interface={"id": 2, "mac_address": "52:54:00:00:00:02"},
        interface_set=[iface(2, "52:54:00:00:00:02", "10.0.2.7")],
        ip_addresses=["10.9.9.9"],
    )
    assert target_for(m, resolve=no_dns).ip == "10.0.2.7"


def test_ip_addresses_when_the_boot_interface_has_none() -> None:
    """Without a boot-link address the first valid entry of ip_addresses is used."""
    m = machine(
        boot_interface=iface(1, "52:54:00:00:00:01", None),
        ip_addresses=["not-an-ip", "fd00::5", "10.0.0.9"],
    )
    assert target_for(m, resolve=no_dns).ip == "fd00::5"


def test_dns_fqdn_then_hostname_as_last_resort() -> None:
    """With no address in MAAS, DNS is asked for the FQDN, then the hostname."""
    asked: list[str] = []

    def resolve(name: str) -> str | None:
        asked.append(name)
        return "192.0.2.10" if name == "node1" else None

    assert target_for(machine(), resolve=resolve).ip == "192.0.2.10"
    assert asked == ["node1.maas", "node1"]


def test_resolver_garbage_is_ignored() -> None:
    """A resolver answer that is not an IP address does not count."""
    with pytest.raises(ProvisionError):
        target_for(machine(), resolve=lambda _name: "; rm -rf /")


def test_no_address_at_all_is_a_provision_error() -> None:
    """No link address, no ip_addresses and no DNS answer raise ProvisionError saying so."""
    with pytest.raises(ProvisionError) as caught:
        target_for(machine(), resolve=lambda _name: None)
    assert str(caught.value) == (
        "no IP address for node1: no boot-interface link address, no ip_addresses, "
        "DNS lookup failed"
    )


def test_mac_falls_back_to_first_interface_then_empty() -> None:
    """Without a boot interface the first interface MAC is used; with none, the MAC is empty."""
    with_ifaces = machine(
        interface_set=[iface(1, "52:54:00:00:00:01"), iface(2, "52:54:00:00:00:02")],
        ip_addresses=["10.0.0.1"],
    )
    bare = machine(ip_addresses=["10.0.0.1"], pool=None)
    assert target_for(with_ifaces, resolve=no_dns).mac == "52:54:00:00:00:01"
    assert (target_for(bare, resolve=no_dns).mac, target_for(bare, resolve=no_dns).pool) == ("", "")


def test_boot_mac_falls_back_to_the_first_mac() -> None:
    """The target's MAC is the PXE MAC, else the first interface's, else empty."""
    addressed: dict[str, Any] = {"ip_addresses": ["10.0.0.1"]}
    pxe = machine(boot_interface=iface(1, "aa:aa:aa:aa:aa:01"), **addressed)
    first = machine(interface_set=[iface(1, "aa:aa:aa:aa:aa:09")], **addressed)
    assert target_for(pxe, resolve=no_dns).mac == "aa:aa:aa:aa:aa:01"
    assert target_for(first, resolve=no_dns).mac == "aa:aa:aa:aa:aa:09"
    assert target_for(machine(**addressed), resolve=no_dns).mac == ""


def test_boot_ip_prefers_the_boot_interface_link() -> None:
    """The boot interface's first assigned link address wins over ip_addresses."""
    m = machine(
        boot_interface=iface(1, "aa:aa:aa:aa:aa:01", "10.0.0.5"),
        ip_addresses=["192.168.9.9", "10.0.0.5"],
    )
    assert target_for(m, resolve=no_dns).ip == "10.0.0.5"


def test_boot_ip_reads_the_matching_interface_set_entry() -> None:
    """When boot_interface comes without links, its interface_set twin's links are used."""
    m = machine(
        boot_interface={"id": 2, "mac_address": "aa:aa:aa:aa:aa:02"},
        interface_set=[iface(1, "aa:aa:aa:aa:aa:01", "10.9.9.9"), iface(2, None, "10.0.0.2")],
    )
    assert target_for(m, resolve=no_dns).ip == "10.0.0.2"


def test_boot_ip_skips_links_without_address_then_uses_ip_addresses() -> None:
    """A link_up link has no address; then ip_addresses[0] is used; else there is no IP."""
    boot = {"id": 1, "mac_address": "aa:aa:aa:aa:aa:01", "links": [{"id": 5, "mode": "link_up"}]}
    m = machine(boot_interface=boot, ip_addresses=["10.1.1.1"])
    assert target_for(m, resolve=no_dns).ip == "10.1.1.1"
    with pytest.raises(ProvisionError, match=r"^no IP address for node1"):
        target_for(machine(boot_interface=boot), resolve=lambda _name: None)


def test_dns_resolve_never_raises() -> None:
    """dns_resolve answers localhost and returns None for empty or invalid names."""
    assert dns_resolve("localhost") in {"127.0.0.1", "::1"}
    assert dns_resolve("") is None
    assert dns_resolve("bad\x00name") is None
    assert dns_resolve("a" * 64 + ".invalid") is None


def test_real_deployed_sample_yields_a_target() -> None:
    """The real Deployed machine sample parses and gives a target with an IP and MAC."""
    path = SAMPLES / "machine-deployed.json"
    if not path.exists():
        pytest.skip(ABSENT)
    m = Machine.model_validate(json.loads(path.read_text()))
    target = target_for(m, resolve=no_dns)
    assert target.ip and target.system_id == m.system_id
