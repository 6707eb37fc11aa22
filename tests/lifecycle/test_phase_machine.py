"""The phase machine moves flows: declared moves, adoption, resync, and one entry call each.

The expected moves are written out here by hand (a path and its detours, as strings), not
read from the module's table, so a wrong row in `EXPECTED` fails a test.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest
import transitions
from hypothesis import given, settings
from hypothesis import strategies as st

from maasflow.daemon.lifecycle import (
    EXPECTED,
    QUIET,
    TARGETS,
    Flow,
    Observation,
    Phase,
    ProvisionState,
    ProvisionView,
    Target,
    phase_machine,
)

PATH = [
    "new",
    "commissioning",
    "ready",
    "allocated",
    "deploying",
    "deployed",
    "provisioning",
    "provisioned",
]
# retrying (a failed machine's retry is coming) and quarantined (-retry-failed) are detours too
DETOURS = {"failed", "waiting", "hands-off", "unknown", "retrying", "quarantined"}


def expected_move(came_from: str, phase: str) -> bool:
    """Onward along the path (a pass may miss a step), or into or out of a detour."""
    if came_from in DETOURS or phase in DETOURS:
        return True
    return PATH.index(came_from) < PATH.index(phase)


@dataclass
class Entry:
    system_id: str
    phase: str
    came_from: str | None
    resync: bool
    reason: str


@dataclass
class Recorder:
    """A PhaseListener that writes down every call."""

    calls: list[Entry] = field(default_factory=list)

    def entered(
        self, flow: Flow, phase: Phase, reason: str, *, came_from: Phase | None, resync: bool
    ) -> None:
        assert flow.phase is phase  # the machine moved the flow before telling anyone
        self.calls.append(Entry(flow.system_id, phase, came_from, resync, reason))

    def moves(self) -> list[tuple[str | None, str, bool]]:
        return [(c.came_from, c.phase, c.resync) for c in self.calls]


DEPLOYED_NO_RECORD = ProvisionView(ProvisionState.NONE)


def test_the_expected_path_is_declared_step_by_step() -> None:
    """Each step New -> ... -> provisioned is a transition the shared machine declares."""
    events = phase_machine().events
    for came_from, phase in itertools.pairwise(PATH):
        event = events[f"deployed:{phase}"]
        assert came_from in event.transitions, (came_from, phase)


def test_the_machine_declares_exactly_the_expected_moves() -> None:
    """Per (from, to) pair, the deployed target's events declare a move iff it is expected."""
    events = phase_machine().events
    for came_from in Phase:
        for phase in Phase:
            event = events.get(f"deployed:{phase}")
            declared = event is not None and came_from in event.transitions
            if came_from is not phase:
                assert declared == expected_move(came_from, phase), (came_from, phase)


def test_every_target_has_rules_and_a_table() -> None:
    """The transition table and the rule table are keyed by the same targets."""
    assert set(EXPECTED) == set(TARGETS) == set(Target)


def test_a_flow_along_the_path_hears_one_entry_per_phase(obs: Any) -> None:
    """The listener hears each phase once, on entry, with where the flow came from."""
    flow, heard = Flow("abc"), Recorder()
    seen = [
        obs(status=0, power_state="on"),
        obs(status=0, power_state="off"),
        obs(status=1, owner="maasflow"),
        obs(status=21, owner="maasflow"),
        obs(status=4),
        obs(status=10, owner="maasflow"),
        obs(status=9, owner="maasflow"),
        obs(status=6, owner="maasflow", provision=DEPLOYED_NO_RECORD),
        obs(status=6, owner="maasflow", provision=ProvisionView(ProvisionState.COMPLETE)),
        obs(status=6, owner="maasflow", provision=ProvisionView(ProvisionState.COMPLETE)),
    ]
    for observation in seen:
        flow.observe(observation, heard)
    assert heard.moves() == [
        (None, "new", False),
        ("new", "commissioning", False),
        ("commissioning", "ready", False),
        ("ready", "allocated", False),
        ("allocated", "deploying", False),
        ("deploying", "provisioning", False),
        ("provisioning", "provisioned", False),
    ]
    assert heard.calls[1].reason == "Commissioning: waiting for MAAS"


def test_a_first_observation_is_adopted_even_in_the_initial_phase(obs: Any) -> None:
    """A new flow's first phase is an entry from nowhere, not a resync, even for unknown."""
    heard = Recorder()
    Flow("u").observe(obs(status=77), heard)
    Flow("d").observe(obs(status=6, owner="maasflow"), heard)
    assert heard.moves() == [(None, "unknown", False), (None, "deployed", False)]


def test_a_jump_the_table_does_not_declare_is_a_resync(obs: Any) -> None:
    """Deployed, then Ready (a person released it in the UI): entered through resync."""
    flow, heard = Flow("abc"), Recorder()
    flow.observe(obs(status=6, owner="maasflow"), heard)
    decision = flow.observe(obs(status=4), heard)
    assert (decision.phase, decision.entered, flow.phase) == ("ready", True, Phase.READY)
    assert heard.moves()[-1] == ("deployed", "ready", True)
    assert decision.action is not None and decision.action.kind == "allocate"


def test_detours_and_missed_steps_are_no_resync(obs: Any) -> None:
    """Into failed and out to Ready, or New straight to Ready, are moves the table expects."""
    flow, heard = Flow("abc"), Recorder()
    for observation in (obs(status=0), obs(status=4), obs(status=11), obs(status=4)):
        flow.observe(observation, heard)
    assert heard.moves() == [
        (None, "new", False),
        ("new", "ready", False),
        ("ready", "failed", False),
        ("failed", "ready", False),
    ]


def test_the_machine_refuses_a_move_its_table_does_not_declare(obs: Any) -> None:
    """Triggering the table's event into ready from deployed raises; the flow stays put."""
    flow = Flow("abc")
    flow.observe(obs(status=6, owner="maasflow"))
    with pytest.raises(transitions.MachineError):
        phase_machine().events["deployed:ready"].trigger(flow, reason="", listener=QUIET)
    assert flow.phase is Phase.DEPLOYED


def test_one_shared_machine_binds_no_flow(obs: Any) -> None:
    """Every flow is moved by the same machine, which keeps no reference to any of them."""
    flows = [Flow(f"m{i}") for i in range(3)]
    for flow in flows:
        flow.observe(obs(status=4))
    assert phase_machine() is phase_machine()
    assert phase_machine().models == []
    assert not any(hasattr(flow, "__dict__") for flow in flows)
    assert {flow.phase for flow in flows} == {Phase.READY}


observations = st.builds(
    Observation,
    status=st.sampled_from([0, 1, 2, 4, 5, 6, 9, 10, 11, 12, 21, 77]),
    power_state=st.sampled_from(["on", "off", "unknown"]),
    owner=st.sampled_from([None, "maasflow", "alice"]),
    locked=st.booleans(),
    power_type=st.sampled_from(["", "ipmi"]),
    me=st.just("maasflow"),
    desired_hostname=st.none(),
    hostname=st.just("node"),
    provision=st.one_of(st.none(), st.builds(ProvisionView, st.sampled_from(ProvisionState))),
    helper_script=st.booleans(),
    always_rename=st.just(True),
)


@settings(deadline=None)  # pure logic: a loaded CI machine must not fail it on wall-clock time
@given(st.lists(observations, min_size=1, max_size=8))
def test_any_sequence_is_heard_once_per_entry_and_resynced_only_off_the_table(
    sequence: list[Observation],
) -> None:
    """One listener call per entered decision; resync exactly when the move is not expected."""
    flow, heard = Flow("prop"), Recorder()
    entered = [d.phase for d in (flow.observe(o, heard) for o in sequence) if d.entered]
    assert [c.phase for c in heard.calls] == entered
    assert heard.calls[0].came_from is None
    for call in heard.calls[1:]:
        assert call.came_from is not None and call.came_from != call.phase
        assert call.resync == (not expected_move(call.came_from, call.phase))
