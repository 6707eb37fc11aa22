"""Shared fixtures for lifecycle tests: an observation builder with harmless defaults."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from maasflow.daemon.lifecycle import Observation

ME = "maasflow"

ObsFactory = Callable[..., Observation]


def build_observation(**overrides: Any) -> Observation:
    """An unlocked, unowned New machine, powered off, nothing mapped, provisioning off."""
    fields: dict[str, Any] = {
        "status": 0,
        "power_state": "off",
        "owner": None,
        "locked": False,
        "power_type": "ipmi",
        "me": ME,
        "desired_hostname": None,
        "hostname": "node1",
        "provision": None,
        "helper_script": False,
        "always_rename": True,
    }
    fields.update(overrides)
    return Observation(**fields)


@pytest.fixture
def obs() -> ObsFactory:
    """Build an Observation; keyword arguments override the defaults."""
    return build_observation
