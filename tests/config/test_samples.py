"""Filters and mappings against the real MAAS machine JSON in ../shared/maas-samples/."""

from __future__ import annotations

import json

import pytest

from maasflow.daemon.maas.models import Machine
from maasflow.daemon.mappings import Mappings
from maasflow.daemon.selection import FilterSpec
from tests.shared_samples import ABSENT, SAMPLES


def _machines() -> list[Machine]:
    if not SAMPLES.is_dir():
        pytest.skip(ABSENT)
    machines = []
    for path in sorted(SAMPLES.glob("*.json")):
        data = json.loads(path.read_text())
        for item in data if isinstance(data, list) else [data]:
            machines.append(Machine.model_validate(item))
    return machines


def test_default_filter_selects_samples_in_zone_default() -> None:
    """The default filter's verdict on each real machine follows its zone name."""
    machines = _machines()
    assert machines
    for m in machines:
        assert FilterSpec.default().selects(m) is (m.zone.name == "default")


def test_mapping_by_real_boot_mac_spelled_differently() -> None:
    """A mapping written upper-case with dashes finds a real machine by its boot MAC."""
    for m in _machines():
        if m.boot_interface is None or not m.boot_interface.mac_address:
            continue
        spelled = m.boot_interface.mac_address.upper().replace(":", "-")
        mappings = Mappings.load(json.dumps({spelled: "renamed"}), "-mappings")
        assert mappings.hostname_for(m) == "renamed"


def test_tag_filter_on_real_tags() -> None:
    """A tags include selects exactly the real machines carrying that tag."""
    f = FilterSpec.load('{"tags": {"include": ["^virtual$"]}}', "-filter")
    for m in _machines():
        assert f.selects(m) is ("virtual" in m.tag_names)
