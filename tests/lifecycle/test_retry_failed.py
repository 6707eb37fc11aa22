"""The lifecycle's rules for failed machines with a retry budget, and for the quarantine tag.

Expected values are written out by hand from the issue: Failed commissioning (2) is
commissioned again, Failed deployment (11) released; each retry spends the budget; with the
budget spent the action is the quarantine tag; a tagged machine gets nothing at all.
"""

from __future__ import annotations

import pytest

from maasflow.daemon.lifecycle import DEPLOYED, Flow, RetryView, decide
from maasflow.daemon.lifecycle import TARGETS as RULES
from tests.lifecycle.conftest import ObsFactory

TAG = "maasflow-quarantine"
DUE = RetryView(limit=3, used=1, due=True, tag=TAG)
WAITING = RetryView(limit=3, used=1, due=False, tag=TAG)
SPENT = RetryView(limit=3, used=3, due=True, tag=TAG)

# status, retry view -> (action kind or "-", phase, spends the budget)
CASES = [
    (2, None, ("-", "failed", False)),
    (11, None, ("-", "failed", False)),
    (2, DUE, ("commission", "retrying", True)),
    (11, DUE, ("release", "retrying", True)),
    (2, WAITING, ("-", "retrying", False)),
    (11, WAITING, ("-", "retrying", False)),
    (2, SPENT, ("quarantine", "failed", False)),
    (11, SPENT, ("quarantine", "failed", False)),
    (22, DUE, ("-", "failed", False)),  # Failed testing is not one the issue retries
    (8, DUE, ("-", "failed", False)),  # nor is Broken
]


@pytest.mark.parametrize(("status", "retry", "expected"), CASES)
def test_failed_machine_rules_with_a_budget(
    obs: ObsFactory, status: int, retry: RetryView | None, expected: tuple[str, str, bool]
) -> None:
    """Each failed status with each state of the budget yields the action the issue names."""
    step = decide(RULES["deployed"], "m", obs(status=status, owner="maasflow", retry=retry))
    action = step.action
    got = (action.kind if action else "-", step.phase, bool(action and action.spends_retry))
    assert got == expected


def test_a_retry_names_its_number_and_the_quarantine_its_tag(obs: ObsFactory) -> None:
    """Reasons say which retry this is, and which tag a quarantine puts on."""
    retry = decide(RULES["deployed"], "m", obs(status=11, owner="maasflow", retry=DUE))
    tag = decide(RULES["deployed"], "m", obs(status=2, retry=SPENT))
    assert retry.reason == "Failed deployment: retry 2 of 3 (release)"
    assert tag.action is not None and dict(tag.action.params) == {"tag": TAG}


@pytest.mark.parametrize("status", [0, 2, 4, DEPLOYED, 10, 11])
def test_a_quarantined_machine_gets_no_action_in_any_status(obs: ObsFactory, status: int) -> None:
    """The quarantine tag wins over every rule and every chore (rename, clearing records)."""
    step = decide(
        RULES["deployed"],
        "m",
        obs(status=status, quarantined=True, desired_hostname="other", retry=DUE),
    )
    assert (step.action, step.phase) == (None, "quarantined")


def test_a_quarantine_is_not_preceded_by_a_rename(obs: ObsFactory) -> None:
    """With the budget spent, the tag goes on first: a pending rename does not delay it."""
    step = decide(RULES["deployed"], "m", obs(status=2, desired_hostname="new", retry=SPENT))
    assert step.action is not None and step.action.kind == "quarantine"


def test_a_flow_enters_quarantined_once(obs: ObsFactory) -> None:
    """Quarantined is a phase of the shared machine, entered once however many passes."""
    flow = Flow("m")
    first = flow.observe(obs(status=2, quarantined=True))
    again = flow.observe(obs(status=2, quarantined=True))
    assert (first.phase, first.entered, again.entered) == ("quarantined", True, False)
