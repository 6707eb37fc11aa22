"""Adopted machines get no action at all; -commission-unknown-power commissions New machines."""

from __future__ import annotations

from typing import Any

import pytest

from maasflow.daemon.lifecycle import STATUS_NAMES, Flow, ProvisionState, ProvisionView

NO_RECORD = ProvisionView(ProvisionState.NONE)


def kind(decision: Any) -> str | None:
    return None if decision.action is None else str(decision.action.kind)


@pytest.mark.parametrize("status", sorted(STATUS_NAMES))
@pytest.mark.parametrize("power", ["on", "off", "unknown", "error"])
def test_an_adopted_machine_gets_no_action_in_any_status_or_power(
    obs: Any, status: int, power: str
) -> None:
    """Adopted: any action the machine would get (provision, rename, power...) is withheld and
    the reason says adopted; a decision without an action is the same as without adoption."""
    fields = {
        "status": status, "power_state": power, "owner": "maasflow", "provision": NO_RECORD,
        "desired_hostname": "mapped-name", "retry": None,
    }  # fmt: skip
    free = Flow("a").observe(obs(**fields, adopted=False))
    adopted = Flow("a").observe(obs(**fields, adopted=True))
    assert adopted.action is None
    if free.action is None:
        assert (adopted.phase, adopted.reason) == (free.phase, free.reason)
    else:
        assert "adopted" in adopted.reason and str(free.action.kind) in adopted.reason


def test_an_adopted_deployed_machine_is_deployed_and_says_why(obs: Any) -> None:
    """Adopted and Deployed: phase deployed, and the reason names -provision-existing."""
    observation = obs(status=6, owner="maasflow", provision=NO_RECORD, adopted=True)
    decision = Flow("a").observe(observation)
    assert (decision.action, decision.phase) == (None, "deployed")
    assert "-provision-existing" in decision.reason


def test_the_same_machine_not_adopted_is_provisioned(obs: Any) -> None:
    """Without adoption the Deployed machine with no record is provisioned, as before."""
    observation = obs(status=6, owner="maasflow", provision=NO_RECORD, adopted=False)
    assert kind(Flow("a").observe(observation)) == "provision"


@pytest.mark.parametrize(
    ("power", "power_type", "opted_in", "expected"),
    [
        ("unknown", "manual", True, "commission"),
        ("unknown", "webhook", True, "commission"),
        ("unknown", "manual", False, None),
        ("error", "manual", True, None),  # a BMC that fails is not one that cannot be read
        ("unknown", "", True, None),  # no power type: MAAS answers 500 to commission
        ("off", "manual", False, "commission"),
    ],
)
def test_commission_unknown_power_is_opt_in(
    obs: Any, power: str, power_type: str, opted_in: bool, expected: str | None
) -> None:
    """A New machine whose power MAAS cannot read is commissioned only when opted in."""
    observation = obs(
        status=0, power_state=power, power_type=power_type, commission_unknown_power=opted_in
    )
    assert kind(Flow("a").observe(observation)) == expected
