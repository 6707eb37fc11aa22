"""The target-Deployed rules as a table: every MAAS status x power x owner x lock.

The expected values below are written out by hand from the issue's rules (and MAAS's
status numbers in maas-api-facts §2.2), not computed by the code under test.
"""

from __future__ import annotations

import itertools

import pytest

from maasflow.daemon.lifecycle import Flow, Observation

ME = "maasflow"

# Expected single action for an UNLOCKED machine owned by us or by nobody, by power state.
# "-" = no action. Phase is the flow's phase in that case. Footnotes:
#   (a) Allocated deploys only when owned by us; unowned -> no action, phase "waiting".
#   (b) New with power unknown and no POWER_HELPER_SCRIPT -> no action, phase "waiting".
#   (c) Deployed with provisioning disabled is final.
# status  name                          on           off           unknown  phase
TABLE: dict[int, tuple[str, str, str, str, str]] = {
    0: ("New", "power_off", "commission", "-", "new"),  # (b)
    1: ("Commissioning", "-", "-", "-", "commissioning"),
    2: ("Failed commissioning", "-", "-", "-", "failed"),
    3: ("Missing", "-", "-", "-", "failed"),
    4: ("Ready", "allocate", "allocate", "allocate", "ready"),
    5: ("Reserved", "-", "-", "-", "hands-off"),
    6: ("Deployed", "-", "-", "-", "deployed"),  # (c)
    7: ("Retired", "-", "-", "-", "hands-off"),
    8: ("Broken", "-", "-", "-", "failed"),
    9: ("Deploying", "-", "-", "-", "deploying"),
    10: ("Allocated", "deploy", "deploy", "deploy", "allocated"),  # (a)
    11: ("Failed deployment", "-", "-", "-", "failed"),
    12: ("Releasing", "-", "-", "-", "waiting"),
    13: ("Releasing failed", "-", "-", "-", "failed"),
    14: ("Disk erasing", "-", "-", "-", "waiting"),
    15: ("Failed disk erasing", "-", "-", "-", "failed"),
    16: ("Rescue mode", "-", "-", "-", "hands-off"),
    17: ("Entering rescue mode", "-", "-", "-", "waiting"),
    18: ("Failed to enter rescue mode", "-", "-", "-", "failed"),
    19: ("Exiting rescue mode", "-", "-", "-", "waiting"),
    20: ("Failed to exit rescue mode", "-", "-", "-", "failed"),
    21: ("Testing", "-", "-", "-", "commissioning"),
    22: ("Failed testing", "-", "-", "-", "failed"),
}
POWER_COLUMN = {"on": 1, "off": 2, "unknown": 3}


def expected(status: int, power: str, owner: str | None, locked: bool) -> tuple[str, str]:
    """(action or "-", phase) according to the table and its footnotes."""
    if locked or owner == "someone-else":
        return "-", "hands-off"
    row = TABLE[status]
    if status == 10 and owner is None:
        return "-", "waiting"  # (a)
    if status == 0 and power == "unknown":
        return "-", "waiting"  # (b)
    return row[POWER_COLUMN[power]], row[4]


CASES = list(
    itertools.product(
        range(23), ("on", "off", "unknown"), (ME, "someone-else", None), (False, True)
    )
)


@pytest.mark.parametrize(("status", "power", "owner", "locked"), CASES)
def test_status_table(status: int, power: str, owner: str | None, locked: bool) -> None:
    """Each status/power/owner/lock combination yields the single action the rules name."""
    observation = Observation(
        status=status,
        power_state=power,
        owner=owner,
        locked=locked,
        power_type="ipmi",
        me=ME,
        desired_hostname=None,
        hostname="node1",
        provision=None,
        helper_script=False,
        always_rename=True,
    )
    decision = Flow("abc123").observe(observation)
    action, phase = expected(status, power, owner, locked)
    assert (decision.action.kind if decision.action else "-") == action
    assert decision.phase == phase
    assert decision.entered is True


def test_table_covers_every_maas_status() -> None:
    """The table names all 23 statuses MAAS defines, with MAAS's labels."""
    from maasflow.daemon.lifecycle import STATUS_NAMES

    assert {s: row[0] for s, row in TABLE.items()} == STATUS_NAMES
    assert STATUS_NAMES[13] == "Releasing failed"


@pytest.mark.parametrize("status", [99, 23, -1, 1000])
def test_unknown_status_is_logged_once_and_skipped(status: int) -> None:
    """A status number maasflow does not know gives no action, phase unknown, entered once."""
    flow = Flow("abc123")
    observation = Observation(
        status, "on", None, False, "", ME, "renamed", "node1", None, True, True
    )
    first, second = flow.observe(observation), flow.observe(observation)
    assert (first.action, first.phase, first.entered) == (None, "unknown", True)
    assert (second.action, second.phase, second.entered) == (None, "unknown", False)
    assert str(status) in first.reason
