"""The simulator's status table matches MAAS's numbers and exact labels (facts §2.2)."""

from __future__ import annotations

import pytest

from maasflow.sim.statuses import FILTER_NAMES, SIMPLE_STATUS, STATUS_NAMES, Status, status_name

EXPECTED = [
    (0, "NEW", "New"),
    (1, "COMMISSIONING", "Commissioning"),
    (2, "FAILED_COMMISSIONING", "Failed commissioning"),
    (3, "MISSING", "Missing"),
    (4, "READY", "Ready"),
    (5, "RESERVED", "Reserved"),
    (6, "DEPLOYED", "Deployed"),
    (7, "RETIRED", "Retired"),
    (8, "BROKEN", "Broken"),
    (9, "DEPLOYING", "Deploying"),
    (10, "ALLOCATED", "Allocated"),
    (11, "FAILED_DEPLOYMENT", "Failed deployment"),
    (12, "RELEASING", "Releasing"),
    (13, "FAILED_RELEASING", "Releasing failed"),
    (14, "DISK_ERASING", "Disk erasing"),
    (15, "FAILED_DISK_ERASING", "Failed disk erasing"),
    (16, "RESCUE_MODE", "Rescue mode"),
    (17, "ENTERING_RESCUE_MODE", "Entering rescue mode"),
    (18, "FAILED_ENTERING_RESCUE_MODE", "Failed to enter rescue mode"),
    (19, "EXITING_RESCUE_MODE", "Exiting rescue mode"),
    (20, "FAILED_EXITING_RESCUE_MODE", "Failed to exit rescue mode"),
    (21, "TESTING", "Testing"),
    (22, "FAILED_TESTING", "Failed testing"),
]


@pytest.mark.parametrize(("number", "constant", "label"), EXPECTED)
def test_each_status_has_maas_number_label_and_filter_name(
    number: int, constant: str, label: str
) -> None:
    """Every status number maps to MAAS's constant, exact label and lower-case filter name."""
    assert Status[constant] == number
    assert status_name(number) == label
    assert FILTER_NAMES[constant.lower()] == number


def test_table_has_exactly_the_23_maas_statuses() -> None:
    """No status is missing or invented, and each has a simplified-status group."""
    assert sorted(STATUS_NAMES) == list(range(23))
    assert set(SIMPLE_STATUS) == set(STATUS_NAMES)


def test_unknown_number_has_a_safe_label() -> None:
    """A number MAAS does not have is labelled "Unknown" rather than raising."""
    assert status_name(99) == "Unknown"
