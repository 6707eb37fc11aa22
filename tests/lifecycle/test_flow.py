"""Flow behaviour beyond the status table: reuse, entering phases, rename, provisioning."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import transitions
from hypothesis import given
from hypothesis import strategies as st

import maasflow.daemon.lifecycle as lifecycle
from maasflow.common.errors import ConfigError
from maasflow.daemon.lifecycle import (
    Action,
    ActionKind,
    Decision,
    Flow,
    Observation,
    Phase,
    ProvisionState,
    ProvisionView,
    describe,
)

ACTION_KINDS = {
    "rename",
    "power_off",
    "power_on",
    "commission",
    "power_helper",
    "allocate",
    "deploy",
    "provision",
    "provision_poll",
    "forget_provision",
    "release",  # -retry-failed: a Failed deployment machine is released to be deployed again
    "quarantine",  # -retry-failed: the budget is spent, the machine gets the quarantine tag
}


def kind(decision: Decision) -> str | None:
    return decision.action.kind if decision.action else None


def test_flow_is_reused_without_building_state_machines(monkeypatch: Any, obs: Any) -> None:
    """Building and observing many flows never constructs another transitions.Machine."""
    Flow("warm-up").observe(obs())  # the shared machine may be built once, lazily
    builds: list[object] = []
    original = transitions.Machine.__init__

    def counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
        builds.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(transitions.Machine, "__init__", counting_init)
    flows = [Flow(f"m{i}") for i in range(200)]
    for status in (0, 1, 4, 10, 9, 6):
        for flow in flows:
            flow.observe(obs(status=status, owner="maasflow"))
    assert builds == []
    assert {flow.phase for flow in flows} == {"deployed"}


def test_same_flow_object_moves_through_the_lifecycle(obs: Any) -> None:
    """One flow follows a machine from New to Deployed, one action per pass."""
    flow = Flow("abc")
    identity = id(flow)
    passes = [
        (obs(status=0, power_state="on"), "power_off", "new"),
        (obs(status=0, power_state="off"), "commission", "new"),
        (obs(status=1, owner="maasflow"), None, "commissioning"),
        (obs(status=4), "allocate", "ready"),
        (obs(status=10, owner="maasflow"), "deploy", "allocated"),
        (obs(status=9, owner="maasflow"), None, "deploying"),
        (obs(status=6, owner="maasflow"), None, "deployed"),
    ]
    for observation, action, phase in passes:
        decision = flow.observe(observation)
        assert (kind(decision), decision.phase, flow.phase) == (action, phase, phase)
    assert id(flow) == identity


def test_entered_is_true_only_when_a_phase_is_entered(obs: Any) -> None:
    """`entered` is True when a phase is first observed, False while it lasts, True on return."""
    flow = Flow("abc")
    failed = obs(status=11, owner="maasflow")
    seen = [flow.observe(failed).entered, flow.observe(failed).entered]
    seen.append(flow.observe(obs(status=4)).entered)
    seen.append(flow.observe(failed).entered)
    assert seen == [True, False, True, True]


def test_first_observation_counts_as_entering_even_the_initial_phase(obs: Any) -> None:
    """A brand-new flow reports entered=True even when the phase equals its starting phase."""
    assert Flow("abc").observe(obs(status=77)).entered is True


def test_allocate_names_exactly_this_machine(obs: Any) -> None:
    """Ready allocates with system_id= set to the flow's own machine."""
    decision = Flow("x7y8z9").observe(obs(status=4))
    assert decision.action == Action(
        "allocate", {"system_id": "x7y8z9"}, "Ready: allocate exactly this machine"
    )


def test_power_off_is_soft(obs: Any) -> None:
    """A New machine that is on is powered off with stop_mode=soft."""
    decision = Flow("a").observe(obs(status=0, power_state="on"))
    assert decision.action is not None
    assert dict(decision.action.params) == {"stop_mode": "soft"}


@pytest.mark.parametrize("power", ["unknown", "error", "weird"])
def test_power_helper_runs_only_without_a_power_type(obs: Any, power: str) -> None:
    """New with unknown power runs the helper only when configured and no power type is set."""
    with_helper = obs(power_state=power, power_type="", helper_script=True)
    typed = obs(power_state=power, power_type="ipmi", helper_script=True)
    no_helper = obs(power_state=power, power_type="", helper_script=False)
    assert kind(Flow("a").observe(with_helper)) == "power_helper"
    assert kind(Flow("a").observe(typed)) is None
    waiting = Flow("a").observe(no_helper)
    assert (kind(waiting), waiting.phase) == (None, "waiting")
    assert "POWER_HELPER_SCRIPT" in waiting.reason


def test_rename_comes_first_for_a_new_machine(obs: Any) -> None:
    """A mapped hostname on a New machine is renamed before anything else."""
    decision = Flow("a").observe(obs(power_state="on", desired_hostname="rack1-n1"))
    assert decision.action is not None
    assert (decision.action.kind, dict(decision.action.params)) == (
        "rename",
        {"hostname": "rack1-n1"},
    )
    assert decision.phase == "new"


def test_rename_outside_new_depends_on_always_rename(obs: Any) -> None:
    """Past New, a mapped hostname is renamed only with ALWAYS_RENAME."""
    always = obs(status=4, desired_hostname="n2", always_rename=True)
    only_new = obs(status=4, desired_hostname="n2", always_rename=False)
    assert kind(Flow("a").observe(always)) == "rename"
    assert kind(Flow("a").observe(only_new)) == "allocate"
    assert kind(Flow("a").observe(obs(desired_hostname="n2", always_rename=False))) == "rename"


def test_no_rename_when_hostname_already_matches(obs: Any) -> None:
    """A desired hostname equal to the current one is not a rename."""
    assert kind(Flow("a").observe(obs(desired_hostname="node1"))) == "commission"


@pytest.mark.parametrize(
    "overrides",
    [
        {"locked": True},
        {"owner": "alice"},
        {"status": 7},
        {"status": 5},
        {"status": 16},
        {"status": 42},
    ],
)
def test_hands_off_and_unknown_machines_are_never_renamed_or_forgotten(
    obs: Any, overrides: dict[str, Any]
) -> None:
    """Hands-off or unknown machines get no action, not even rename or forget_provision."""
    complete = ProvisionView(ProvisionState.COMPLETE)
    observation = obs(desired_hostname="n2", provision=complete, power_state="off", **overrides)
    decision = Flow("a").observe(observation)
    assert decision.action is None
    assert decision.phase in {"hands-off", "unknown"}


def test_hands_off_reason_names_the_other_owner(obs: Any) -> None:
    """A machine owned by another user is left alone, and the reason says by whom."""
    decision = Flow("a").observe(obs(status=6, owner="alice"))
    assert (decision.phase, decision.reason) == ("hands-off", "owned by alice")


@pytest.mark.parametrize("state", ["running", "complete", "failed"])
def test_record_outside_deployed_is_forgotten_first(obs: Any, state: str) -> None:
    """A machine seen outside Deployed with a provisioning record gets forget_provision first."""
    view = ProvisionView(ProvisionState(state))
    assert kind(Flow("a").observe(obs(status=4, provision=view, desired_hostname="z"))) == (
        "forget_provision"
    )
    assert kind(Flow("a").observe(obs(status=11, provision=view))) == "forget_provision"


def test_no_record_means_nothing_to_forget(obs: Any) -> None:
    """State "none" or provisioning disabled never yields forget_provision."""
    none = ProvisionView(ProvisionState.NONE)
    assert kind(Flow("a").observe(obs(status=4, provision=none))) == "allocate"
    assert kind(Flow("a").observe(obs(status=4, provision=None))) == "allocate"


# (state, retry_due, poll) -> (action, phase); written from the provisioning rules.
PROVISION_TABLE = [
    ("none", False, False, "provision", "provisioning"),
    ("running", False, True, "provision_poll", "provisioning"),
    ("running", False, False, None, "provisioning"),
    ("complete", False, False, None, "provisioned"),
    ("complete", True, True, None, "provisioned"),
    ("failed", True, False, "provision", "provisioning"),
    ("failed", False, False, None, "provisioning"),  # retried: not a human's problem yet
    ("bogus", False, False, None, "unknown"),
]


@pytest.mark.parametrize(("state", "retry_due", "poll", "action", "phase"), PROVISION_TABLE)
def test_deployed_provisioning_states(
    obs: Any, state: str, retry_due: bool, poll: bool, action: str | None, phase: str
) -> None:
    """A Deployed machine's provisioning record decides provision, poll, wait or done."""
    known = {str(s): s for s in ProvisionState}
    view = ProvisionView(known.get(state, state), retry_due=retry_due, poll=poll)  # type: ignore[arg-type]
    decision = Flow("a").observe(obs(status=6, owner="maasflow", provision=view))
    assert (kind(decision), decision.phase) == (action, phase)


def test_deployed_without_provisioning_is_final(obs: Any) -> None:
    """With no PROVISION_URL a Deployed machine stays in phase deployed with no action."""
    decision = Flow("a").observe(obs(status=6, owner="maasflow", provision=None))
    assert (decision.action, decision.phase) == (None, "deployed")


def test_unknown_target_is_a_config_error() -> None:
    """Asking for a target the table does not know raises ConfigError naming it."""
    with pytest.raises(ConfigError, match="'rescued'"):
        Flow("a", target="rescued")


def test_describe_shows_action_params_or_why_not(obs: Any) -> None:
    """describe() prints the action with its parameters, or the phase and the reason."""
    acting = Flow("sid1").observe(obs(status=4))
    idle = Flow("sid1").observe(obs(locked=True))
    assert describe(acting) == "allocate system_id=sid1 (Ready: allocate exactly this machine)"
    assert describe(idle) == "hands-off: no action (locked)"


def test_lifecycle_module_does_no_io() -> None:
    """No module of the lifecycle package imports httpx, subprocess, socket or asyncio."""
    package = Path(lifecycle.__file__).parent
    modules = sorted(package.glob("*.py"))
    assert {m.name for m in modules} >= {"__init__.py", "rules.py", "phases.py", "vocabulary.py"}
    tree = ast.Module(body=[ast.parse(m.read_text()) for m in modules], type_ignores=[])
    names = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    names |= {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert names.isdisjoint({"httpx", "subprocess", "socket", "asyncio", "sqlite3"})


observations = st.builds(
    Observation,
    status=st.integers(min_value=-5, max_value=40),
    power_state=st.sampled_from(["on", "off", "unknown", "error", "", "ON", "\x00"]),
    owner=st.one_of(st.none(), st.sampled_from(["maasflow", "alice", ""])),
    locked=st.booleans(),
    power_type=st.sampled_from(["", "ipmi", "webhook"]),
    me=st.sampled_from(["maasflow", ""]),
    desired_hostname=st.one_of(st.none(), st.text(max_size=8)),
    hostname=st.text(max_size=8),
    provision=st.one_of(
        st.none(),
        st.builds(
            ProvisionView,
            state=st.sampled_from([*ProvisionState, "?"]),
            retry_due=st.booleans(),
            poll=st.booleans(),
        ),
    ),
    helper_script=st.booleans(),
    always_rename=st.booleans(),
)


@given(st.lists(observations, min_size=1, max_size=6))
def test_any_observation_sequence_is_safe(sequence: list[Observation]) -> None:
    """Any sequence of observations yields known phases, at most one known action, never a crash."""
    flow = Flow("prop")
    for observation in sequence:
        decision = flow.observe(observation)
        assert isinstance(decision.phase, Phase) and decision.phase is flow.phase
        assert decision.action is None or decision.action.kind in ACTION_KINDS
        assert decision.action is None or isinstance(decision.action.kind, ActionKind)
        if observation.locked:
            assert decision.action is None


def test_vocabulary_values_are_the_strings_on_disk_and_on_the_wire() -> None:
    """The enums' values are the strings logs, /state, metrics and the store have always used."""
    assert set(ActionKind) == ACTION_KINDS
    assert {str(s) for s in ProvisionState} == {"none", "running", "complete", "failed"}
    assert [str(p) for p in Phase] == [
        "unknown", "new", "commissioning", "ready", "allocated", "deploying", "deployed",
        "provisioning", "provisioned", "failed", "waiting", "retrying", "quarantined",
        "hands-off",
    ]  # fmt: skip
