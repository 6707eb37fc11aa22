"""Derived facts of a Machine: its MACs and pool name (boot IP and MAC: provisioning.target_for)."""

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


def test_models_are_frozen_and_ignore_unknown_fields() -> None:
    """Unknown fields are dropped and a parsed machine cannot be changed by accident."""
    machine = _machine(brand_new_field=1)
    assert not hasattr(machine, "brand_new_field")
    with pytest.raises(ValidationError):
        machine.hostname = "x"  # type: ignore[misc]
    assert machine.hostname == ""
