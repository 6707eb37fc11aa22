"""Every target's rules as a table: each MAAS status x power x owner x lock, per target.

The expected values are written out by hand from issue 10's rules (and MAAS's status
numbers in maas-api-facts §2.2), not computed by the code under test. Deployed's plain
table is test_status_table's; here it gains the power rule, and Allocated, Ready (with and
without `release`) and Ignore get their own.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maasflow.daemon.lifecycle import (
    ActionKind,
    Flow,
    Observation,
    PowerState,
    ProvisionState,
    ProvisionView,
    Target,
    Wanted,
)
from tests.lifecycle.conftest import ME, build_observation
from tests.lifecycle.test_status_table import TABLE as DEPLOYED_TABLE

Row = tuple[str, str, str, str]  # action when power is on, off, unknown; the phase
_ = "-"
HANDS_OFF: Row = (_, _, _, "hands-off")
FAILED: Row = (_, _, _, "failed")
WAITING: Row = (_, _, _, "waiting")
COMMISSIONING: Row = (_, _, _, "commissioning")

# What every target short of Deployed shares (New is commissioned; footnote (b) below).
COMMON: dict[int, Row] = {
    0: ("power_off", "commission", _, "new"),
    1: COMMISSIONING,
    2: FAILED,
    3: FAILED,
    5: HANDS_OFF,
    7: HANDS_OFF,
    8: FAILED,
    9: (_, _, _, "deploying"),
    11: FAILED,
    12: WAITING,
    13: FAILED,
    14: WAITING,
    15: FAILED,
    16: HANDS_OFF,
    17: WAITING,
    18: FAILED,
    19: WAITING,
    20: FAILED,
    21: COMMISSIONING,
    22: FAILED,
}
ALLOCATED_TABLE = {
    **COMMON,
    4: ("allocate", "allocate", "allocate", "ready"),
    6: (_, _, _, "deployed"),  # never released: only a Ready rule with release does that
    10: (_, _, _, "allocated"),  # held
}
READY_TABLE = {
    **COMMON,
    4: (_, _, _, "ready"),
    6: (_, _, _, "deployed"),  # no release in the rule: left as it is
    10: (_, _, _, "allocated"),
}
READY_RELEASE_TABLE = {
    **READY_TABLE,
    6: ("release", "release", "release", "deployed"),
    10: ("release", "release", "release", "allocated"),
    11: ("release", "release", "release", "failed"),
}
IGNORE_TABLE = dict.fromkeys(range(23), HANDS_OFF)
# Deployed with a power rule: only the Deployed row changes, and only against the opposite.
DEPLOYED_ON_TABLE = {s: (row[1], row[2], row[3], row[4]) for s, row in DEPLOYED_TABLE.items()} | {
    6: (_, "power_on", _, "deployed")
}
DEPLOYED_OFF_TABLE = DEPLOYED_ON_TABLE | {6: ("power_off", _, _, "deployed")}

ERASE = {"erase": "true", "quick_erase": "true"}
# name -> (target, wanted, table)
TARGETS: dict[str, tuple[Target, Wanted, dict[int, Row]]] = {
    "deployed-power-on": (Target.DEPLOYED, Wanted(power=PowerState.ON), DEPLOYED_ON_TABLE),
    "deployed-power-off": (Target.DEPLOYED, Wanted(power=PowerState.OFF), DEPLOYED_OFF_TABLE),
    "allocated": (Target.ALLOCATED, Wanted(), ALLOCATED_TABLE),
    "ready": (Target.READY, Wanted(), READY_TABLE),
    "ready-release": (Target.READY, Wanted(release=ERASE), READY_RELEASE_TABLE),
    "ignore": (Target.IGNORE, Wanted(), IGNORE_TABLE),
}
POWER_COLUMN = {"on": 0, "off": 1, "unknown": 2}


def expected(
    name: str, status: int, power: str, owner: str | None, locked: bool
) -> tuple[str, str]:
    """(action or "-", phase) by the target's table and these footnotes:
    (h) locked or another user's: hands off, whatever the target;
    (a) Allocated with no owner: waiting (nobody to deploy or release it for);
    (b) New with power unknown: waiting (except under Ignore);
    (r) a Ready rule releases only OUR machines: Deployed or Failed deployment without an
        owner waits.
    """
    target, _wanted, table = TARGETS[name]
    if locked or owner == "someone-else":
        return _, "hands-off"  # (h)
    if target is Target.IGNORE:
        return _, "hands-off"
    if status == 10 and owner is None:
        return _, "waiting"  # (a)
    if status == 0 and power == "unknown":
        return _, "waiting"  # (b)
    if target is Target.READY and status in (6, 11) and owner is None:
        return _, "waiting"  # (r)
    row = table[status]
    return row[POWER_COLUMN[power]], row[3]


CASES = list(
    itertools.product(
        TARGETS, range(23), ("on", "off", "unknown"), (ME, "someone-else", None), (False, True)
    )
)


@pytest.mark.parametrize(("name", "status", "power", "owner", "locked"), CASES)
def test_every_target_against_every_status(
    name: str, status: int, power: str, owner: str | None, locked: bool
) -> None:
    """Each target/status/power/owner/lock combination yields the one action its table names."""
    target, wanted, _table = TARGETS[name]
    observation = build_observation(
        status=status, power_state=power, owner=owner, locked=locked, wanted=wanted
    )
    decision = Flow("abc123", target).observe(observation)
    action, phase = expected(name, status, power, owner, locked)
    assert (decision.action.kind if decision.action else _) == action
    assert decision.phase == phase


@pytest.mark.parametrize("name", TARGETS)
def test_each_table_names_every_maas_status(name: str) -> None:
    """No status is left out of a target's table."""
    assert set(TARGETS[name][2]) == set(range(23))


def test_a_release_sends_the_rules_erase_flags(obs: Any) -> None:
    """The release action carries the rule's flags as MAAS's release op takes them (§3.7)."""
    flow = Flow("m", Target.READY)
    decision = flow.observe(obs(status=6, owner=ME, wanted=Wanted(release=ERASE)))
    assert decision.action is not None and dict(decision.action.params) == ERASE
    bare = Flow("n", Target.READY).observe(obs(status=10, owner=ME, wanted=Wanted(release={})))
    assert bare.action is not None and (bare.action.kind, dict(bare.action.params)) == (
        "release",
        {},
    )


def test_a_deploy_carries_the_rules_parameters_and_hides_the_user_data(obs: Any) -> None:
    """Deploy's params are the rule's form as shown; the user data travels hidden, unprinted."""
    wanted = Wanted(
        deploy={"distro_series": "centos/centos70", "user_data": "(3 bytes, sha256 ab)"},
        hidden={"user_data": "c2VjcmV0"},
    )
    decision = Flow("m").observe(obs(status=10, owner=ME, wanted=wanted))
    action = decision.action
    assert action is not None and action.kind == "deploy"
    assert dict(action.params) == wanted.deploy
    assert dict(action.hidden) == {"user_data": "c2VjcmV0"}
    assert "c2VjcmV0" not in repr(action)


APPLIED = {"distro_series": "jammy"}
CHANGED = Wanted(deploy={"distro_series": "noble"}, redeploy=True)


@pytest.mark.parametrize(
    ("wanted", "applied", "action"),
    [
        (CHANGED, APPLIED, "release"),  # changed, and redeploy is set
        (Wanted(deploy={"distro_series": "noble"}), APPLIED, None),  # changed, no redeploy
        (Wanted(deploy=APPLIED, redeploy=True), APPLIED, None),  # unchanged
        (CHANGED, None, None),  # never deployed by maasflow: nobody knows what it runs
    ],
)
def test_a_deployed_machine_is_redeployed_only_when_asked_and_changed(
    obs: Any, wanted: Wanted, applied: dict[str, str] | None, action: str | None
) -> None:
    """Release-then-deploy happens only with redeploy set and known, different parameters,
    and only to a machine maasflow's user owns."""
    decision = Flow("m").observe(
        obs(status=6, owner=ME, power_state="on", wanted=wanted, applied=applied)
    )
    assert (decision.action.kind if decision.action else None) == action
    unowned = Flow("n").observe(obs(status=6, power_state="on", wanted=wanted, applied=applied))
    assert unowned.action is None


NONE, DONE = ProvisionView(ProvisionState.NONE), ProvisionView(ProvisionState.COMPLETE)
POLL = ProvisionView(ProvisionState.RUNNING, poll=True)


@pytest.mark.parametrize(
    ("power_wanted", "power", "view", "action"),
    [
        (PowerState.OFF, "off", NONE, "power_on"),  # provisioning needs it running
        (PowerState.OFF, "on", NONE, "provision"),  # provisioned first, stopped after
        (PowerState.OFF, "on", POLL, "provision_poll"),
        (PowerState.OFF, "on", DONE, "power_off"),
        (PowerState.ON, "off", DONE, "power_on"),
        (PowerState.ON, "unknown", NONE, "provision"),
        (PowerState.OFF, "unknown", DONE, None),  # never on unknown
        (PowerState.ON, "error", DONE, None),
        (None, "off", NONE, "provision"),  # no power rule: power is never touched
        (None, "on", DONE, None),
    ],
)
def test_power_follows_provisioning_and_only_a_known_opposite_state(
    obs: Any, power_wanted: PowerState | None, power: str, view: ProvisionView, action: str | None
) -> None:
    """A Deployed machine is provisioned first, then powered as the rule says, only when MAAS
    reports the opposite state."""
    wanted = Wanted(power=power_wanted)
    decision = Flow("m").observe(
        obs(status=6, owner=ME, power_state=power, provision=view, wanted=wanted)
    )
    assert (decision.action.kind if decision.action else None) == action


def test_a_retargeted_flow_follows_its_new_rules_and_table(obs: Any) -> None:
    """A rule changing a Deployed machine to Ready: the next decision is Ready's (release), and
    the move to Ready after the release is one the Ready table declares, not a resync."""
    flow = Flow("m")
    flow.observe(obs(status=6, owner=ME, power_state="on"))
    flow.retarget(Target.READY)
    release = flow.observe(obs(status=6, owner=ME, power_state="on", wanted=Wanted(release={})))
    assert release.action is not None and release.action.kind == "release"
    moves: list[tuple[str | None, bool]] = []

    class Listener:
        def entered(
            self, _flow: Flow, phase: Any, _why: str, *, came_from: Any, resync: bool
        ) -> None:
            moves.append((str(phase), resync))

    flow.observe(obs(status=4, power_state="off"), Listener())
    assert moves == [("ready", False)]
    assert flow.target is Target.READY


def test_a_default_observation_has_no_desire_beyond_deployed() -> None:
    """Observations built without a desire behave as before targets: no power or release."""
    observation = Observation(6, "off", ME, False, "ipmi", ME, None, "n", None, False, True)
    assert observation.wanted == Wanted() and observation.applied is None
    assert Flow("m").observe(observation).action is None


wanted_values = st.builds(
    Wanted,
    deploy=st.sampled_from([{}, {"distro_series": "jammy"}, {"distro_series": "noble"}]),
    power=st.sampled_from([None, PowerState.ON, PowerState.OFF]),
    release=st.sampled_from([None, {}, ERASE]),
    redeploy=st.booleans(),
)
target_observations = st.builds(
    build_observation,
    status=st.integers(min_value=-1, max_value=24),
    power_state=st.sampled_from(["on", "off", "unknown", "error", "ON", ""]),
    owner=st.one_of(st.none(), st.sampled_from([ME, "alice", ""])),
    locked=st.booleans(),
    provision=st.sampled_from([None, NONE, DONE, POLL]),
    wanted=wanted_values,
    applied=st.sampled_from([None, {}, {"distro_series": "jammy"}]),
)


@settings(max_examples=400)
@given(st.sampled_from(list(Target)), st.lists(target_observations, min_size=1, max_size=5))
def test_no_target_writes_what_its_rule_did_not_ask_for(
    target: Target, sequence: list[Observation]
) -> None:
    """Whatever MAAS says, in any order: Ignore never acts, nothing acts on a locked or foreign
    machine, only Deployed deploys, power moves only from the opposite known state, and a
    release needs a Ready rule's release, a redeploy or a failed deployment, on OUR machine."""
    flow = Flow("prop", target)
    for obs in sequence:
        action = flow.observe(obs).action
        kind = action.kind if action else None
        if target is Target.IGNORE or obs.locked or (obs.owner and obs.owner != obs.me):
            assert kind is None
        if kind is ActionKind.DEPLOY:
            assert target is Target.DEPLOYED
        if kind is ActionKind.POWER_ON:
            assert obs.power_state == "off" and obs.status == 6
        if kind is ActionKind.POWER_OFF and obs.status == 6:
            assert obs.power_state == "on" and obs.wanted.power is PowerState.OFF
        if kind is ActionKind.RELEASE:
            asked = target is Target.READY and obs.wanted.release is not None
            asked |= target is Target.DEPLOYED and (obs.wanted.redeploy or obs.status == 11)
            assert asked and obs.owner == obs.me
