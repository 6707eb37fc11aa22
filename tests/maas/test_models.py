"""Derived facts of a Machine: its MACs, pool name, boot MAC and boot IP."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from maasflow.daemon.maas.models import Machine


def _iface(iface_id: int, mac: str | None, *ips: str) -> dict[str, Any]:
    links = [
        {"id": iface_id * 10 + n, "mode": "auto", "ip_address": ip} for n, ip in enumerate(ips)
    ]
    return {"id": iface_id, "name": f"eth{iface_id}", "mac_address": mac, "links": links}


def _machine(**fields: Any) -> Machine:
    return Machine.model_validate({"system_id": "abc123", "status": 6, **fields})


def test_macs_list_the_boot_mac_first_without_duplicates() -> None:
    """macs starts with the boot interface's MAC and lists each MAC once."""
    machine = _machine(
        boot_interface=_iface(2, "52:54:00:00:00:02"),
        interface_set=[_iface(1, "52:54:00:00:00:01"), _iface(2, "52:54:00:00:00:02")],
    )
    assert machine.macs == ["52:54:00:00:00:02", "52:54:00:00:00:01"]


def test_macs_skip_interfaces_without_a_mac() -> None:
    """An interface with a null MAC contributes nothing."""
    machine = _machine(interface_set=[_iface(1, None), _iface(2, "52:54:00:00:00:02")])
    assert machine.macs == ["52:54:00:00:00:02"]


def test_pool_name_is_empty_without_a_pool() -> None:
    """pool_name is the pool's name, or "" when MAAS sends no pool (before 2.4)."""
    assert _machine(pool={"id": 3, "name": "gpu"}).pool_name == "gpu"
    assert _machine(pool=None).pool_name == ""
    assert _machine().pool_name == ""


def test_boot_mac_falls_back_to_the_first_mac() -> None:
    """boot_mac is the PXE MAC, else the first interface's, else None."""
    assert _machine(boot_interface=_iface(1, "aa:aa:aa:aa:aa:01")).boot_mac == "aa:aa:aa:aa:aa:01"
    assert _machine(interface_set=[_iface(1, "aa:aa:aa:aa:aa:09")]).boot_mac == "aa:aa:aa:aa:aa:09"
    assert _machine().boot_mac is None


def test_boot_ip_prefers_the_boot_interface_link() -> None:
    """The boot interface's first assigned link address wins over ip_addresses."""
    machine = _machine(
        boot_interface=_iface(1, "aa:aa:aa:aa:aa:01", "10.0.0.5"),
        ip_addresses=["192.168.9.9", "10.0.0.5"],
    )
    assert machine.boot_ip == "10.0.0.5"


def test_boot_ip_reads_the_matching_interface_set_entry() -> None:
    """When boot_interface comes without links, its interface_set twin's links are used."""
    machine = _machine(
        boot_interface={"id": 2, "mac_address": "aa:aa:aa:aa:aa:02"},
        interface_set=[_iface(1, "aa:aa:aa:aa:aa:01", "10.9.9.9"), _iface(2, None, "10.0.0.2")],
    )
    assert machine.boot_ip == "10.0.0.2"


def test_boot_ip_skips_links_without_address_then_uses_ip_addresses() -> None:
    """A link_up link has no address; then ip_addresses[0] is used; else None."""
    boot = {"id": 1, "mac_address": "aa:aa:aa:aa:aa:01", "links": [{"id": 5, "mode": "link_up"}]}
    assert _machine(boot_interface=boot, ip_addresses=["10.1.1.1"]).boot_ip == "10.1.1.1"
    assert _machine(boot_interface=boot).boot_ip is None


def test_models_are_frozen_and_ignore_unknown_fields() -> None:
    """Unknown fields are dropped and a parsed machine cannot be changed by accident."""
    machine = _machine(brand_new_field=1)
    assert not hasattr(machine, "brand_new_field")
    with pytest.raises(ValidationError):
        machine.hostname = "x"  # type: ignore[misc]
    assert machine.hostname == ""
